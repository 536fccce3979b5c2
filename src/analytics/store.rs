//! The in-memory columnar store every analytics answer is computed from.
//!
//! Each order is one row of plain columns (its shop, placing instant, dimension values
//! as small dictionary indexes, and the additive facts of the metrics (docs/ANALYTICS.md) already
//! reduced to what the metrics read), with its item lines beside it. Rows loaded at
//! start-up are sorted by `placed_at`, so a window is a binary search and trend buckets
//! and local days are contiguous row ranges; rows written later are appended to a small
//! unsorted tail. The store is derived from PostgreSQL only (`analytics::live` keeps it
//! current from the change log) and holds no I/O itself.

use std::collections::HashMap;

pub use crate::db::facts::{ItemFacts, OrderFacts, ShopFacts};

pub const PAID: u16 = 1;
pub const REFUNDED: u16 = 2;
pub const DISPUTED: u16 = 4;
pub const DELIVERED: u16 = 8;
pub const LIVE: u16 = 16;
pub const REFUND_PENDING: u16 = 32;
pub const DISPUTE_OPEN: u16 = 64;
/// Delivered within the delivery promise.
pub const ON_TIME: u16 = 128;
/// Paid and placed at the first instant of its buyer's paid orders in the shop.
pub const FIRST: u16 = 256;

/// The delivery promise in microseconds (`DELIVERY_PROMISE_HOURS`): a delivered order
/// is on time when its ship-to-delivery time is at most this.
static PROMISE_US: std::sync::atomic::AtomicI64 =
    std::sync::atomic::AtomicI64::new(DEFAULT_PROMISE_HOURS * 3_600_000_000);

/// The delivery promise unless `DELIVERY_PROMISE_HOURS` says otherwise.
pub const DEFAULT_PROMISE_HOURS: i64 = 72;

/// Sets the delivery promise ON_TIME_RATE is measured against (before the store loads).
pub fn set_delivery_promise_hours(hours: i64) {
    PROMISE_US.store(hours * 3_600_000_000, std::sync::atomic::Ordering::Relaxed);
}

/// The delivery promise in hours.
pub fn delivery_promise_hours() -> i64 {
    PROMISE_US.load(std::sync::atomic::Ordering::Relaxed) / 3_600_000_000
}

fn flags_of(order: &OrderFacts) -> u16 {
    let mut flags = LIVE;
    let promise = PROMISE_US.load(std::sync::atomic::Ordering::Relaxed);
    for (on, flag) in [
        (order.delivery_us.is_some_and(|d| d <= promise), ON_TIME),
        (order.paid, PAID),
        (order.refunded, REFUNDED),
        (order.disputed, DISPUTED),
        (order.delivery_us.is_some(), DELIVERED),
        (order.refund_pending, REFUND_PENDING),
        (order.dispute_open, DISPUTE_OPEN),
    ] {
        if on {
            flags |= flag;
        }
    }
    flags
}

/// Text values as dense indexes; index 0 is the empty key (a missing value).
#[derive(Debug, Default, Clone)]
pub struct Dict {
    map: HashMap<String, u32>,
    pub names: Vec<String>,
}

impl Dict {
    pub fn new() -> Dict {
        let mut d = Dict::default();
        d.intern("");
        d
    }

    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(i) = self.map.get(name) {
            return *i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_string());
        self.map.insert(name.to_string(), i);
        i
    }

    pub fn get(&self, name: &str) -> Option<u32> {
        self.map.get(name).copied()
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Database ids (shops, creators, products) as dense indexes; index 0 is "none".
#[derive(Debug, Clone)]
pub struct IdDict {
    map: HashMap<i64, u32>,
    pub ids: Vec<Option<i64>>,
}

impl Default for IdDict {
    fn default() -> IdDict {
        IdDict {
            map: HashMap::new(),
            ids: vec![None],
        }
    }
}

impl IdDict {
    pub fn intern(&mut self, id: Option<i64>) -> u32 {
        let Some(id) = id else { return 0 };
        if let Some(i) = self.map.get(&id) {
            return *i;
        }
        let i = self.ids.len() as u32;
        self.ids.push(Some(id));
        self.map.insert(id, i);
        i
    }

    pub fn get(&self, id: i64) -> Option<u32> {
        self.map.get(&id).copied()
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The key a breakdown shows: the id, or empty for "none".
    pub fn key(&self, i: u32) -> String {
        self.ids[i as usize]
            .map(|id| id.to_string())
            .unwrap_or_default()
    }
}

/// Rows of orders as columns. Money columns already hold what the metrics count:
/// `gmv` the paid amount of a paid order, `units` the quantities of a paid order,
/// `commission` that of a paid order with a creator, `refund` the refunded amounts.
#[derive(Debug, Default)]
pub struct Segment {
    pub placed_at: Vec<i64>,
    pub shop: Vec<u32>,
    pub flags: Vec<u16>,
    pub status: Vec<u8>,
    pub channel: Vec<u8>,
    pub carrier: Vec<u16>,
    pub payment: Vec<u8>,
    pub province: Vec<u16>,
    pub creator: Vec<u32>,
    pub buyer: Vec<u32>,
    pub gmv: Vec<i64>,
    pub units: Vec<i64>,
    pub refund: Vec<i64>,
    pub commission: Vec<i64>,
    pub delivery_us: Vec<i64>,
    /// `OrderFacts::since_us`, `i64::MAX` when none.
    pub since_us: Vec<i64>,
    /// Lines of row `r` are `item_start[r]..item_start[r + 1]`.
    pub item_start: Vec<u32>,
    pub item_product: Vec<u32>,
    pub item_quantity: Vec<i32>,
    pub item_paid: Vec<i64>,
}

impl Segment {
    fn new() -> Segment {
        Segment {
            item_start: vec![0],
            ..Segment::default()
        }
    }

    pub fn len(&self) -> usize {
        self.placed_at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.placed_at.is_empty()
    }

    pub fn items(&self, row: usize) -> std::ops::Range<usize> {
        self.item_start[row] as usize..self.item_start[row + 1] as usize
    }

    fn bytes(&self) -> usize {
        self.len() * (8 + 4 + 2 + 1 + 1 + 2 + 1 + 2 + 4 + 4 + 8 * 6 + 4)
            + self.item_product.len() * (4 + 4 + 8)
    }
}

/// Where an order's row is: the sorted body or the tail.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    Body(u32),
    Tail(u32),
}

/// Order id → row. Order ids come from one sequence, so they are dense: a vector
/// indexed by `id - base` (4 bytes an order) where they are, a map where they are not.
#[derive(Debug, Default)]
struct Places {
    base: i64,
    dense: Vec<u32>,
    sparse: HashMap<i64, Place>,
}

const NOWHERE: u32 = u32::MAX;
const TAIL_BIT: u32 = 1 << 31;

impl Places {
    /// Sizes the dense part for ids `min..=max`.
    fn reserve(&mut self, min: i64, max: i64) {
        if self.dense.is_empty() && max >= min && max - min < (1 << 30) {
            self.base = min;
            self.dense = vec![NOWHERE; (max - min + 1) as usize];
        }
    }

    fn slot(&self, id: i64) -> Option<usize> {
        let i = id.checked_sub(self.base)?;
        (i >= 0 && (i as usize) < self.dense.len()).then_some(i as usize)
    }

    fn get(&self, id: i64) -> Option<Place> {
        match self.slot(id) {
            Some(i) => match self.dense[i] {
                NOWHERE => None,
                v if v & TAIL_BIT != 0 => Some(Place::Tail(v & !TAIL_BIT)),
                v => Some(Place::Body(v)),
            },
            None => self.sparse.get(&id).copied(),
        }
    }

    fn set(&mut self, id: i64, place: Option<Place>) {
        // New ids just past the dense range extend it (they come from the sequence).
        if let Some(i) = id.checked_sub(self.base) {
            let len = self.dense.len() as i64;
            if !self.dense.is_empty() && i >= len && i < len + (1 << 20) {
                self.dense.resize(i as usize + 1, NOWHERE);
            }
        }
        match self.slot(id) {
            Some(i) => {
                self.dense[i] = match place {
                    None => NOWHERE,
                    Some(Place::Body(r)) => r,
                    Some(Place::Tail(r)) => r | TAIL_BIT,
                }
            }
            None => {
                match place {
                    Some(p) => self.sparse.insert(id, p),
                    None => self.sparse.remove(&id),
                };
            }
        }
    }

    /// Every place moves to the body row the maps give.
    fn remap(&mut self, body_row: &[u32], tail_row: &[u32]) {
        let moved = |v: u32| -> u32 {
            if v & TAIL_BIT != 0 {
                tail_row[(v & !TAIL_BIT) as usize]
            } else {
                body_row[v as usize]
            }
        };
        for v in self.dense.iter_mut() {
            if *v != NOWHERE {
                *v = moved(*v);
            }
        }
        for place in self.sparse.values_mut() {
            let v = match *place {
                Place::Body(r) => r,
                Place::Tail(r) => r | TAIL_BIT,
            };
            *place = Place::Body(moved(v));
        }
    }

    fn bytes(&self) -> usize {
        self.dense.len() * 4 + self.sparse.len() * 24
    }
}

/// The store: dictionaries, the sorted body and the unsorted tail.
#[derive(Debug)]
pub struct Store {
    pub body: Segment,
    pub tail: Segment,
    places: Places,
    pub shops: IdDict,
    /// Per shop index: platform and currency indexes.
    pub shop_platform: Vec<u32>,
    pub shop_currency: Vec<u32>,
    pub platforms: Dict,
    pub currencies: Dict,
    pub statuses: Dict,
    pub channels: Dict,
    pub carriers: Dict,
    pub payments: Dict,
    pub provinces: Dict,
    /// Per province index: its region index (0 for a code without a region).
    pub province_region: Vec<u32>,
    pub regions: Dict,
    province_regions: HashMap<String, String>,
    pub creators: IdDict,
    pub products: IdDict,
    /// Per product index: its current category index.
    pub product_category: Vec<u32>,
    pub categories: Dict,
    pub buyers: Dict,
    /// Rows deleted or moved since loading (kept as dead rows until a rebuild).
    pub dead_rows: usize,
    /// The body's order-level sums per shop and 15-minute UTC slot.
    pub cells: Cells,
    /// Each buyer's rows, to keep the first-order marks ([`FIRST`]) current.
    buyer_rows: BuyerRows,
    /// Body rows that were on an abnormal-order list when the body was built or
    /// since (readers check each row's current state), so that the lists' counts
    /// read these rows and the tail instead of every row.
    open_rows: OpenRows,
    /// Body rows by product.
    pub product_rows: ProductRows,
}

/// Body rows by product, so that a product or category filter reads the rows of its
/// products instead of every row's lines. The rows with a line of product `p` when
/// the body was built are `rows[offsets[p]..offsets[p + 1]]`, ascending; rows whose
/// lines changed in place since are in `changed` (readers check every row's lines).
#[derive(Debug, Default)]
pub struct ProductRows {
    offsets: Vec<u32>,
    rows: Vec<u32>,
    pub changed: Vec<u32>,
}

impl ProductRows {
    fn build(body: &Segment, products: usize) -> ProductRows {
        // Each (product, row) once: lines of one order rarely repeat a product.
        let (offsets, rows) = rows_by_key(products, || {
            (0..body.len()).flat_map(|r| {
                let lines = body.items(r);
                let first = lines.start;
                lines
                    .filter(move |l| !body.item_product[first..*l].contains(&body.item_product[*l]))
                    .map(move |l| (body.item_product[l], r as u32))
            })
        });
        ProductRows {
            offsets,
            rows,
            changed: Vec::new(),
        }
    }

    /// The rows of product `p` (as built) in `lo..hi`.
    pub fn of(&self, p: u32, lo: usize, hi: usize) -> &[u32] {
        let p = p as usize;
        if p + 1 >= self.offsets.len() {
            return &[];
        }
        let list = &self.rows[self.offsets[p] as usize..self.offsets[p + 1] as usize];
        let a = list.partition_point(|r| (*r as usize) < lo);
        let b = list.partition_point(|r| (*r as usize) < hi);
        &list[a..b]
    }

    fn bytes(&self) -> usize {
        (self.offsets.len() + self.rows.len() + self.changed.len()) * 4
    }
}

/// Body rows that may be on an abnormal-order list, each listed once.
#[derive(Debug, Default)]
struct OpenRows {
    rows: Vec<u32>,
    listed: Vec<u64>,
}

impl OpenRows {
    fn add(&mut self, r: usize) {
        let (w, bit) = (r / 64, 1u64 << (r % 64));
        if w >= self.listed.len() {
            self.listed.resize(w + 1, 0);
        }
        if self.listed[w] & bit == 0 {
            self.listed[w] |= bit;
            self.rows.push(r as u32);
        }
    }

    fn bytes(&self) -> usize {
        self.rows.len() * 4 + self.listed.len() * 8
    }
}

/// Each buyer's rows as ordinals (body rows, then tail row `r` at `body.len() + r`):
/// the body's in row order, built when the body is, and the rows written since in
/// `written`. A row whose buyer changed stays listed under the old buyer as well;
/// readers check the row's buyer.
#[derive(Debug, Default)]
struct BuyerRows {
    offsets: Vec<u32>,
    rows: Vec<u32>,
    written: HashMap<u32, Vec<u32>>,
}

/// Rows grouped by key with a counting sort: `pairs()` yields (key, row) pairs (it is
/// called twice: to count, then to place); the rows of key `k` are
/// `rows[offsets[k]..offsets[k + 1]]`, in the order they were yielded. Returns
/// `(offsets, rows)`.
fn rows_by_key<I: Iterator<Item = (u32, u32)>>(
    keys: usize,
    pairs: impl Fn() -> I,
) -> (Vec<u32>, Vec<u32>) {
    let mut offsets = vec![0u32; keys + 1];
    for (k, _) in pairs() {
        offsets[k as usize + 1] += 1;
    }
    for i in 1..offsets.len() {
        offsets[i] += offsets[i - 1];
    }
    let mut next = offsets.clone();
    let mut rows = vec![0u32; offsets[keys] as usize];
    for (k, r) in pairs() {
        let slot = &mut next[k as usize];
        rows[*slot as usize] = r;
        *slot += 1;
    }
    (offsets, rows)
}

impl BuyerRows {
    fn build(body: &Segment, buyers: usize) -> BuyerRows {
        let (offsets, rows) = rows_by_key(buyers, || {
            body.buyer.iter().enumerate().map(|(r, b)| (*b, r as u32))
        });
        BuyerRows {
            offsets,
            rows,
            written: HashMap::new(),
        }
    }

    fn of(&self, buyer: u32) -> Vec<u32> {
        let b = buyer as usize;
        let mut out: Vec<u32> = if b + 1 < self.offsets.len() {
            self.rows[self.offsets[b] as usize..self.offsets[b + 1] as usize].to_vec()
        } else {
            Vec::new()
        };
        if let Some(more) = self.written.get(&buyer) {
            out.extend_from_slice(more);
        }
        out
    }

    fn bytes(&self) -> usize {
        (self.offsets.len() + self.rows.len()) * 4 + self.written.len() * 48
    }
}

/// Seconds of one cell slot: every zone's midnights and hours fall on one (all
/// offsets are multiples of 15 minutes), so any window in any zone is whole slots.
pub const SLOT: i64 = 900;

/// Order-level sums of the body's live rows of one shop and slot.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cell {
    pub orders: i64,
    pub paid_orders: i64,
    pub refund_orders: i64,
    pub dispute_orders: i64,
    pub delivered_orders: i64,
    pub on_time_orders: i64,
    pub units: i64,
    pub delivery_us: i64,
    pub gmv: i64,
    pub refund: i64,
    pub commission: i64,
}

/// Per shop index: the first slot and that shop's cells from it, one per slot.
#[derive(Debug, Default)]
pub struct Cells {
    pub first: Vec<i64>,
    pub cells: Vec<Vec<Cell>>,
}

impl Store {
    /// An empty store with the reference data it maps keys through.
    pub fn new(province_regions: HashMap<String, String>) -> Store {
        let mut store = Store {
            body: Segment::new(),
            tail: Segment::new(),
            places: Places::default(),
            shops: IdDict::default(),
            shop_platform: vec![0],
            shop_currency: vec![0],
            platforms: Dict::new(),
            currencies: Dict::new(),
            statuses: Dict::new(),
            channels: Dict::new(),
            carriers: Dict::new(),
            payments: Dict::new(),
            provinces: Dict::new(),
            province_region: vec![0],
            regions: Dict::new(),
            province_regions,
            creators: IdDict::default(),
            products: IdDict::default(),
            product_category: vec![0],
            categories: Dict::new(),
            buyers: Dict::new(),
            dead_rows: 0,
            cells: Cells::default(),
            buyer_rows: BuyerRows::default(),
            open_rows: OpenRows::default(),
            product_rows: ProductRows::default(),
        };
        store.currencies.intern("CNY");
        store
    }

    /// Rows (live and dead) and an estimate of the bytes the columns take.
    pub fn size(&self) -> (usize, usize) {
        (
            self.body.len() + self.tail.len(),
            self.body.bytes()
                + self.tail.bytes()
                + self.places.bytes()
                + self.buyer_rows.bytes()
                + self.open_rows.bytes()
                + self.product_rows.bytes(),
        )
    }

    pub fn set_shop(&mut self, shop: &ShopFacts) {
        let i = self.shops.intern(Some(shop.id)) as usize;
        let platform = self.platforms.intern(&shop.platform);
        let currency = self.currencies.intern(&shop.currency);
        if self.shop_platform.len() <= i {
            self.shop_platform.resize(i + 1, 0);
            self.shop_currency.resize(i + 1, 0);
        }
        self.shop_platform[i] = platform;
        self.shop_currency[i] = currency;
    }

    pub fn set_product(&mut self, id: i64, category: &str) {
        let i = self.products.intern(Some(id)) as usize;
        let c = self.categories.intern(category);
        if self.product_category.len() <= i {
            self.product_category.resize(i + 1, 0);
        }
        self.product_category[i] = c;
    }

    fn province(&mut self, code: Option<&str>) -> u16 {
        let code = code.unwrap_or("");
        let i = self.provinces.intern(code) as usize;
        if self.province_region.len() <= i {
            let region = match self.province_regions.get(code) {
                Some(r) => self.regions.intern(r),
                None => 0,
            };
            self.province_region.resize(i + 1, 0);
            self.province_region[i] = region;
        }
        u16::try_from(i).unwrap_or(0)
    }

    /// A carrier's index (carriers past the 65,535th share the index of "none"; the
    /// names are the tenants' own, typically a few dozen).
    fn carrier(&mut self, name: Option<&str>) -> u16 {
        u16::try_from(self.carriers.intern(name.unwrap_or(""))).unwrap_or(0)
    }

    fn product(&mut self, id: Option<i64>) -> u32 {
        let i = self.products.intern(id);
        if self.product_category.len() <= i as usize {
            // A product the store has not read yet has no category until it does
            // (its row arrives in the same catch-up).
            self.product_category.resize(i as usize + 1, 0);
        }
        i
    }

    fn push(&mut self, order: &OrderFacts, into_body: bool) -> u32 {
        let shop = self.shops.intern(Some(order.shop_id));
        if self.shop_platform.len() <= shop as usize {
            self.shop_platform.resize(shop as usize + 1, 0);
            self.shop_currency.resize(shop as usize + 1, 0);
        }
        let status = self.statuses.intern(&order.status) as u8;
        let channel = self.channels.intern(&order.channel) as u8;
        let carrier = self.carrier(order.carrier.as_deref());
        let payment = self
            .payments
            .intern(order.payment_method.as_deref().unwrap_or("")) as u8;
        let province = self.province(order.province.as_deref());
        let creator = self.creators.intern(order.creator_id);
        let buyer = self.buyers.intern(&order.buyer);
        let products: Vec<u32> = order
            .items
            .iter()
            .map(|i| self.product(i.product_id))
            .collect();
        let seg = if into_body {
            &mut self.body
        } else {
            &mut self.tail
        };
        let row = seg.len() as u32;
        let flags = flags_of(order);
        seg.placed_at.push(order.placed_at);
        seg.shop.push(shop);
        seg.flags.push(flags);
        seg.status.push(status);
        seg.channel.push(channel);
        seg.carrier.push(carrier);
        seg.payment.push(payment);
        seg.province.push(province);
        seg.creator.push(creator);
        seg.buyer.push(buyer);
        let paid = i64::from(order.paid);
        seg.gmv.push(order.paid_amount * paid);
        seg.units.push(
            order
                .items
                .iter()
                .map(|i| i64::from(i.quantity))
                .sum::<i64>()
                * paid,
        );
        seg.refund.push(order.refund_amount);
        seg.commission
            .push(order.commission * paid * i64::from(order.creator_id.is_some()));
        seg.delivery_us.push(order.delivery_us.unwrap_or(0));
        seg.since_us.push(order.since_us.unwrap_or(i64::MAX));
        for (item, product) in order.items.iter().zip(products) {
            seg.item_product.push(product);
            seg.item_quantity.push(item.quantity);
            seg.item_paid.push(item.paid_amount);
        }
        seg.item_start.push(seg.item_product.len() as u32);
        row
    }

    /// Adds (`sign` 1) or removes (-1) a live body row's sums from its cell.
    fn cell_add(&mut self, r: usize, sign: i64) {
        let b = &self.body;
        let flags = b.flags[r];
        if flags & LIVE == 0 {
            return;
        }
        let shop = b.shop[r] as usize;
        let slot = b.placed_at[r].div_euclid(SLOT);
        let cells = &mut self.cells;
        if cells.first.len() <= shop {
            cells.first.resize(shop + 1, slot);
            cells.cells.resize(shop + 1, Vec::new());
        }
        let list = &mut cells.cells[shop];
        if list.is_empty() {
            cells.first[shop] = slot;
        }
        if slot < cells.first[shop] {
            let grow = (cells.first[shop] - slot) as usize;
            list.splice(0..0, std::iter::repeat_n(Cell::default(), grow));
            cells.first[shop] = slot;
        }
        let i = (slot - cells.first[shop]) as usize;
        if list.len() <= i {
            list.resize(i + 1, Cell::default());
        }
        let paid = i64::from(flags & PAID != 0);
        let c = &mut list[i];
        c.orders += sign;
        c.paid_orders += sign * paid;
        c.refund_orders += sign * (paid & i64::from(flags & REFUNDED != 0));
        c.dispute_orders += sign * i64::from(flags & DISPUTED != 0);
        c.delivered_orders += sign * i64::from(flags & DELIVERED != 0);
        c.on_time_orders += sign * i64::from(flags & ON_TIME != 0);
        c.units += sign * b.units[r];
        c.delivery_us += sign * b.delivery_us[r];
        c.gmv += sign * b.gmv[r];
        c.refund += sign * b.refund[r];
        c.commission += sign * b.commission[r];
    }

    /// Sums every live body row into cells again (after loading or compacting).
    fn build_cells(&mut self) {
        self.cells = Cells::default();
        for r in 0..self.body.len() {
            self.cell_add(r, 1);
        }
    }

    /// Sizes the order index for the ids a bulk load will bring.
    pub fn reserve_ids(&mut self, min: i64, max: i64) {
        self.places.reserve(min, max);
    }

    /// Loads orders in bulk into the body (sorted by `finish_load`).
    pub fn load(&mut self, orders: &[OrderFacts]) {
        for order in orders {
            let row = self.push(order, true);
            self.places.set(order.id, Some(Place::Body(row)));
        }
    }

    /// Sorts the body by `placed_at` once loading is done.
    pub fn finish_load(&mut self) {
        let placed = &self.body.placed_at;
        let mut order: Vec<(bool, u32)> = (0..placed.len() as u32).map(|r| (false, r)).collect();
        order.sort_by_key(|&(_, r)| placed[r as usize]);
        self.rebuild(&order);
    }

    /// Merges the tail into the body and drops dead rows: the body stays sorted, so
    /// windows stay binary searches however many orders were written since loading.
    pub fn compact(&mut self) {
        let live = |seg: &Segment, tail: bool| -> Vec<(bool, u32)> {
            (0..seg.len() as u32)
                .filter(|r| seg.flags[*r as usize] & LIVE != 0)
                .map(|r| (tail, r))
                .collect()
        };
        let body = live(&self.body, false);
        let mut tail = live(&self.tail, true);
        tail.sort_by_key(|&(_, r)| self.tail.placed_at[r as usize]);
        let at = |(t, r): (bool, u32)| {
            if t {
                self.tail.placed_at[r as usize]
            } else {
                self.body.placed_at[r as usize]
            }
        };
        let mut order = Vec::with_capacity(body.len() + tail.len());
        let (mut i, mut j) = (0, 0);
        while i < body.len() || j < tail.len() {
            if j >= tail.len() || (i < body.len() && at(body[i]) <= at(tail[j])) {
                order.push(body[i]);
                i += 1;
            } else {
                order.push(tail[j]);
                j += 1;
            }
        }
        self.rebuild(&order);
        self.dead_rows = 0;
    }

    /// Makes the body the rows `order` names (from the body or the tail), one column
    /// at a time so that memory grows by one column, not by a second store.
    fn rebuild(&mut self, order: &[(bool, u32)]) {
        let old_body_len = self.body.len();
        let (body, tail) = (&mut self.body, &self.tail);
        macro_rules! gather {
            ($($col:ident),*) => {$(
                let column = order
                    .iter()
                    .map(|&(t, r)| if t { tail.$col[r as usize] } else { body.$col[r as usize] })
                    .collect();
                body.$col = column;
            )*};
        }
        // Lines first: they are read through the old row numbers.
        let mut starts = Vec::with_capacity(order.len() + 1);
        starts.push(0u32);
        let mut product = Vec::new();
        let mut quantity = Vec::new();
        let mut paid = Vec::new();
        for &(t, r) in order {
            let seg: &Segment = if t { tail } else { body };
            let lines = seg.items(r as usize);
            product.extend_from_slice(&seg.item_product[lines.clone()]);
            quantity.extend_from_slice(&seg.item_quantity[lines.clone()]);
            paid.extend_from_slice(&seg.item_paid[lines]);
            starts.push(product.len() as u32);
        }
        gather!(
            placed_at,
            shop,
            flags,
            status,
            channel,
            carrier,
            payment,
            province,
            creator,
            buyer,
            gmv,
            units,
            refund,
            commission,
            delivery_us,
            since_us
        );
        body.item_start = starts;
        body.item_product = product;
        body.item_quantity = quantity;
        body.item_paid = paid;
        let mut body_row = vec![NOWHERE; old_body_len];
        let mut tail_row = vec![NOWHERE; self.tail.len()];
        for (to, &(t, r)) in order.iter().enumerate() {
            if t {
                tail_row[r as usize] = to as u32;
            } else {
                body_row[r as usize] = to as u32;
            }
        }
        self.places.remap(&body_row, &tail_row);
        self.tail = Segment::new();
        self.build_cells();
        self.buyer_rows = BuyerRows::build(&self.body, self.buyers.len());
        self.mark_firsts();
        self.product_rows = ProductRows::build(&self.body, self.products.len());
        self.open_rows = OpenRows::default();
        let statuses = self.open_statuses();
        for r in 0..self.body.len() {
            if Self::may_be_open(&statuses, self.body.status[r], self.body.flags[r]) {
                self.open_rows.add(r);
            }
        }
    }

    /// The status indexes of the abnormal-order lists: unpaid, awaiting shipment,
    /// shipped (`u8::MAX` for a status not seen yet).
    fn open_statuses(&self) -> [u8; 3] {
        let status = |name: &str| self.statuses.get(name).map_or(u8::MAX, |i| i as u8);
        [
            status("PENDING_PAYMENT"),
            status("AWAITING_SHIPMENT"),
            status("SHIPPED"),
        ]
    }

    /// Whether a row with this status and flags may be on an abnormal-order list
    /// now or later (the lists' age conditions change with time alone).
    fn may_be_open(statuses: &[u8; 3], status: u8, flags: u16) -> bool {
        statuses.contains(&status) || flags & (REFUND_PENDING | DISPUTE_OPEN) != 0
    }

    /// Marks every body row placed at the first instant of its buyer's paid orders in
    /// its shop, and unmarks the others: a buyer's body rows are listed in row order,
    /// which is time order.
    fn mark_firsts(&mut self) {
        let body = &mut self.body;
        let mut firsts: Vec<(u32, i64)> = Vec::new();
        for b in 0..self.buyer_rows.offsets.len().saturating_sub(1) {
            firsts.clear();
            let range =
                self.buyer_rows.offsets[b] as usize..self.buyer_rows.offsets[b + 1] as usize;
            for &r in &self.buyer_rows.rows[range] {
                let r = r as usize;
                body.flags[r] &= !FIRST;
                if body.flags[r] & (LIVE | PAID) != LIVE | PAID {
                    continue;
                }
                let (shop, at) = (body.shop[r], body.placed_at[r]);
                let first = match firsts.iter().find(|(s, _)| *s == shop) {
                    Some((_, t)) => *t,
                    None => {
                        firsts.push((shop, at));
                        at
                    }
                };
                if at == first {
                    body.flags[r] |= FIRST;
                }
            }
        }
    }

    /// The segment and row of an ordinal.
    fn locate(&self, ordinal: u32) -> (bool, usize) {
        let body = self.body.len();
        if (ordinal as usize) < body {
            (false, ordinal as usize)
        } else {
            (true, ordinal as usize - body)
        }
    }

    /// Marks the rows of one (shop, buyer) placed at the first instant of its paid
    /// orders, and unmarks its other rows.
    fn refresh_first(&mut self, shop: u32, buyer: u32) {
        let rows = self.buyer_rows.of(buyer);
        let mut first = i64::MAX;
        let mut mine = Vec::with_capacity(rows.len());
        for o in rows {
            let (in_tail, r) = self.locate(o);
            let seg = if in_tail { &self.tail } else { &self.body };
            if r < seg.len() && seg.buyer[r] == buyer && seg.shop[r] == shop {
                if seg.flags[r] & (LIVE | PAID) == LIVE | PAID {
                    first = first.min(seg.placed_at[r]);
                }
                mine.push((in_tail, r));
            }
        }
        for (in_tail, r) in mine {
            let seg = if in_tail {
                &mut self.tail
            } else {
                &mut self.body
            };
            let on = seg.flags[r] & (LIVE | PAID) == LIVE | PAID && seg.placed_at[r] == first;
            if on {
                seg.flags[r] |= FIRST;
            } else {
                seg.flags[r] &= !FIRST;
            }
        }
    }

    /// The (shop, buyer) of an order's row.
    fn pair_of(&self, id: i64) -> Option<(u32, u32)> {
        let (seg, r) = match self.places.get(id)? {
            Place::Body(r) => (&self.body, r as usize),
            Place::Tail(r) => (&self.tail, r as usize),
        };
        Some((seg.shop[r], seg.buyer[r]))
    }

    /// Whether the store holds a live row for the order.
    pub fn has_order(&self, id: i64) -> bool {
        self.places.get(id).is_some()
    }

    /// Replaces an order's row with its current facts (`None`: it no longer exists).
    /// An order whose window position or lines changed moves to the tail.
    pub fn apply(&mut self, id: i64, order: Option<&OrderFacts>) {
        let before = self.pair_of(id);
        self.replace(id, order);
        let after = self.pair_of(id);
        if let Some((shop, buyer)) = before {
            self.refresh_first(shop, buyer);
        }
        if let Some((shop, buyer)) = after.filter(|a| Some(*a) != before) {
            self.refresh_first(shop, buyer);
        }
    }

    fn replace(&mut self, id: i64, order: Option<&OrderFacts>) {
        let place = self.places.get(id);
        if let (Some(place), Some(order)) = (place, order) {
            if self.update_in_place(place, order) {
                return;
            }
        }
        if let Some(place) = place {
            if let Place::Body(r) = place {
                self.cell_add(r as usize, -1);
            }
            let (seg, r) = match place {
                Place::Body(r) => (&mut self.body, r),
                Place::Tail(r) => (&mut self.tail, r),
            };
            seg.flags[r as usize] &= !LIVE;
            self.dead_rows += 1;
            self.places.set(id, None);
        }
        if let Some(order) = order {
            let row = self.push(order, false);
            self.places.set(id, Some(Place::Tail(row)));
            let ordinal = (self.body.len() + row as usize) as u32;
            let buyer = self.tail.buyer[row as usize];
            self.buyer_rows
                .written
                .entry(buyer)
                .or_default()
                .push(ordinal);
        }
    }

    fn update_in_place(&mut self, place: Place, order: &OrderFacts) -> bool {
        let (in_body, r) = match place {
            Place::Body(r) => (true, r as usize),
            Place::Tail(r) => (false, r as usize),
        };
        let same_shape = {
            let seg = if in_body { &self.body } else { &self.tail };
            seg.placed_at[r] == order.placed_at
                && self.shops.get(order.shop_id) == Some(seg.shop[r])
                && seg.items(r).len() == order.items.len()
        };
        if !same_shape {
            return false;
        }
        if in_body {
            self.cell_add(r, -1);
        }
        let status = self.statuses.intern(&order.status) as u8;
        let channel = self.channels.intern(&order.channel) as u8;
        let carrier = self.carrier(order.carrier.as_deref());
        let payment = self
            .payments
            .intern(order.payment_method.as_deref().unwrap_or("")) as u8;
        let province = self.province(order.province.as_deref());
        let creator = self.creators.intern(order.creator_id);
        let buyer = self.buyers.intern(&order.buyer);
        let products: Vec<u32> = order
            .items
            .iter()
            .map(|i| self.product(i.product_id))
            .collect();
        let seg = if in_body {
            &mut self.body
        } else {
            &mut self.tail
        };
        let flags = flags_of(order);
        let paid = i64::from(order.paid);
        seg.flags[r] = flags;
        seg.status[r] = status;
        seg.channel[r] = channel;
        seg.carrier[r] = carrier;
        seg.payment[r] = payment;
        seg.province[r] = province;
        seg.creator[r] = creator;
        if seg.buyer[r] != buyer {
            let ordinal = if in_body { r } else { self.body.len() + r } as u32;
            self.buyer_rows
                .written
                .entry(buyer)
                .or_default()
                .push(ordinal);
        }
        let seg = if in_body {
            &mut self.body
        } else {
            &mut self.tail
        };
        seg.buyer[r] = buyer;
        seg.gmv[r] = order.paid_amount * paid;
        seg.units[r] = order
            .items
            .iter()
            .map(|i| i64::from(i.quantity))
            .sum::<i64>()
            * paid;
        seg.refund[r] = order.refund_amount;
        seg.commission[r] = order.commission * paid * i64::from(order.creator_id.is_some());
        seg.delivery_us[r] = order.delivery_us.unwrap_or(0);
        seg.since_us[r] = order.since_us.unwrap_or(i64::MAX);
        let mut lines_changed = false;
        for ((line, item), product) in seg.items(r).zip(&order.items).zip(products) {
            lines_changed |= seg.item_product[line] != product;
            seg.item_product[line] = product;
            seg.item_quantity[line] = item.quantity;
            seg.item_paid[line] = item.paid_amount;
        }
        if in_body {
            if lines_changed {
                self.product_rows.changed.push(r as u32);
            }
            self.cell_add(r, 1);
            if Self::may_be_open(&self.open_statuses(), status, flags) {
                self.open_rows.add(r);
            }
        }
        true
    }

    /// Orders on each abnormal-order list of these shops as of `now_us`:
    /// unpaid over 24 h, ship overdue (paid over 48 h ago), refund pending, dispute
    /// open, delivery stalled (shipped over 7 days ago), in that order.
    pub fn abnormal(&self, shop_ids: &[i64], now_us: i64) -> [i64; 5] {
        let mut shop_ok = vec![false; self.shops.len()];
        for id in shop_ids {
            if let Some(i) = self.shops.get(*id) {
                shop_ok[i as usize] = true;
            }
        }
        let [unpaid, awaiting, shipped] = self.open_statuses();
        const HOUR: i64 = 3_600_000_000;
        let mut out = [0i64; 5];
        let mut count = |seg: &Segment, r: usize| {
            let flags = seg.flags[r];
            if flags & LIVE == 0 || !shop_ok[seg.shop[r] as usize] {
                return;
            }
            let (st, since) = (seg.status[r], seg.since_us[r]);
            out[0] += i64::from(st == unpaid && since < now_us - 24 * HOUR);
            out[1] += i64::from(st == awaiting && since < now_us - 48 * HOUR);
            out[2] += i64::from(flags & REFUND_PENDING != 0);
            out[3] += i64::from(flags & DISPUTE_OPEN != 0);
            out[4] += i64::from(st == shipped && since < now_us - 7 * 24 * HOUR);
        };
        for &r in &self.open_rows.rows {
            count(&self.body, r as usize);
        }
        for r in 0..self.tail.len() {
            count(&self.tail, r);
        }
        out
    }
}
