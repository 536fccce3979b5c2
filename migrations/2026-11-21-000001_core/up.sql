-- Core data model of orderscope (DESIGN section 1).
-- Money is BIGINT minor units; timestamps are TIMESTAMPTZ in UTC; enums are TEXT with CHECK
-- constraints spelled exactly like the GraphQL enums.

CREATE TABLE tenants (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE shops (
    id          BIGSERIAL PRIMARY KEY,
    tenant_id   BIGINT NOT NULL REFERENCES tenants (id),
    platform    TEXT NOT NULL CHECK (platform IN ('DOUYIN', 'TIKTOK', 'TAOBAO', 'TMALL', 'KUAISHOU', 'JD', 'PDD')),
    external_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    currency    TEXT NOT NULL DEFAULT 'CNY' CHECK (currency ~ '^[A-Z]{3}$'),
    timezone    TEXT NOT NULL DEFAULT 'Asia/Shanghai',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (platform, external_id)
);
CREATE INDEX shops_tenant_idx ON shops (tenant_id);

CREATE TABLE provinces (
    code     TEXT PRIMARY KEY CHECK (code ~ '^[0-9]{2}$'),
    name_zh  TEXT NOT NULL,
    name_en  TEXT NOT NULL,
    region   TEXT NOT NULL CHECK (region IN ('EAST', 'SOUTH', 'NORTH', 'CENTRAL', 'SOUTHWEST', 'NORTHWEST', 'NORTHEAST'))
);

CREATE TABLE products (
    id          BIGSERIAL PRIMARY KEY,
    shop_id     BIGINT NOT NULL REFERENCES shops (id),
    external_id TEXT NOT NULL,
    title       TEXT NOT NULL,
    category    TEXT NOT NULL,
    list_price  BIGINT NOT NULL CHECK (list_price >= 0),
    UNIQUE (shop_id, external_id)
);

CREATE TABLE creators (
    id           BIGSERIAL PRIMARY KEY,
    platform     TEXT NOT NULL CHECK (platform IN ('DOUYIN', 'TIKTOK', 'TAOBAO', 'TMALL', 'KUAISHOU', 'JD', 'PDD')),
    external_id  TEXT NOT NULL,
    handle       TEXT NOT NULL,
    display_name TEXT NOT NULL,
    followers    BIGINT NOT NULL DEFAULT 0 CHECK (followers >= 0),
    UNIQUE (platform, external_id)
);

CREATE TABLE orders (
    id                  BIGSERIAL PRIMARY KEY,
    shop_id             BIGINT NOT NULL REFERENCES shops (id),
    order_no            TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('PENDING_PAYMENT', 'AWAITING_SHIPMENT', 'SHIPPED', 'DELIVERED', 'COMPLETED', 'CANCELLED', 'CLOSED')),
    raw_status          TEXT NOT NULL,
    placed_at           TIMESTAMPTZ NOT NULL,
    paid_at             TIMESTAMPTZ,
    shipped_at          TIMESTAMPTZ,
    delivered_at        TIMESTAMPTZ,
    completed_at        TIMESTAMPTZ,
    cancelled_at        TIMESTAMPTZ,
    payment_method      TEXT CHECK (payment_method IN ('DOUYIN_PAY', 'ALIPAY', 'WECHAT_PAY', 'CARD', 'COD', 'OTHER')),
    goods_amount        BIGINT NOT NULL CHECK (goods_amount >= 0),
    shipping_fee        BIGINT NOT NULL DEFAULT 0 CHECK (shipping_fee >= 0),
    discount_amount     BIGINT NOT NULL DEFAULT 0 CHECK (discount_amount >= 0),
    paid_amount         BIGINT NOT NULL DEFAULT 0 CHECK (paid_amount >= 0),
    province_code       TEXT REFERENCES provinces (code),
    city                TEXT,
    channel             TEXT NOT NULL DEFAULT 'OTHER' CHECK (channel IN ('LIVE', 'SHORT_VIDEO', 'SHOWCASE', 'SHELF', 'ADS', 'OTHER')),
    creator_id          BIGINT REFERENCES creators (id),
    content_id          TEXT,
    commission_rate_bps INTEGER NOT NULL DEFAULT 0 CHECK (commission_rate_bps BETWEEN 0 AND 10000),
    commission_amount   BIGINT NOT NULL DEFAULT 0 CHECK (commission_amount >= 0),
    buyer_id            TEXT NOT NULL,
    buyer_nickname      TEXT,
    receiver_name       TEXT,
    receiver_phone      TEXT,
    receiver_address    TEXT,
    buyer_note          TEXT,
    source_updated_at   TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (shop_id, order_no),
    CHECK (paid_at IS NULL OR paid_at >= placed_at)
);
-- The orders page: one shop (or a few), newest first, keyset on (placed_at, id).
CREATE INDEX orders_shop_placed_idx ON orders (shop_id, placed_at DESC, id DESC);
-- Newest first across many shops (a tenant-wide page walks this and filters by shop).
CREATE INDEX orders_placed_idx ON orders (placed_at DESC, id DESC);
-- Sorting by amount within a shop.
CREATE INDEX orders_shop_amount_idx ON orders (shop_id, paid_amount DESC, id DESC);
CREATE INDEX orders_creator_idx ON orders (creator_id) WHERE creator_id IS NOT NULL;
CREATE INDEX orders_buyer_nickname_idx ON orders (shop_id, buyer_nickname);

CREATE TABLE order_items (
    order_id    BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no     INTEGER NOT NULL CHECK (line_no >= 1),
    product_id  BIGINT REFERENCES products (id),
    sku         TEXT NOT NULL,
    quantity    INTEGER NOT NULL CHECK (quantity > 0),
    unit_price  BIGINT NOT NULL CHECK (unit_price >= 0),
    paid_amount BIGINT NOT NULL CHECK (paid_amount >= 0),
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX order_items_product_idx ON order_items (product_id, order_id);

CREATE TABLE after_sales (
    id            BIGSERIAL PRIMARY KEY,
    order_id      BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    external_id   TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('REFUND_ONLY', 'RETURN_REFUND', 'EXCHANGE')),
    status        TEXT NOT NULL CHECK (status IN ('REQUESTED', 'APPROVED', 'REJECTED', 'REFUNDED', 'CLOSED')),
    reason        TEXT,
    refund_amount BIGINT NOT NULL DEFAULT 0 CHECK (refund_amount >= 0),
    requested_at  TIMESTAMPTZ NOT NULL,
    resolved_at   TIMESTAMPTZ,
    dispute       TEXT NOT NULL DEFAULT 'NONE' CHECK (dispute IN ('NONE', 'OPEN', 'BUYER_WON', 'SELLER_WON')),
    UNIQUE (order_id, external_id)
);

CREATE TABLE shipments (
    order_id     BIGINT PRIMARY KEY REFERENCES orders (id) ON DELETE CASCADE,
    carrier      TEXT NOT NULL,
    tracking_no  TEXT NOT NULL,
    shipped_at   TIMESTAMPTZ NOT NULL,
    delivered_at TIMESTAMPTZ
);

CREATE TABLE accounts (
    id          BIGSERIAL PRIMARY KEY,
    tenant_id   BIGINT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    is_owner    BOOLEAN NOT NULL DEFAULT false,
    permissions TEXT[] NOT NULL DEFAULT '{}',
    shop_ids    BIGINT[] NOT NULL DEFAULT '{}',
    disabled_at TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX accounts_tenant_idx ON accounts (tenant_id);

CREATE TABLE audit_log (
    id         BIGSERIAL PRIMARY KEY,
    tenant_id  BIGINT NOT NULL REFERENCES tenants (id),
    account_id BIGINT REFERENCES accounts (id),
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    details    JSONB NOT NULL DEFAULT '{}',
    at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, id DESC);

CREATE TABLE fx_rates (
    day         DATE NOT NULL,
    currency    TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    rate_to_cny NUMERIC(18, 8) NOT NULL CHECK (rate_to_cny > 0),
    PRIMARY KEY (day, currency)
);
