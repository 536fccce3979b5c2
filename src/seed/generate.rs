//! The order generator: orders day by day in chunks on a generator thread, each with
//! its lines, after-sales and shipment, streamed to the loader with COPY.

use std::fmt::Write as _;
use std::sync::mpsc;

use chrono::{DateTime, Duration, NaiveDate, Offset, TimeZone, Utc};
use diesel::prelude::*;

use super::copy::{esc, io_to_diesel, opt, ts};
use super::random::{cumulative, day_weight, Rng, HOURS};
use super::vocabulary::{
    CARRIERS, GIVEN, NICK_A, NICK_B, NOTES, PROVINCES, SHOP_PLATFORMS, SURNAMES,
};
use super::{SeedArgs, Shop};
use crate::db::schema::{after_sales, order_items, orders, shipments};
use crate::domain::{raw_status_for, OrderStatus, Platform};

/// One chunk of generated rows in COPY text format, one buffer per table.
#[derive(Default)]
pub(super) struct Chunk {
    pub(super) orders: String,
    pub(super) items: String,
    pub(super) after_sales: String,
    pub(super) shipments: String,
    pub(super) order_count: u64,
}

/// How much of each kind the generator wrote.
#[derive(Default, Debug)]
pub(super) struct Totals {
    pub(super) orders: u64,
    pub(super) items: u64,
    pub(super) after_sales: u64,
    pub(super) shipments: u64,
}

/// Generates orders on a thread and COPYs each chunk as it arrives.
pub(super) fn load_orders(
    conn: &mut PgConnection,
    shops: &[Shop],
    args: &SeedArgs,
    start: NaiveDate,
    as_of: DateTime<Utc>,
) -> anyhow::Result<Totals> {
    let (tx, rx) = mpsc::sync_channel::<Chunk>(2);
    let mut totals = Totals::default();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let generator = scope.spawn(|| generate(shops, args, start, as_of, tx));
        for chunk in rx {
            totals.orders += chunk.order_count;
            diesel::copy_from(orders::table)
                .from_raw_data(orders::table, |w| {
                    io_to_diesel(w.write_all(chunk.orders.as_bytes()))
                })
                .execute(conn)?;
            diesel::copy_from(order_items::table)
                .from_raw_data(order_items::table, |w| {
                    io_to_diesel(w.write_all(chunk.items.as_bytes()))
                })
                .execute(conn)?;
            // The generated columns; a resolution note is only written by a seller.
            let generated = (
                after_sales::id,
                after_sales::order_id,
                after_sales::external_id,
                after_sales::kind,
                after_sales::status,
                after_sales::reason,
                after_sales::refund_amount,
                after_sales::requested_at,
                after_sales::resolved_at,
                after_sales::dispute,
            );
            diesel::copy_from(after_sales::table)
                .from_raw_data(generated, |w| {
                    io_to_diesel(w.write_all(chunk.after_sales.as_bytes()))
                })
                .execute(conn)?;
            diesel::copy_from(shipments::table)
                .from_raw_data(shipments::table, |w| {
                    io_to_diesel(w.write_all(chunk.shipments.as_bytes()))
                })
                .execute(conn)?;
        }
        let counts = generator
            .join()
            .map_err(|_| anyhow::anyhow!("generator panicked"))?;
        totals.items = counts.items;
        totals.after_sales = counts.after_sales;
        totals.shipments = counts.shipments;
        Ok(())
    })?;
    Ok(totals)
}

pub(super) const CHUNK_ORDERS: u64 = 100_000;

pub(super) fn generate(
    shops: &[Shop],
    args: &SeedArgs,
    start: NaiveDate,
    as_of: DateTime<Utc>,
    tx: mpsc::SyncSender<Chunk>,
) -> Totals {
    let mut rng = Rng(args.seed ^ 0x5EED_0F0D_E125);
    let mut totals = Totals::default();
    let day_weights: Vec<f64> = (0..args.days)
        .map(|i| day_weight(start + Duration::days(i64::from(i)), i, args.days))
        .collect();
    let weight_sum: f64 = day_weights.iter().sum();
    let shop_cum = cumulative(
        &shops
            .iter()
            .enumerate()
            .map(|(i, _)| 1.0 / ((i as f64) + 1.0).sqrt())
            .collect::<Vec<_>>(),
    );
    let hour_cum = cumulative(&HOURS);
    let prov_cum = cumulative(&PROVINCES.iter().map(|p| p.1).collect::<Vec<_>>());
    let creators_per_platform = (args
        .creators
        .unwrap_or(((args.orders / 2_000) as u32).clamp(20, 5_000))
        as usize
        / SHOP_PLATFORMS.len())
    .max(1);
    let buyers = (args.orders / 3).max(10) as usize;
    let mut chunk = Chunk::default();
    let mut order_id = 0i64;
    let mut after_sale_id = 0i64;
    let mut carried = 0.0f64;
    for (d, weight) in day_weights.iter().enumerate() {
        let day = start + Duration::days(d as i64);
        // Carry fractions so that the total is exactly --orders.
        let exact = args.orders as f64 * weight / weight_sum + carried;
        let mut count = exact.floor() as u64;
        carried = exact - count as f64;
        if d + 1 == day_weights.len() {
            count = args.orders - totals.orders;
        }
        // Offsets per shop for this day (DST-aware for the US shop).
        let offsets: Vec<i64> = shops
            .iter()
            .map(|s| {
                let noon = day.and_hms_opt(12, 0, 0).expect("noon");
                s.timezone
                    .offset_from_utc_datetime(&noon)
                    .fix()
                    .local_minus_utc() as i64
            })
            .collect();
        let day_start = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        for _ in 0..count {
            order_id += 1;
            totals.orders += 1;
            chunk.order_count += 1;
            let s = rng.pick(&shop_cum);
            let shop = &shops[s];
            let local_secs = rng.pick(&hour_cum) as i64 * 3600 + rng.range(0, 3600);
            let placed = day_start
                + Duration::seconds(local_secs - offsets[s])
                + Duration::microseconds(rng.range(0, 1_000_000));
            write_order(
                &mut chunk,
                &mut rng,
                &mut totals,
                &mut after_sale_id,
                order_id,
                shop,
                placed,
                as_of,
                &prov_cum,
                creators_per_platform,
                buyers,
            );
            if chunk.order_count >= CHUNK_ORDERS && tx.send(std::mem::take(&mut chunk)).is_err() {
                return totals;
            }
        }
    }
    if chunk.order_count > 0 {
        let _ = tx.send(chunk);
    }
    totals
}

#[allow(clippy::too_many_arguments)]
pub(super) fn write_order(
    chunk: &mut Chunk,
    rng: &mut Rng,
    totals: &mut Totals,
    after_sale_id: &mut i64,
    id: i64,
    shop: &Shop,
    placed: DateTime<Utc>,
    as_of: DateTime<Utc>,
    prov_cum: &[f64],
    creators_per_platform: usize,
    buyers: usize,
) {
    let min = |m: i64| Duration::minutes(m);
    let platform = shop.platform;
    // Channel mix: shelf ~36 %, merchant live ~26 %, creator live ~26 %, short video, ads.
    let roll = rng.f();
    let (channel, with_creator) = match roll {
        r if r < 0.36 => ("SHELF", false),
        r if r < 0.62 => ("LIVE", false),
        r if r < 0.88 => ("LIVE", true),
        r if r < 0.95 => ("SHORT_VIDEO", rng.chance(0.6)),
        _ => ("ADS", false),
    };
    let platform_index = SHOP_PLATFORMS
        .iter()
        .position(|p| *p == platform)
        .unwrap_or(0);
    let creator_id = with_creator.then(|| {
        let rank = rng.skewed(creators_per_platform, 3.0);
        (rank * SHOP_PLATFORMS.len() + platform_index + 1) as i64
    });

    // Items and amounts.
    let lines = match rng.f() {
        r if r < 0.7 => 1,
        r if r < 0.9 => 2,
        _ => 3,
    };
    let mut items: Vec<(i64, i64, i64, f64)> = Vec::with_capacity(lines);
    for _ in 0..lines {
        let p = &shop.products[rng.pick(&shop.product_weights)];
        let quantity = match rng.f() {
            r if r < 0.8 => 1,
            r if r < 0.95 => 2,
            _ => 3,
        };
        let unit = p.price * rng.range(80, 101) / 100;
        items.push((p.id, quantity, unit, p.refund_rate));
    }
    let goods: i64 = items.iter().map(|i| i.1 * i.2).sum();
    let discount = if rng.chance(0.5) {
        goods * rng.range(0, 21) / 100
    } else {
        0
    };
    let shipping = if rng.chance(0.8) {
        0
    } else {
        rng.range(6, 13) * 100
    };
    let paid_total = goods - discount + shipping;
    let refund_rate = items.iter().map(|i| i.3).fold(0.0, f64::max);

    // Lifecycle relative to the dataset's "now".
    let unpaid = rng.chance(0.08);
    let mut status = OrderStatus::PendingPayment;
    let (mut paid_at, mut shipped_at, mut delivered_at, mut completed_at, mut cancelled_at) =
        (None, None, None, None, None);
    if unpaid {
        // Most unpaid orders are cancelled after 30 minutes; a few linger unpaid.
        if rng.chance(0.97) && placed + min(30) <= as_of {
            status = OrderStatus::Cancelled;
            cancelled_at = Some(placed + min(30));
        }
    } else {
        let paid = placed + Duration::seconds(rng.range(10, 1_200));
        if paid <= as_of {
            paid_at = Some(paid);
            status = OrderStatus::AwaitingShipment;
            let overdue = rng.chance(0.03);
            let ship = paid
                + Duration::minutes(if overdue {
                    rng.range(49 * 60, 96 * 60)
                } else {
                    rng.range(60, 40 * 60)
                });
            if ship <= as_of {
                shipped_at = Some(ship);
                status = OrderStatus::Shipped;
                let stalled = rng.chance(0.01);
                let deliver = ship
                    + Duration::minutes(if stalled {
                        rng.range(8 * 1440, 14 * 1440)
                    } else {
                        rng.range(18 * 60, 120 * 60)
                    });
                if deliver <= as_of {
                    delivered_at = Some(deliver);
                    status = OrderStatus::Delivered;
                    let complete = deliver + Duration::days(7);
                    if complete <= as_of {
                        completed_at = Some(complete);
                        status = OrderStatus::Completed;
                    }
                }
            }
        }
    }
    if status == OrderStatus::PendingPayment && !unpaid {
        // Placed in the last seconds before "now": still unpaid.
    }
    let paid_amount = if paid_at.is_some() { paid_total } else { 0 };

    // After-sales by category refund rate.
    let mut cases = Vec::new();
    if let Some(paid) = paid_at {
        if rng.chance(refund_rate) {
            let requested = paid + Duration::minutes(rng.range(60, 10 * 1440));
            if requested <= as_of {
                let kind = match rng.f() {
                    r if r < 0.4 => "REFUND_ONLY",
                    r if r < 0.9 => "RETURN_REFUND",
                    _ => "EXCHANGE",
                };
                let old_enough = as_of - requested > Duration::days(3);
                let (case_status, resolved) = if !old_enough {
                    ("REQUESTED", None)
                } else {
                    let resolved = requested + Duration::minutes(rng.range(30, 3 * 1440));
                    match rng.f() {
                        r if r < 0.78 && kind != "EXCHANGE" => ("REFUNDED", Some(resolved)),
                        r if r < 0.90 => ("REJECTED", Some(resolved)),
                        _ => ("CLOSED", Some(resolved)),
                    }
                };
                let full = rng.chance(0.6);
                let refund = if case_status == "REFUNDED" {
                    if full {
                        paid_amount
                    } else {
                        paid_amount * rng.range(30, 71) / 100
                    }
                } else {
                    0
                };
                let dispute = if rng.chance(0.08) {
                    if old_enough {
                        if rng.chance(0.5) {
                            "BUYER_WON"
                        } else {
                            "SELLER_WON"
                        }
                    } else {
                        "OPEN"
                    }
                } else {
                    "NONE"
                };
                if case_status == "REFUNDED" && refund == paid_amount {
                    status = OrderStatus::Closed;
                    completed_at = None;
                }
                cases.push((kind, case_status, refund, requested, resolved, dispute));
            }
        }
    }

    let (province, city) = if shop.currency == "USD" {
        (None, "Los Angeles")
    } else {
        let p = PROVINCES[rng.pick(prov_cum)];
        (Some(p.0), p.3)
    };
    let province_name = province
        .and_then(|code| PROVINCES.iter().find(|p| p.0 == code))
        .map(|p| p.2)
        .unwrap_or("California");
    let buyer = rng.skewed(buyers, 1.6);
    let surname = SURNAMES[buyer % SURNAMES.len()];
    let given = GIVEN[(buyer / SURNAMES.len()) % GIVEN.len()];
    let commission_rate = if creator_id.is_some() {
        rng.range(10, 31) * 100
    } else {
        0
    };
    let commission = if paid_at.is_some() {
        paid_amount * commission_rate / 10_000
    } else {
        0
    };
    let payment = paid_at.map(|_| {
        let r = rng.f();
        match platform {
            Platform::Douyin => {
                if r < 0.55 {
                    "DOUYIN_PAY"
                } else if r < 0.8 {
                    "WECHAT_PAY"
                } else if r < 0.95 {
                    "ALIPAY"
                } else {
                    "COD"
                }
            }
            Platform::Tmall | Platform::Taobao => {
                if r < 0.9 {
                    "ALIPAY"
                } else {
                    "CARD"
                }
            }
            Platform::Tiktok => {
                if r < 0.8 {
                    "CARD"
                } else {
                    "OTHER"
                }
            }
            _ => {
                if r < 0.5 {
                    "WECHAT_PAY"
                } else if r < 0.9 {
                    "ALIPAY"
                } else {
                    "COD"
                }
            }
        }
    });
    let content = match (channel, creator_id) {
        ("LIVE", Some(c)) => Some(format!("live_c{c}_{}", placed.format("%Y%m%d"))),
        ("LIVE", None) => Some(format!("live_s{}_{}", shop.id, placed.format("%Y%m%d"))),
        ("SHORT_VIDEO", _) => Some(format!("v_{}", rng.range(100_000, 999_999))),
        _ => None,
    };
    let last_event = [
        Some(placed),
        paid_at,
        shipped_at,
        delivered_at,
        completed_at,
        cancelled_at,
    ]
    .into_iter()
    .flatten()
    .chain(cases.iter().flat_map(|c| [Some(c.3), c.4]).flatten())
    .max()
    .unwrap_or(placed)
    .min(as_of);

    // orders, in table column order.
    let o = &mut chunk.orders;
    let _ = write!(
        o,
        "{id}\t{}\t{}{:012}\t{}\t{}\t",
        shop.id,
        platform.as_str().chars().next().unwrap_or('X'),
        id,
        status.as_str(),
        raw_status_for(platform, status)
    );
    ts(o, Some(placed));
    for at in [
        paid_at,
        shipped_at,
        delivered_at,
        completed_at,
        cancelled_at,
    ] {
        o.push('\t');
        ts(o, at);
    }
    o.push('\t');
    opt(o, payment);
    let _ = write!(o, "\t{goods}\t{shipping}\t{discount}\t{paid_amount}\t");
    opt(o, province);
    o.push('\t');
    esc(o, city);
    let _ = write!(o, "\t{channel}\t");
    match creator_id {
        Some(c) => {
            let _ = write!(o, "{c}");
        }
        None => o.push_str("\\N"),
    }
    o.push('\t');
    opt(o, content.as_deref());
    let _ = write!(
        o,
        "\t{commission_rate}\t{commission}\tb{:08x}\t",
        (buyer as u64).wrapping_mul(2_654_435_761) & 0xFFFF_FFFF
    );
    let _ = write!(
        o,
        "{}{}",
        NICK_A[buyer % NICK_A.len()],
        NICK_B[(buyer / 3) % NICK_B.len()]
    );
    let _ = write!(
        o,
        "\t{surname}{given}\t1{}{:09}\t",
        rng.range(3, 10),
        rng.range(0, 1_000_000_000)
    );
    let _ = write!(
        o,
        "{province_name}{city}{}区{}路{}号",
        GIVEN[buyer % GIVEN.len()],
        SURNAMES[(buyer / 5) % SURNAMES.len()],
        rng.range(1, 999)
    );
    o.push('\t');
    if rng.chance(0.05) {
        esc(o, NOTES[rng.range(0, NOTES.len() as i64) as usize]);
    } else {
        o.push_str("\\N");
    }
    o.push('\t');
    ts(o, Some(last_event));
    o.push('\t');
    ts(o, Some(as_of));
    // No seller note or flag: those are the seller's own, set later.
    o.push_str("\t\\N\t\\N\n");

    // Item lines with their paid amounts: the discount is spread over lines by value,
    // the last line takes the rest.
    let mut allocated = 0;
    let item_lines: Vec<(i64, i64, i64, i64)> = items
        .iter()
        .enumerate()
        .map(|(line, (product, quantity, unit, _))| {
            let value = quantity * unit;
            let share = if line + 1 == items.len() {
                discount - allocated
            } else {
                discount * value / goods.max(1)
            };
            allocated += share;
            (*product, *quantity, *unit, value - share)
        })
        .collect();

    // order_items.
    for (line, (product, quantity, unit, paid_line)) in item_lines.iter().enumerate() {
        let _ = writeln!(
            chunk.items,
            "{id}\t{}\t{product}\t{product}-{}\t{quantity}\t{unit}\t{paid_line}",
            line + 1,
            ["S", "M", "L", "XL"][line % 4],
        );
        totals.items += 1;
    }

    for (n, (kind, case_status, refund, requested, resolved, dispute)) in cases.iter().enumerate() {
        *after_sale_id += 1;
        let a = &mut chunk.after_sales;
        let reason = ["不想要了", "尺码不合适", "质量问题", "发错货", "与描述不符"]
            [rng.range(0, 5) as usize];
        let _ = write!(
            a,
            "{}\t{id}\tas{id}_{n}\t{kind}\t{case_status}\t{reason}\t{refund}\t",
            after_sale_id
        );
        ts(a, Some(*requested));
        a.push('\t');
        ts(a, *resolved);
        let _ = writeln!(a, "\t{dispute}");
        totals.after_sales += 1;
    }

    if let Some(ship) = shipped_at {
        let (carrier, prefix) = if shop.currency == "USD" {
            ("USPS", "US")
        } else {
            CARRIERS[rng.range(0, CARRIERS.len() as i64) as usize]
        };
        let s = &mut chunk.shipments;
        let _ = write!(s, "{id}\t{carrier}\t{prefix}{:012}\t", id * 7 + 1_000_000);
        ts(s, Some(ship));
        s.push('\t');
        ts(s, delivered_at);
        s.push('\n');
        totals.shipments += 1;
    }
}
