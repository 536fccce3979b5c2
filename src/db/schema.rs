// @generated automatically by Diesel CLI.

diesel::table! {
    accounts (id) {
        id -> Int8,
        tenant_id -> Int8,
        name -> Text,
        is_owner -> Bool,
        permissions -> Array<Text>,
        shop_ids -> Array<Int8>,
        disabled_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        token_generation -> Int4,
        data_version -> Int8,
    }
}

diesel::table! {
    after_sales (id) {
        id -> Int8,
        order_id -> Int8,
        external_id -> Text,
        kind -> Text,
        status -> Text,
        reason -> Nullable<Text>,
        refund_amount -> Int8,
        requested_at -> Timestamptz,
        resolved_at -> Nullable<Timestamptz>,
        dispute -> Text,
        resolution_note -> Nullable<Text>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Int8,
        tenant_id -> Int8,
        account_id -> Nullable<Int8>,
        action -> Text,
        target -> Text,
        details -> Jsonb,
        at -> Timestamptz,
    }
}

diesel::table! {
    creators (id) {
        id -> Int8,
        platform -> Text,
        external_id -> Text,
        handle -> Text,
        display_name -> Text,
        followers -> Int8,
    }
}

diesel::table! {
    fx_rates (day, currency) {
        day -> Date,
        currency -> Text,
        rate_to_cny -> Numeric,
    }
}

diesel::table! {
    order_items (order_id, line_no) {
        order_id -> Int8,
        line_no -> Int4,
        product_id -> Nullable<Int8>,
        sku -> Text,
        quantity -> Int4,
        unit_price -> Int8,
        paid_amount -> Int8,
    }
}

diesel::table! {
    orders (id) {
        id -> Int8,
        shop_id -> Int8,
        order_no -> Text,
        status -> Text,
        raw_status -> Text,
        placed_at -> Timestamptz,
        paid_at -> Nullable<Timestamptz>,
        shipped_at -> Nullable<Timestamptz>,
        delivered_at -> Nullable<Timestamptz>,
        completed_at -> Nullable<Timestamptz>,
        cancelled_at -> Nullable<Timestamptz>,
        payment_method -> Nullable<Text>,
        goods_amount -> Int8,
        shipping_fee -> Int8,
        discount_amount -> Int8,
        paid_amount -> Int8,
        province_code -> Nullable<Text>,
        city -> Nullable<Text>,
        channel -> Text,
        creator_id -> Nullable<Int8>,
        content_id -> Nullable<Text>,
        commission_rate_bps -> Int4,
        commission_amount -> Int8,
        buyer_id -> Text,
        buyer_nickname -> Nullable<Text>,
        receiver_name -> Nullable<Text>,
        receiver_phone -> Nullable<Text>,
        receiver_address -> Nullable<Text>,
        buyer_note -> Nullable<Text>,
        source_updated_at -> Timestamptz,
        updated_at -> Timestamptz,
        seller_note -> Nullable<Text>,
        seller_flag -> Nullable<Text>,
    }
}

diesel::table! {
    products (id) {
        id -> Int8,
        shop_id -> Int8,
        external_id -> Text,
        title -> Text,
        category -> Text,
        list_price -> Int8,
        stock -> Nullable<Int4>,
        stock_updated_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    provinces (code) {
        code -> Text,
        name_zh -> Text,
        name_en -> Text,
        region -> Text,
    }
}

diesel::table! {
    shipments (order_id) {
        order_id -> Int8,
        carrier -> Text,
        tracking_no -> Text,
        shipped_at -> Timestamptz,
        delivered_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    shops (id) {
        id -> Int8,
        tenant_id -> Int8,
        platform -> Text,
        external_id -> Text,
        name -> Text,
        currency -> Text,
        timezone -> Text,
        created_at -> Timestamptz,
        data_version -> Int8,
    }
}

diesel::table! {
    tenants (id) {
        id -> Int8,
        name -> Text,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(accounts -> tenants (tenant_id));
diesel::joinable!(after_sales -> orders (order_id));
diesel::joinable!(audit_log -> accounts (account_id));
diesel::joinable!(audit_log -> tenants (tenant_id));
diesel::joinable!(order_items -> orders (order_id));
diesel::joinable!(order_items -> products (product_id));
diesel::joinable!(orders -> creators (creator_id));
diesel::joinable!(orders -> provinces (province_code));
diesel::joinable!(orders -> shops (shop_id));
diesel::joinable!(products -> shops (shop_id));
diesel::joinable!(shipments -> orders (order_id));
diesel::joinable!(shops -> tenants (tenant_id));

diesel::allow_tables_to_appear_in_same_query!(
    accounts,
    after_sales,
    audit_log,
    creators,
    fx_rates,
    order_items,
    orders,
    products,
    provinces,
    shipments,
    shops,
    tenants,
);
