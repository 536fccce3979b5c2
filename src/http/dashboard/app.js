// orderscope's reference dashboard: every panel is one GraphQL operation against this
// server (each panel's "view query" shows it), KPI and abnormal-order panels follow
// subscriptions, and every number drawn is also kept in data-value attributes.
/* global echarts, graphqlWs */
(function () {
  'use strict';

  var I18N = {
    zh: {
      signIn: '登录', signOut: '退出', signInTitle: '登录',
      signInHelp: '粘贴一个令牌（scripts/run 会打印一个），或在开发环境中选择一个示例账号。',
      from: '开始', to: '结束', shop: '店铺', platform: '平台', allShops: '全部店铺',
      allPlatforms: '全部平台', overview: '经营概况', trend: '趋势', hour: '小时', day: '日',
      week: '周', month: '月', provinces: '省份', channels: '流量渠道', creators: '达人',
      products: '商品', abnormal: '异常订单', orders: '订单', allStatuses: '全部状态',
      orderNo: '订单号', exportCsv: '导出 CSV', prev: '上一页', next: '下一页',
      viewQuery: '查看查询', live: '实时', offline: '未连接', mom: '环比', yoy: '同比',
      GMV: 'GMV', ORDERS: '订单数', AOV: '客单价', PAY_CONVERSION: '支付转化率',
      REFUND_RATE: '退货率', DISPUTE_RATE: '纠纷率', AVG_DELIVERY_HOURS: '平均物流时效', ON_TIME_RATE: '准时送达率',
      COMMISSION: '佣金', UNITS: '件数',
      UNPAID_OVER_24H: '超24小时未付款', SHIP_OVERDUE: '超时未发货', REFUND_PENDING: '待处理退款',
      DISPUTE_OPEN: '纠纷中', DELIVERY_STALLED: '物流停滞',
      PENDING_PAYMENT: '待付款', AWAITING_SHIPMENT: '待发货', SHIPPED: '已发货', DELIVERED: '已签收',
      COMPLETED: '已完成', CANCELLED: '已取消', CLOSED: '已关闭',
      colOrderNo: '订单号', colShop: '店铺', colStatus: '状态', colPlaced: '下单时间',
      colPaid: '实付', colReceiver: '收货人', colPhone: '电话', colCommission: '佣金',
      other: '其他', total: '合计', hours: '小时', page: '第 {n} 页，共 {total} 单',
      newOrders: '{n} 笔新订单（实时）', abnormalOf: '· {kind}', noExport: '没有导出权限',
      all: '全部'
    },
    en: {
      signIn: 'Sign in', signOut: 'Sign out', signInTitle: 'Sign in',
      signInHelp: 'Paste a token (scripts/run prints one), or pick a demo account in development.',
      from: 'From', to: 'To', shop: 'Shop', platform: 'Platform', allShops: 'All shops',
      allPlatforms: 'All platforms', overview: 'Business overview', trend: 'Trend', hour: 'Hour',
      day: 'Day', week: 'Week', month: 'Month', provinces: 'Provinces', channels: 'Channels',
      creators: 'Creators', products: 'Products', abnormal: 'Abnormal orders', orders: 'Orders',
      allStatuses: 'All statuses', orderNo: 'Order no.', exportCsv: 'Export CSV', prev: 'Previous',
      next: 'Next', viewQuery: 'View query', live: 'Live', offline: 'Offline', mom: 'vs prev.',
      yoy: 'YoY', GMV: 'GMV', ORDERS: 'Orders', AOV: 'Avg. order value',
      PAY_CONVERSION: 'Payment conversion', REFUND_RATE: 'Refund rate', DISPUTE_RATE: 'Dispute rate',
      AVG_DELIVERY_HOURS: 'Avg. delivery time', ON_TIME_RATE: 'On-time delivery', COMMISSION: 'Commission', UNITS: 'Units',
      UNPAID_OVER_24H: 'Unpaid > 24 h', SHIP_OVERDUE: 'Shipping overdue', REFUND_PENDING: 'Refunds pending',
      DISPUTE_OPEN: 'Open disputes', DELIVERY_STALLED: 'Delivery stalled',
      PENDING_PAYMENT: 'Pending payment', AWAITING_SHIPMENT: 'Awaiting shipment', SHIPPED: 'Shipped',
      DELIVERED: 'Delivered', COMPLETED: 'Completed', CANCELLED: 'Cancelled', CLOSED: 'Closed',
      colOrderNo: 'Order no.', colShop: 'Shop', colStatus: 'Status', colPlaced: 'Placed',
      colPaid: 'Paid', colReceiver: 'Receiver', colPhone: 'Phone', colCommission: 'Commission',
      other: 'Other', total: 'Total', hours: 'h', page: 'Page {n}, {total} orders',
      newOrders: '{n} new orders (live)', abnormalOf: '· {kind}', noExport: 'No export permission',
      all: 'All'
    }
  };
  var KPI_METRICS = ['GMV', 'ORDERS', 'AOV', 'PAY_CONVERSION', 'REFUND_RATE', 'DISPUTE_RATE', 'AVG_DELIVERY_HOURS'];
  var ABNORMAL = ['UNPAID_OVER_24H', 'SHIP_OVERDUE', 'REFUND_PENDING', 'DISPUTE_OPEN', 'DELIVERY_STALLED'];
  var STATUSES = ['PENDING_PAYMENT', 'AWAITING_SHIPMENT', 'SHIPPED', 'DELIVERED', 'COMPLETED', 'CANCELLED', 'CLOSED'];
  var PLATFORMS = ['DOUYIN', 'TIKTOK', 'TAOBAO', 'TMALL', 'KUAISHOU', 'JD', 'PDD'];
  var TOKEN_KEY = 'orderscope.token';
  var LANG_KEY = 'orderscope.lang';
  var PAGE = 20;

  var lang = localStorage.getItem(LANG_KEY) || 'zh';
  var state = {
    token: null, viewer: null, from: null, to: null, shop: '', platform: '',
    granularity: 'DAY', status: '', orderNo: '', kind: null, cursors: [null], pageIndex: 0,
    freshOrders: 0, yoyPrevious: {}, started: 0
  };
  var charts = {};
  var ws = null;
  var liveSubscriptions = [];
  // What the page drew, for tests and benchmarks: panel id -> the answer it drew.
  var drawn = window.__dashboard = { panels: {}, drawnAt: null, updates: 0 };

  function t(key, args) {
    var text = (I18N[lang] && I18N[lang][key]) || I18N.zh[key] || key;
    Object.keys(args || {}).forEach(function (k) { text = text.replace('{' + k + '}', args[k]); });
    return text;
  }
  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') node.textContent = attrs[k];
      else if (k === 'class') node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { node.appendChild(c); });
    return node;
  }
  function may(permission) {
    return !!(state.viewer && state.viewer.permissions.indexOf(permission) >= 0);
  }

  // ---- formatting -----------------------------------------------------------
  function money(v) {
    if (v === null || v === undefined) return '—';
    return '¥' + Number(v).toLocaleString('zh-CN', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }
  function percent(v, signed) {
    if (v === null || v === undefined) return '—';
    var text = (v * 100).toFixed(2) + '%';
    return signed && v > 0 ? '+' + text : text;
  }
  function metricText(metric, v) {
    if (v === null || v === undefined) return '—';
    switch (metric) {
      case 'GMV': case 'AOV': case 'REFUND_AMOUNT': case 'COMMISSION': return money(v);
      case 'PAY_CONVERSION': case 'REFUND_RATE': case 'DISPUTE_RATE': case 'ON_TIME_RATE': return percent(v);
      case 'AVG_DELIVERY_HOURS': return Number(v).toFixed(1) + ' ' + t('hours');
      default: return Number(v).toLocaleString('zh-CN');
    }
  }
  function minorMoney(minor, currency) {
    if (minor === null || minor === undefined) return '—';
    var sign = currency === 'USD' ? '$' : '¥';
    return sign + (minor / 100).toLocaleString('zh-CN', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }
  function dateOnly(d) { return d.toISOString().slice(0, 10); }
  function addDays(text, days) {
    var d = new Date(text + 'T00:00:00Z');
    d.setUTCDate(d.getUTCDate() + days);
    return dateOnly(d);
  }
  function todayInShanghai() { return dateOnly(new Date(Date.now() + 8 * 3600 * 1000)); }

  // ---- transport -------------------------------------------------------------
  function gql(query, variables) {
    return fetch('/graphql', {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Accept: 'application/graphql-response+json, application/json;q=0.9',
        Authorization: 'Bearer ' + state.token
      },
      body: JSON.stringify({ query: query, variables: variables })
    }).then(function (r) {
      return r.json().then(function (body) {
        if (r.status === 401) { signOut(); throw new Error('token refused'); }
        return body;
      });
    });
  }

  // ---- panels ----------------------------------------------------------------
  function range() { return { from: state.from, to: state.to }; }
  function analyticsFilter() {
    var f = {};
    if (state.shop) f.shopIds = [state.shop];
    if (state.platform) f.platforms = [state.platform];
    return Object.keys(f).length ? f : null;
  }
  function orderFilter() {
    var f = {};
    if (state.shop) f.shopIds = [state.shop];
    if (state.platform) f.platforms = [state.platform];
    if (!state.kind) {
      f.placedFrom = state.from + 'T00:00:00+08:00';
      f.placedTo = addDays(state.to, 1) + 'T00:00:00+08:00';
      if (state.status) f.statuses = [state.status];
      if (state.orderNo) f.orderNo = state.orderNo;
    }
    return f;
  }

  var KPI_QUERY = 'query DashboardKpis($range: DateRange!, $filter: AnalyticsFilter, $metrics: [Metric!]) {\n' +
    '  mom: kpis(range: $range, filter: $filter, metrics: $metrics, compare: PREVIOUS_PERIOD) {\n' +
    '    values { metric value previous change }\n  }\n' +
    '  yoy: kpis(range: $range, filter: $filter, metrics: $metrics, compare: SAME_PERIOD_LAST_YEAR) {\n' +
    '    values { metric previous change }\n  }\n}';
  var LIVE_KPIS = 'subscription DashboardLiveKpis($range: DateRange!, $filter: AnalyticsFilter, $metrics: [Metric!]) {\n' +
    '  liveKpis(range: $range, filter: $filter, metrics: $metrics, compare: PREVIOUS_PERIOD) {\n' +
    '    values { metric value previous change }\n  }\n}';
  var TREND_QUERY = 'query DashboardTrend($range: DateRange!, $granularity: Granularity!, $filter: AnalyticsFilter) {\n' +
    '  trend(range: $range, granularity: $granularity, metrics: [GMV, ORDERS], filter: $filter) {\n' +
    '    points { start label values { metric value } }\n  }\n}';
  var BREAKDOWN_QUERY = 'query DashboardBreakdown($range: DateRange!, $dimension: Dimension!, $metrics: [Metric!]!, $filter: AnalyticsFilter, $limit: Int!) {\n' +
    '  breakdown(range: $range, dimension: $dimension, metrics: $metrics, sortBy: GMV, limit: $limit, filter: $filter) {\n' +
    '    rows { key label share values { metric value } }\n' +
    '    other { key label values { metric value } }\n' +
    '    total { metric value }\n  }\n}';
  var ORDER_FIELDS = 'totalCount pageInfo { hasNextPage endCursor }\n' +
    '    edges { node { id orderNo shop { name } status placedAt paidAmount currency receiverName receiverPhone commissionAmount @include(if: $finance) } }';
  var ORDERS_QUERY = 'query DashboardOrders($filter: OrderFilter, $first: Int!, $after: String, $finance: Boolean!) {\n' +
    '  orders(filter: $filter, first: $first, after: $after) {\n    ' + ORDER_FIELDS + '\n  }\n}';
  var ABNORMAL_ORDERS_QUERY = 'query DashboardAbnormalOrders($kind: AbnormalKind!, $filter: OrderFilter, $first: Int!, $after: String, $finance: Boolean!) {\n' +
    '  abnormalOrders(kind: $kind, filter: $filter, first: $first, after: $after) {\n    ' + ORDER_FIELDS + '\n  }\n}';
  var ABNORMAL_SUB = 'subscription DashboardAbnormalCounts($shopIds: [ID!], $platforms: [Platform!]) {\n  abnormalCounts(shopIds: $shopIds, platforms: $platforms) { kind count }\n}';
  function abnormalArgs() {
    return { shopIds: state.shop ? [state.shop] : null, platforms: state.platform ? [state.platform] : null };
  }
  var ORDER_EVENTS = 'subscription DashboardOrderEvents($filter: OrderFilter) {\n  orderEvents(filter: $filter) { kind order { id orderNo } }\n}';

  function showQuery(panelId, operations) {
    var panel = $(panelId);
    var box = panel.querySelector('details.query');
    if (!box) {
      box = el('details', { class: 'query' }, [el('summary', { text: t('viewQuery') }), el('pre')]);
      panel.appendChild(box);
    }
    box.querySelector('summary').textContent = t('viewQuery');
    box.querySelector('pre').textContent = operations.map(function (op) {
      return op.query + '\n\n# variables\n' + JSON.stringify(op.variables, null, 2);
    }).join('\n\n');
  }
  function panelError(panelId, body) {
    var panel = $(panelId);
    var old = panel.querySelector('.error');
    if (old) old.remove();
    var errors = (body && body.errors) || [];
    if (errors.length) {
      panel.appendChild(el('p', { class: 'error', text: errors.map(function (e) { return e.message; }).join('; ') }));
    }
  }

  function kpiArgs() { return { range: range(), filter: analyticsFilter(), metrics: KPI_METRICS }; }

  function loadKpis() {
    var variables = kpiArgs();
    showQuery('panel-kpis', [{ query: KPI_QUERY, variables: variables }, { query: LIVE_KPIS, variables: variables }]);
    return gql(KPI_QUERY, variables).then(function (body) {
      panelError('panel-kpis', body);
      if (!body.data) return;
      state.yoyPrevious = {};
      body.data.yoy.values.forEach(function (v) { state.yoyPrevious[v.metric] = v.previous; });
      state.lastKpis = JSON.stringify(body.data.mom.values);
      drawKpis(body.data.mom.values, false);
      drawn.panels.kpis = body.data;
    });
  }
  function drawKpis(values, flash) {
    var box = $('kpis');
    box.textContent = '';
    values.forEach(function (v) {
      var yoyPrev = state.yoyPrevious[v.metric];
      var yoy = (yoyPrev && v.value !== null) ? (v.value - yoyPrev) / yoyPrev : null;
      var card = el('div', { class: 'kpi' + (flash ? ' flash' : ''), 'data-metric': v.metric, 'data-value': v.value === null ? '' : String(v.value) }, [
        el('div', { class: 'label', text: t(v.metric) }),
        el('div', { class: 'value', text: metricText(v.metric, v.value) }),
        el('div', { class: 'cmp' }, [
          el('span', { text: t('mom') + ' ' }),
          el('span', { class: v.change > 0 ? 'up' : (v.change < 0 ? 'down' : ''), 'data-change': v.change === null ? '' : String(v.change), text: percent(v.change, true) }),
          el('span', { text: '  ' + t('yoy') + ' ' }),
          el('span', { class: yoy > 0 ? 'up' : (yoy < 0 ? 'down' : ''), 'data-yoy': yoy === null ? '' : String(yoy), text: percent(yoy, true) })
        ])
      ]);
      box.appendChild(card);
    });
    if (flash) setTimeout(function () {
      Array.prototype.forEach.call(box.querySelectorAll('.flash'), function (c) { c.classList.remove('flash'); });
    }, 800);
  }

  function chart(id) {
    if (!charts[id]) charts[id] = echarts.init($(id), null, { renderer: 'canvas' });
    return charts[id];
  }
  function valueOf(values, metric) {
    for (var i = 0; i < values.length; i++) if (values[i].metric === metric) return values[i].value;
    return null;
  }

  function loadTrend() {
    var variables = { range: range(), granularity: state.granularity, filter: analyticsFilter() };
    showQuery('panel-trend', [{ query: TREND_QUERY, variables: variables }]);
    return gql(TREND_QUERY, variables).then(function (body) {
      panelError('panel-trend', body);
      if (!body.data) return;
      var points = body.data.trend.points;
      chart('trend-chart').setOption({
        animation: false,
        tooltip: { trigger: 'axis' },
        legend: { data: [t('GMV'), t('ORDERS')] },
        grid: { left: 70, right: 60, top: 30, bottom: 30 },
        xAxis: { type: 'category', data: points.map(function (p) { return p.label; }) },
        yAxis: [{ type: 'value', name: t('GMV') }, { type: 'value', name: t('ORDERS') }],
        series: [
          { name: t('GMV'), type: 'line', smooth: true, data: points.map(function (p) { return valueOf(p.values, 'GMV'); }) },
          { name: t('ORDERS'), type: 'bar', yAxisIndex: 1, data: points.map(function (p) { return valueOf(p.values, 'ORDERS'); }) }
        ]
      }, true);
      drawn.panels.trend = body.data;
    });
  }

  var BREAKDOWNS = [
    { panel: 'panel-province', chart: 'province-chart', rows: 'province-rows', dimension: 'PROVINCE', kind: 'bar' },
    { panel: 'panel-channel', chart: 'channel-chart', rows: 'channel-rows', dimension: 'CHANNEL', kind: 'pie' },
    { panel: 'panel-creator', chart: 'creator-chart', rows: 'creator-rows', dimension: 'CREATOR', kind: 'bar' },
    { panel: 'panel-product', chart: 'product-chart', rows: 'product-rows', dimension: 'PRODUCT', kind: 'bar' }
  ];
  function loadBreakdown(b) {
    var metrics = ['GMV', 'ORDERS'];
    // Commission only for accounts that may read it (FINANCE_READ).
    if (b.dimension === 'CREATOR' && may('FINANCE_READ')) metrics.push('COMMISSION');
    var variables = { range: range(), dimension: b.dimension, metrics: metrics, filter: analyticsFilter(), limit: 10 };
    showQuery(b.panel, [{ query: BREAKDOWN_QUERY, variables: variables }]);
    return gql(BREAKDOWN_QUERY, variables).then(function (body) {
      panelError(b.panel, body);
      if (!body.data) return;
      var report = body.data.breakdown;
      var rows = report.rows.slice();
      var labels = rows.map(function (r) { return r.label || r.key || '—'; });
      var gmv = rows.map(function (r) { return valueOf(r.values, 'GMV'); });
      var option = b.kind === 'pie' ? {
        animation: false,
        tooltip: { trigger: 'item' },
        series: [{ type: 'pie', radius: ['35%', '65%'], data: rows.map(function (r, i) { return { name: labels[i], value: gmv[i] }; }) }]
      } : {
        animation: false,
        tooltip: { trigger: 'axis' },
        grid: { left: 110, right: 30, top: 10, bottom: 20 },
        xAxis: { type: 'value' },
        yAxis: { type: 'category', inverse: true, data: labels },
        series: [{ type: 'bar', name: t('GMV'), data: gmv }]
      };
      chart(b.chart).setOption(option, true);
      var table = $(b.rows);
      table.textContent = '';
      table.appendChild(el('tr', {}, [el('th', { text: '' })].concat(metrics.map(function (m) { return el('th', { class: 'num', text: t(m) }); }))));
      var all = rows.map(function (r) { return { row: r, kind: 'data' }; });
      if (report.other) all.push({ row: report.other, kind: 'other' });
      all.push({ row: { key: '~total', label: t('total'), values: report.total }, kind: 'total' });
      all.forEach(function (item) {
        var r = item.row;
        table.appendChild(el('tr', { 'data-key': r.key === null ? '' : String(r.key), 'data-row': item.kind }, [
          el('td', { text: item.kind === 'other' ? t('other') : (r.label || r.key || '—') })
        ].concat(metrics.map(function (m) {
          var v = valueOf(r.values, m);
          return el('td', { class: 'num', 'data-metric': m, 'data-value': v === null ? '' : String(v), text: metricText(m, v) });
        }))));
      });
      drawn.panels[b.dimension] = body.data;
    });
  }

  function drawAbnormal(counts) {
    var box = $('abnormal');
    box.textContent = '';
    counts.forEach(function (c) {
      var link = el('a', { href: '#', 'data-kind': c.kind, 'data-count': String(c.count) }, [
        el('div', { class: 'label', text: t(c.kind) }),
        el('div', { class: 'count', text: String(c.count) })
      ]);
      link.addEventListener('click', function (e) {
        e.preventDefault();
        state.kind = c.kind;
        resetPaging();
        loadOrders();
      });
      box.appendChild(link);
    });
    drawn.panels.abnormal = counts;
  }

  function resetPaging() { state.cursors = [null]; state.pageIndex = 0; state.freshOrders = 0; $('new-orders').textContent = ''; }
  function loadOrders() {
    var finance = may('FINANCE_READ');
    var variables = { filter: orderFilter(), first: PAGE, after: state.cursors[state.pageIndex], finance: finance };
    var query = ORDERS_QUERY;
    if (state.kind) { variables.kind = state.kind; query = ABNORMAL_ORDERS_QUERY; }
    showQuery('panel-orders', [{ query: query, variables: variables }]);
    $('orders-kind').textContent = state.kind ? t('abnormalOf', { kind: t(state.kind) }) : '';
    if (!may('ORDERS_READ')) { $('panel-orders').hidden = true; $('panel-abnormal').hidden = true; return Promise.resolve(); }
    return gql(query, variables).then(function (body) {
      panelError('panel-orders', body);
      if (!body.data) return;
      var conn = state.kind ? body.data.abnormalOrders : body.data.orders;
      var head = $('orders').querySelector('thead');
      head.textContent = '';
      var cols = ['colOrderNo', 'colShop', 'colStatus', 'colPlaced', 'colPaid', 'colReceiver', 'colPhone'];
      if (finance) cols.push('colCommission');
      head.appendChild(el('tr', {}, cols.map(function (c) { return el('th', { class: c === 'colPaid' || c === 'colCommission' ? 'num' : '', text: t(c) }); })));
      var tbody = $('orders').querySelector('tbody');
      tbody.textContent = '';
      conn.edges.forEach(function (edge) {
        var o = edge.node;
        var cells = [
          el('td', { 'data-field': 'orderNo', text: o.orderNo }),
          el('td', { text: o.shop ? o.shop.name : '' }),
          el('td', { 'data-field': 'status', text: o.status ? t(o.status) : '' }),
          el('td', { text: new Date(o.placedAt).toLocaleString(lang === 'zh' ? 'zh-CN' : 'en-GB', { timeZone: 'Asia/Shanghai' }) }),
          el('td', { class: 'num', 'data-field': 'paidAmount', 'data-value': String(o.paidAmount), text: minorMoney(o.paidAmount, o.currency) }),
          el('td', { 'data-field': 'receiverName', text: o.receiverName || '' }),
          el('td', { 'data-field': 'receiverPhone', text: o.receiverPhone || '' })
        ];
        if (finance) cells.push(el('td', { class: 'num', 'data-field': 'commissionAmount', text: minorMoney(o.commissionAmount, o.currency) }));
        tbody.appendChild(el('tr', { 'data-id': o.id }, cells));
      });
      state.cursors[state.pageIndex + 1] = conn.pageInfo.hasNextPage ? conn.pageInfo.endCursor : undefined;
      $('next').disabled = !conn.pageInfo.hasNextPage;
      $('prev').disabled = state.pageIndex === 0;
      $('page').textContent = t('page', { n: state.pageIndex + 1, total: conn.totalCount });
      $('export').hidden = !may('EXPORT') || !!state.kind;
      drawn.panels.orders = body.data;
    });
  }

  // ---- live ------------------------------------------------------------------
  function stopLive() {
    liveSubscriptions.forEach(function (dispose) { dispose(); });
    liveSubscriptions = [];
    if (ws) { ws.dispose(); ws = null; }
    $('live').dataset.state = 'off';
    $('live').textContent = t('offline');
  }
  // Resolved by the first abnormal-order counts (they come only by subscription).
  var abnormalArrived = null;
  function startLive() {
    stopLive();
    var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/graphql';
    ws = graphqlWs.createClient({
      url: url,
      connectionParams: { Authorization: 'Bearer ' + state.token },
      retryAttempts: Infinity,
      shouldRetry: function () { return true; },
      on: {
        connected: function () { $('live').dataset.state = 'on'; $('live').textContent = t('live'); },
        closed: function () { $('live').dataset.state = 'off'; $('live').textContent = t('offline'); }
      }
    });
    liveSubscriptions.push(ws.subscribe({ query: LIVE_KPIS, variables: kpiArgs() }, {
      next: function (value) {
        if (!value.data) return;
        var values = value.data.liveKpis.values;
        var seen = JSON.stringify(values);
        // The first value repeats what the query drew: only a change flashes.
        var changed = state.lastKpis !== undefined && seen !== state.lastKpis;
        state.lastKpis = seen;
        drawKpis(values, changed);
        drawn.updates += 1;
        drawn.liveAt = performance.now();
      },
      error: function () {}, complete: function () {}
    }));
    if (may('ORDERS_READ')) {
      liveSubscriptions.push(ws.subscribe({ query: ABNORMAL_SUB, variables: abnormalArgs() }, {
        next: function (value) {
          if (!value.data) return;
          drawAbnormal(value.data.abnormalCounts);
          if (abnormalArrived) { abnormalArrived(); abnormalArrived = null; }
        },
        error: function () {}, complete: function () {}
      }));
      var f = {};
      if (state.shop) f.shopIds = [state.shop];
      if (state.platform) f.platforms = [state.platform];
      liveSubscriptions.push(ws.subscribe({ query: ORDER_EVENTS, variables: { filter: f } }, {
        next: function (value) {
          if (!value.data || value.data.orderEvents.kind === 'CHANGED') return;
          state.freshOrders += 1;
          $('new-orders').textContent = t('newOrders', { n: state.freshOrders });
        },
        error: function () {}, complete: function () {}
      }));
    }
  }

  // ---- page ------------------------------------------------------------------
  function loadAll() {
    state.started = performance.now();
    drawn.drawnAt = null;
    document.body.dataset.drawn = 'no';
    var work = [loadKpis(), loadTrend(), loadOrders()].concat(BREAKDOWNS.map(loadBreakdown));
    if (may('ORDERS_READ')) {
      showQuery('panel-abnormal', [{ query: ABNORMAL_SUB, variables: abnormalArgs() }]);
      work.push(new Promise(function (resolve) {
        abnormalArrived = resolve;
        // Without a WebSocket (a proxy that refuses upgrades) the rest still counts.
        setTimeout(resolve, 5000);
      }));
    } else {
      $('panel-abnormal').hidden = true;
    }
    // The subscriptions start with the queries: abnormal counts and live KPIs arrive
    // through them.
    startLive();
    return Promise.all(work).then(function () {
      drawn.drawnAt = performance.now() - state.started;
      document.body.dataset.drawn = 'yes';
    }).catch(function (e) { console.error(e); });
  }

  function translate() {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    Array.prototype.forEach.call(document.querySelectorAll('[data-i18n]'), function (node) { node.textContent = t(node.dataset.i18n); });
    Array.prototype.forEach.call(document.querySelectorAll('[data-i18n-placeholder]'), function (node) { node.placeholder = t(node.dataset.i18nPlaceholder); });
    $('lang').textContent = lang === 'zh' ? 'English' : '中文';
  }

  function fillFilters() {
    var shop = $('shop');
    while (shop.options.length > 1) shop.remove(1);
    state.viewer.shops.forEach(function (s) { shop.appendChild(el('option', { value: s.id, text: s.name + ' (' + s.platform + ')' })); });
    var platform = $('platform');
    while (platform.options.length > 1) platform.remove(1);
    PLATFORMS.filter(function (p) { return state.viewer.shops.some(function (s) { return s.platform === p; }); })
      .forEach(function (p) { platform.appendChild(el('option', { value: p, text: p })); });
    var status = $('status');
    while (status.options.length > 1) status.remove(1);
    STATUSES.forEach(function (s) { status.appendChild(el('option', { value: s, text: t(s) })); });
    $('from').value = state.from;
    $('to').value = state.to;
  }

  function start() {
    $('signin').hidden = true;
    return gql('{ viewer { account { id name } tenant { name } permissions shops { id name platform } } }', {}).then(function (body) {
      if (!body.data) throw new Error('viewer');
      state.viewer = {
        account: body.data.viewer.account, tenant: body.data.viewer.tenant,
        permissions: body.data.viewer.permissions, shops: body.data.viewer.shops
      };
      $('who').textContent = state.viewer.tenant.name + ' · ' + state.viewer.account.name;
      $('app').hidden = false;
      fillFilters();
      translate();
      if (!may('ANALYTICS_READ')) {
        ['panel-kpis', 'panel-trend'].concat(BREAKDOWNS.map(function (b) { return b.panel; }))
          .forEach(function (id) { $(id).hidden = true; });
      }
      return loadAll();
    }).catch(function () { signOut(); });
  }

  function signOut() {
    stopLive();
    localStorage.removeItem(TOKEN_KEY);
    state.token = null;
    $('app').hidden = true;
    $('signin').hidden = false;
    $('who').textContent = '';
    fetch('/dev/demo-accounts').then(function (r) { return r.ok ? r.json() : []; }).then(function (accounts) {
      var box = $('demo-accounts');
      box.textContent = '';
      accounts.forEach(function (a) {
        var b = el('button', { type: 'button', text: a.name + ' · ' + a.tenant });
        b.addEventListener('click', function () { signIn(a.token); });
        box.appendChild(b);
      });
    }).catch(function () {});
  }
  function signIn(token) {
    state.token = token.trim();
    localStorage.setItem(TOKEN_KEY, state.token);
    start();
  }

  function bind() {
    $('lang').addEventListener('click', function () {
      lang = lang === 'zh' ? 'en' : 'zh';
      localStorage.setItem(LANG_KEY, lang);
      translate();
      if (state.viewer) { fillFilters(); loadAll(); }
    });
    $('signout').addEventListener('click', signOut);
    $('token-go').addEventListener('click', function () { signIn($('token-input').value); });
    $('from').addEventListener('change', function () { state.from = this.value; resetPaging(); loadAll(); });
    $('to').addEventListener('change', function () { state.to = this.value; resetPaging(); loadAll(); });
    Array.prototype.forEach.call(document.querySelectorAll('.presets button'), function (b) {
      b.addEventListener('click', function () {
        state.to = todayInShanghai();
        state.from = addDays(state.to, 1 - Number(b.dataset.days));
        fillFilters(); resetPaging(); loadAll();
      });
    });
    $('shop').addEventListener('change', function () { state.shop = this.value; resetPaging(); loadAll(); });
    $('platform').addEventListener('change', function () { state.platform = this.value; resetPaging(); loadAll(); });
    $('granularity').addEventListener('change', function () { state.granularity = this.value; loadTrend(); });
    $('status').addEventListener('change', function () { state.status = this.value; state.kind = null; resetPaging(); loadOrders(); });
    $('order-no').addEventListener('change', function () { state.orderNo = this.value.trim(); state.kind = null; resetPaging(); loadOrders(); });
    $('next').addEventListener('click', function () { if (state.cursors[state.pageIndex + 1]) { state.pageIndex += 1; loadOrders(); } });
    $('prev').addEventListener('click', function () { if (state.pageIndex > 0) { state.pageIndex -= 1; loadOrders(); } });
    $('export').addEventListener('click', function () {
      var f = orderFilter();
      var params = ['placedFrom=' + encodeURIComponent(state.from), 'placedTo=' + encodeURIComponent(state.to),
        'timezone=Asia%2FShanghai', 'fields=orderNo,shopName,platform,status,placedAt,paidAt,currency,paidAmount,province,city,channel,receiverName,receiverPhone'];
      if (f.shopIds) params.push('shopIds=' + f.shopIds.join(','));
      if (f.platforms) params.push('platforms=' + f.platforms.join(','));
      if (f.statuses) params.push('statuses=' + f.statuses.join(','));
      if (f.orderNo) params.push('orderNo=' + encodeURIComponent(f.orderNo));
      gql('mutation DashboardExport($export: String!) { createExportLink(export: $export, ttlMinutes: 5) { url } }',
        { export: '/export/orders.csv?' + params.join('&') }).then(function (body) {
        panelError('panel-orders', body);
        if (body.data) location.href = body.data.createExportLink.url;
      });
    });
    window.addEventListener('resize', function () { Object.keys(charts).forEach(function (k) { charts[k].resize(); }); });
  }

  function init() {
    var hash = new URLSearchParams(location.hash.slice(1));
    if (hash.get('token')) localStorage.setItem(TOKEN_KEY, hash.get('token'));
    if (hash.get('lang')) { lang = hash.get('lang'); localStorage.setItem(LANG_KEY, lang); }
    state.to = hash.get('to') || todayInShanghai();
    state.from = hash.get('from') || addDays(state.to, -29);
    if (hash.get('token')) history.replaceState(null, '', location.pathname + location.search);
    bind();
    translate();
    var token = localStorage.getItem(TOKEN_KEY);
    if (token) signIn(token); else signOut();
  }
  init();
})();
