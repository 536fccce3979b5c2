//! Writing a validated ingest batch: set-based upserts in one transaction, in one key
//! order, so that a batch costs a handful of statements and overlapping concurrent
//! batches converge on the newest version of every order without deadlocking.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Bool, Text};
use diesel::upsert::excluded;

use super::reference::ShopRow;
use super::schema::{after_sales, creators, order_items, orders, products, shipments};
use crate::domain::{AfterSaleKind, AfterSaleStatus, Dispute, IngestOutcome};
use crate::error::{AppError, AppResult};

/// A validated order, ready to be written (made by `ingest::validate`).
#[derive(Clone, Debug)]
pub struct ValidOrder {
    pub index: i32,
    pub shop: ShopRow,
    pub order: NewOrder,
    pub creator: Option<CreatorFacts>,
    pub items: Vec<ValidItem>,
    pub after_sales: Vec<AfterSaleFacts>,
    pub shipment: Option<ShipmentFacts>,
}

#[derive(Clone, Debug)]
pub struct ValidItem {
    pub line_no: i32,
    pub product_external_id: String,
    pub product_title: String,
    pub category: String,
    pub sku: String,
    pub quantity: i32,
    pub unit_price: i64,
    pub paid_amount: i64,
}

/// The creator an order credits, by its id on the shop's platform.
#[derive(Clone, Debug)]
pub struct CreatorFacts {
    pub external_id: String,
    pub handle: String,
    pub display_name: Option<String>,
    pub followers: Option<i64>,
}

/// One after-sale case of an order.
#[derive(Clone, Debug)]
pub struct AfterSaleFacts {
    pub external_id: String,
    pub kind: AfterSaleKind,
    pub status: AfterSaleStatus,
    pub reason: Option<String>,
    pub refund_amount: i64,
    pub requested_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub dispute: Dispute,
}

/// An order's shipment.
#[derive(Clone, Debug)]
pub struct ShipmentFacts {
    pub carrier: String,
    pub tracking_no: String,
    pub shipped_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// What writing one order of a batch did.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    /// Position in the submitted list.
    pub index: i32,
    pub shop_id: i64,
    pub order_no: String,
    pub outcome: IngestOutcome,
    pub order_id: Option<i64>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = orders)]
pub struct NewOrder {
    pub shop_id: i64,
    pub order_no: String,
    pub status: String,
    pub raw_status: String,
    pub placed_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub shipped_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub payment_method: Option<String>,
    pub goods_amount: i64,
    pub shipping_fee: i64,
    pub discount_amount: i64,
    pub paid_amount: i64,
    pub province_code: Option<String>,
    pub city: Option<String>,
    pub channel: String,
    pub creator_id: Option<i64>,
    pub content_id: Option<String>,
    pub commission_rate_bps: i32,
    pub commission_amount: i64,
    pub buyer_id: String,
    pub buyer_nickname: Option<String>,
    pub receiver_name: Option<String>,
    pub receiver_phone: Option<String>,
    pub receiver_address: Option<String>,
    pub buyer_note: Option<String>,
    pub source_updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = order_items)]
struct NewItem<'a> {
    order_id: i64,
    line_no: i32,
    product_id: Option<i64>,
    sku: &'a str,
    quantity: i32,
    unit_price: i64,
    paid_amount: i64,
}

#[derive(Insertable)]
#[diesel(table_name = after_sales)]
struct NewAfterSale<'a> {
    order_id: i64,
    external_id: &'a str,
    kind: &'static str,
    status: &'static str,
    reason: Option<&'a str>,
    refund_amount: i64,
    requested_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    dispute: &'static str,
}

#[derive(Insertable)]
#[diesel(table_name = shipments)]
struct NewShipment<'a> {
    order_id: i64,
    carrier: &'a str,
    tracking_no: &'a str,
    shipped_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
}

#[derive(Insertable)]
#[diesel(table_name = creators)]
struct NewCreator<'a> {
    platform: &'static str,
    external_id: &'a str,
    handle: &'a str,
    display_name: &'a str,
    followers: i64,
}

#[derive(Insertable)]
#[diesel(table_name = products)]
struct NewProduct<'a> {
    shop_id: i64,
    external_id: &'a str,
    title: &'a str,
    category: &'a str,
    list_price: i64,
}

pub use super::audit::Actor;

/// Applies a deduplicated, key-sorted batch. Retries the whole transaction on a
/// deadlock or serialization failure, which concurrent writers can cause. If the
/// database refuses the batch for one order's values (validation should have caught
/// them; this is the backstop), each order is written alone so that the bad one is
/// `REJECTED` and the others still apply.
pub fn apply(
    conn: &mut PgConnection,
    batch: &[ValidOrder],
    actor: Actor,
) -> AppResult<Vec<Written>> {
    match apply_retrying(conn, batch, actor) {
        Err(AppError::Internal(cause)) if batch.len() > 1 && is_data_error(&cause) => {
            tracing::warn!(error = ?cause, "ingest batch refused by the database, writing orders one by one");
            let mut results = Vec::with_capacity(batch.len());
            for order in batch {
                match apply_retrying(conn, std::slice::from_ref(order), actor) {
                    Ok(written) => results.extend(written),
                    Err(AppError::Internal(cause)) if is_data_error(&cause) => {
                        tracing::warn!(error = ?cause, index = order.index, "order refused by the database");
                        results.push(Written {
                            index: order.index,
                            shop_id: order.order.shop_id,
                            order_no: order.order.order_no.clone(),
                            outcome: IngestOutcome::Rejected,
                            order_id: None,
                            reason: Some("the order's values could not be stored".into()),
                        });
                    }
                    Err(other) => return Err(other),
                }
            }
            Ok(results)
        }
        other => other,
    }
}

fn apply_retrying(
    conn: &mut PgConnection,
    batch: &[ValidOrder],
    actor: Actor,
) -> AppResult<Vec<Written>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match conn.transaction(|conn| apply_once(conn, batch, actor)) {
            Err(AppError::Internal(cause)) if attempt < 5 && is_retryable(&cause) => {
                tracing::warn!(attempt, "ingest transaction conflicted, retrying");
                continue;
            }
            other => return other,
        }
    }
}

/// Whether PostgreSQL refused the values themselves (SQLSTATE classes 22 data
/// exception and 23 integrity violation), not the connection or the clock.
fn is_data_error(cause: &anyhow::Error) -> bool {
    use diesel::result::{DatabaseErrorKind as K, Error as E};
    match cause.downcast_ref::<E>() {
        Some(E::DatabaseError(kind, info)) => match kind {
            K::UniqueViolation
            | K::ForeignKeyViolation
            | K::NotNullViolation
            | K::CheckViolation => true,
            K::ClosedConnection | K::SerializationFailure | K::ReadOnlyTransaction => false,
            _ => {
                let m = info.message();
                m.contains("out of range")
                    || m.contains("invalid byte sequence")
                    || m.contains("invalid input")
                    || m.contains("value too long")
                    || m.contains("overflow")
            }
        },
        Some(E::SerializationError(_)) => true,
        _ => false,
    }
}

fn is_retryable(cause: &anyhow::Error) -> bool {
    match cause.downcast_ref::<diesel::result::Error>() {
        Some(diesel::result::Error::DatabaseError(kind, info)) => {
            matches!(
                kind,
                diesel::result::DatabaseErrorKind::SerializationFailure
            ) || info.message().contains("deadlock detected")
        }
        _ => false,
    }
}

fn apply_once(
    conn: &mut PgConnection,
    batch: &[ValidOrder],
    actor: Actor,
) -> AppResult<Vec<Written>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let creator_ids = upsert_creators(conn, batch)?;
    let product_ids = upsert_products(conn, batch)?;

    let rows: Vec<NewOrder> = batch
        .iter()
        .map(|v| {
            let mut row = v.order.clone();
            row.creator_id = v.creator.as_ref().and_then(|c| {
                creator_ids
                    .get(&(v.shop.platform.as_str(), c.external_id.clone()))
                    .copied()
            });
            row
        })
        .collect();

    // Applied only when strictly newer than what is stored; xmax = 0 tells an insert
    // from an update.
    let upsert = diesel::insert_into(orders::table)
        .values(&rows)
        .on_conflict((orders::shop_id, orders::order_no))
        .do_update()
        .set((
            orders::status.eq(excluded(orders::status)),
            orders::raw_status.eq(excluded(orders::raw_status)),
            orders::placed_at.eq(excluded(orders::placed_at)),
            orders::paid_at.eq(excluded(orders::paid_at)),
            orders::shipped_at.eq(excluded(orders::shipped_at)),
            orders::delivered_at.eq(excluded(orders::delivered_at)),
            orders::completed_at.eq(excluded(orders::completed_at)),
            orders::cancelled_at.eq(excluded(orders::cancelled_at)),
            orders::payment_method.eq(excluded(orders::payment_method)),
            orders::goods_amount.eq(excluded(orders::goods_amount)),
            orders::shipping_fee.eq(excluded(orders::shipping_fee)),
            orders::discount_amount.eq(excluded(orders::discount_amount)),
            orders::paid_amount.eq(excluded(orders::paid_amount)),
            orders::province_code.eq(excluded(orders::province_code)),
            orders::city.eq(excluded(orders::city)),
            orders::channel.eq(excluded(orders::channel)),
            orders::creator_id.eq(excluded(orders::creator_id)),
            orders::content_id.eq(excluded(orders::content_id)),
            orders::commission_rate_bps.eq(excluded(orders::commission_rate_bps)),
            orders::commission_amount.eq(excluded(orders::commission_amount)),
            orders::buyer_id.eq(excluded(orders::buyer_id)),
            orders::buyer_nickname.eq(excluded(orders::buyer_nickname)),
            orders::receiver_name.eq(excluded(orders::receiver_name)),
            orders::receiver_phone.eq(excluded(orders::receiver_phone)),
            orders::receiver_address.eq(excluded(orders::receiver_address)),
            orders::buyer_note.eq(excluded(orders::buyer_note)),
            orders::source_updated_at.eq(excluded(orders::source_updated_at)),
            orders::updated_at.eq(diesel::dsl::now),
        ));
    let applied: Vec<(i64, i64, String, bool)> = diesel::query_dsl::methods::FilterDsl::filter(
        upsert,
        orders::source_updated_at.lt(excluded(orders::source_updated_at)),
    )
    .returning((
        orders::id,
        orders::shop_id,
        orders::order_no,
        diesel::dsl::sql::<Bool>("xmax = 0"),
    ))
    .get_results(conn)?;

    let mut written_shops: Vec<i64> = applied.iter().map(|a| a.1).collect();

    let mut applied_by_key: HashMap<(i64, String), (i64, bool)> = applied
        .into_iter()
        .map(|(id, shop_id, order_no, inserted)| ((shop_id, order_no), (id, inserted)))
        .collect();

    let mut results = Vec::with_capacity(batch.len());
    let mut written: Vec<(&ValidOrder, i64, bool)> = Vec::new();
    let mut not_applied: Vec<&ValidOrder> = Vec::new();
    for v in batch {
        match applied_by_key.remove(&(v.order.shop_id, v.order.order_no.clone())) {
            Some((id, inserted)) => written.push((v, id, inserted)),
            None => not_applied.push(v),
        }
    }

    write_children(conn, &written, &product_ids)?;
    super::versions::touch(conn, &mut written_shops)?;

    for (v, id, inserted) in &written {
        results.push(Written {
            index: v.index,
            shop_id: v.order.shop_id,
            order_no: v.order.order_no.clone(),
            outcome: if *inserted {
                IngestOutcome::Created
            } else {
                IngestOutcome::Updated
            },
            order_id: Some(*id),
            reason: None,
        });
    }
    if !not_applied.is_empty() {
        // Not applied means a version at least as new is stored: equal is a replay.
        let shop_ids: Vec<i64> = not_applied.iter().map(|v| v.order.shop_id).collect();
        let numbers: Vec<&str> = not_applied
            .iter()
            .map(|v| v.order.order_no.as_str())
            .collect();
        let stored: Vec<(i64, i64, String, DateTime<Utc>)> = orders::table
            .filter(orders::shop_id.eq_any(&shop_ids))
            .filter(orders::order_no.eq_any(&numbers))
            .select((
                orders::id,
                orders::shop_id,
                orders::order_no,
                orders::source_updated_at,
            ))
            .load(conn)?;
        let stored: HashMap<(i64, String), (i64, DateTime<Utc>)> = stored
            .into_iter()
            .map(|(id, shop, no, at)| ((shop, no), (id, at)))
            .collect();
        for v in not_applied {
            let (id, at) = stored
                .get(&(v.order.shop_id, v.order.order_no.clone()))
                .copied()
                .ok_or_else(|| {
                    AppError::internal(anyhow::anyhow!("upsert skipped a missing order"))
                })?;
            let stale = at > v.order.source_updated_at;
            results.push(Written {
                index: v.index,
                shop_id: v.order.shop_id,
                order_no: v.order.order_no.clone(),
                outcome: if stale {
                    IngestOutcome::Stale
                } else {
                    IngestOutcome::Unchanged
                },
                order_id: Some(id),
                reason: stale.then(|| format!("a newer version ({}) is stored", at.to_rfc3339())),
            });
        }
    }

    let count = |o| results.iter().filter(|r| r.outcome == o).count();
    super::audit::record(
        conn,
        actor,
        "ingestOrders",
        "orders",
        serde_json::json!({
            "created": count(IngestOutcome::Created),
            "updated": count(IngestOutcome::Updated),
            "unchanged": count(IngestOutcome::Unchanged),
            "stale": count(IngestOutcome::Stale),
        }),
    )?;
    Ok(results)
}

/// Creators are identified by (platform, external id); the newest handle wins.
fn upsert_creators(
    conn: &mut PgConnection,
    batch: &[ValidOrder],
) -> AppResult<HashMap<(&'static str, String), i64>> {
    let mut seen = HashMap::new();
    for v in batch {
        if let Some(c) = &v.creator {
            seen.insert((v.shop.platform.as_str(), c.external_id.clone()), c);
        }
    }
    if seen.is_empty() {
        return Ok(HashMap::new());
    }
    let mut keys: Vec<_> = seen.keys().cloned().collect();
    keys.sort();
    let rows: Vec<NewCreator> = keys
        .iter()
        .map(|(platform, ext)| {
            let c = seen[&(*platform, ext.clone())];
            NewCreator {
                platform,
                external_id: &c.external_id,
                handle: &c.handle,
                display_name: c.display_name.as_deref().unwrap_or(&c.handle),
                followers: c.followers.unwrap_or(0),
            }
        })
        .collect();
    let ids: Vec<(i64, String, String)> = diesel::insert_into(creators::table)
        .values(&rows)
        .on_conflict((creators::platform, creators::external_id))
        .do_update()
        .set((
            creators::handle.eq(excluded(creators::handle)),
            creators::display_name.eq(excluded(creators::display_name)),
            creators::followers.eq(excluded(creators::followers)),
        ))
        .returning((creators::id, creators::platform, creators::external_id))
        .get_results(conn)?;
    let mut map = HashMap::new();
    for (id, platform, ext) in ids.into_iter() {
        let (platform, ext): (String, String) = (platform, ext);
        if let Some(p) = crate::domain::Platform::parse(&platform) {
            map.insert((p.as_str(), ext), id);
        }
    }
    Ok(map)
}

/// Products are identified by (shop, external id); unknown ones are created from the
/// item line, known ones are left as they are.
fn upsert_products(
    conn: &mut PgConnection,
    batch: &[ValidOrder],
) -> AppResult<HashMap<(i64, String), i64>> {
    let mut seen = HashMap::new();
    for v in batch {
        for item in &v.items {
            seen.entry((v.order.shop_id, item.product_external_id.clone()))
                .or_insert(item);
        }
    }
    if seen.is_empty() {
        return Ok(HashMap::new());
    }
    let mut keys: Vec<_> = seen.keys().cloned().collect();
    keys.sort();
    let rows: Vec<NewProduct> = keys
        .iter()
        .map(|key| {
            let item = seen[key];
            NewProduct {
                shop_id: key.0,
                external_id: &item.product_external_id,
                title: &item.product_title,
                category: &item.category,
                list_price: item.unit_price,
            }
        })
        .collect();
    diesel::insert_into(products::table)
        .values(&rows)
        .on_conflict((products::shop_id, products::external_id))
        .do_nothing()
        .execute(conn)?;
    let shop_ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
    let external: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
    let found: Vec<(i64, i64, String)> = products::table
        .filter(products::shop_id.eq_any(&shop_ids))
        .filter(products::external_id.eq_any(&external))
        .select((products::id, products::shop_id, products::external_id))
        .load(conn)?;
    Ok(found
        .into_iter()
        .map(|(id, shop, ext)| ((shop, ext), id))
        .collect())
}

/// Replaces the items and after-sales of every written order and records shipments.
fn write_children(
    conn: &mut PgConnection,
    written: &[(&ValidOrder, i64, bool)],
    product_ids: &HashMap<(i64, String), i64>,
) -> AppResult<()> {
    if written.is_empty() {
        return Ok(());
    }
    let updated_ids: Vec<i64> = written.iter().filter(|w| !w.2).map(|w| w.1).collect();
    if !updated_ids.is_empty() {
        diesel::delete(order_items::table.filter(order_items::order_id.eq_any(&updated_ids)))
            .execute(conn)?;
    }
    let items: Vec<NewItem> = written
        .iter()
        .flat_map(|(v, id, _)| {
            v.items.iter().map(move |item| NewItem {
                order_id: *id,
                line_no: item.line_no,
                product_id: product_ids
                    .get(&(v.order.shop_id, item.product_external_id.clone()))
                    .copied(),
                sku: &item.sku,
                quantity: item.quantity,
                unit_price: item.unit_price,
                paid_amount: item.paid_amount,
            })
        })
        .collect();
    // Stay well below the 65,535 bind parameters of one statement.
    for chunk in items.chunks(5_000) {
        diesel::insert_into(order_items::table)
            .values(chunk)
            .execute(conn)?;
    }

    // After-sales: the submitted list replaces the stored one, keeping ids of cases
    // that stay (they are referenced by resolutions).
    let keep_orders: Vec<i64> = written.iter().map(|w| w.1).collect();
    let (keep_ids, keep_ext): (Vec<i64>, Vec<&str>) = written
        .iter()
        .flat_map(|(v, id, _)| {
            v.after_sales
                .iter()
                .map(move |a| (*id, a.external_id.as_str()))
        })
        .unzip();
    diesel::sql_query(
        "DELETE FROM after_sales a WHERE a.order_id = ANY($1) AND NOT EXISTS \
         (SELECT 1 FROM unnest($2::bigint[], $3::text[]) AS k(order_id, external_id) \
          WHERE k.order_id = a.order_id AND k.external_id = a.external_id)",
    )
    .bind::<Array<BigInt>, _>(&keep_orders)
    .bind::<Array<BigInt>, _>(&keep_ids)
    .bind::<Array<Text>, _>(&keep_ext)
    .execute(conn)?;
    let cases: Vec<NewAfterSale> = written
        .iter()
        .flat_map(|(v, id, _)| {
            v.after_sales.iter().map(move |a| NewAfterSale {
                order_id: *id,
                external_id: &a.external_id,
                kind: a.kind.as_str(),
                status: a.status.as_str(),
                reason: a.reason.as_deref(),
                refund_amount: a.refund_amount,
                requested_at: a.requested_at,
                resolved_at: a.resolved_at,
                dispute: a.dispute.as_str(),
            })
        })
        .collect();
    for chunk in cases.chunks(5_000) {
        diesel::insert_into(after_sales::table)
            .values(chunk)
            .on_conflict((after_sales::order_id, after_sales::external_id))
            .do_update()
            .set((
                after_sales::kind.eq(excluded(after_sales::kind)),
                after_sales::status.eq(excluded(after_sales::status)),
                after_sales::reason.eq(excluded(after_sales::reason)),
                after_sales::refund_amount.eq(excluded(after_sales::refund_amount)),
                after_sales::requested_at.eq(excluded(after_sales::requested_at)),
                after_sales::resolved_at.eq(excluded(after_sales::resolved_at)),
                after_sales::dispute.eq(excluded(after_sales::dispute)),
            ))
            .execute(conn)?;
    }

    let shipped: Vec<NewShipment> = written
        .iter()
        .filter_map(|(v, id, _)| {
            v.shipment.as_ref().map(|s| NewShipment {
                order_id: *id,
                carrier: &s.carrier,
                tracking_no: &s.tracking_no,
                shipped_at: s.shipped_at,
                delivered_at: s.delivered_at,
            })
        })
        .collect();
    if !shipped.is_empty() {
        diesel::insert_into(shipments::table)
            .values(&shipped)
            .on_conflict(shipments::order_id)
            .do_update()
            .set((
                shipments::carrier.eq(excluded(shipments::carrier)),
                shipments::tracking_no.eq(excluded(shipments::tracking_no)),
                shipments::shipped_at.eq(excluded(shipments::shipped_at)),
                shipments::delivered_at.eq(excluded(shipments::delivered_at)),
            ))
            .execute(conn)?;
    }
    Ok(())
}
