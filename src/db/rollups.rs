//! Keeping the rollups exact: the shop-weeks a write touched (weeks from Monday on the
//! Asia/Shanghai calendar, in which every rollup table's cells nest) are locked in one
//! global order, so concurrent writers cannot deadlock, and their hour, day, dimension
//! and week cells are recomputed in the writer's transaction. The lock makes a later
//! writer's recomputation wait for an earlier one's commit, so it sees every committed
//! row of the cells, and two writers of one week never both replace its cells.
//!
//! Every write path goes through [`refresh`], so it also sets the written shops' data
//! versions (the aggregate cache keys hold them): when the write commits, no cached
//! answer computed before it can be served again.

use std::collections::BTreeSet;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Timestamptz};

use crate::error::AppResult;

/// The advisory-lock key of a shop-week (weeks from Monday on the Asia/Shanghai
/// calendar, in which every rollup cell nests): shop id in the high 32 bits, the week
/// since the epoch in the low 32.
fn lock_key(shop_id: i64, hour: DateTime<Utc>) -> i64 {
    let day = (hour.timestamp() + crate::analytics::DAY_ROLLUP_OFFSET_SECS).div_euclid(86_400);
    // 1970-01-01 was a Thursday: shift so that weeks start on Mondays.
    let week = (day + 3).div_euclid(7);
    (shop_id << 32) | (week & 0xFFFF_FFFF)
}

/// Recomputes the hour cells, and the Asia/Shanghai day and dimension cells, of the
/// given (shop, instant) pairs.
pub fn refresh(conn: &mut PgConnection, touched: &[(i64, DateTime<Utc>)]) -> AppResult<()> {
    let cells: BTreeSet<(i64, DateTime<Utc>)> = touched
        .iter()
        .filter_map(|(shop, at)| {
            at.duration_trunc(TimeDelta::hours(1))
                .ok()
                .map(|h| (*shop, h))
        })
        .collect();
    if cells.is_empty() {
        return Ok(());
    }
    let mut keys: Vec<i64> = cells.iter().map(|(s, h)| lock_key(*s, *h)).collect();
    keys.sort_unstable();
    keys.dedup();
    diesel::sql_query("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k ORDER BY k")
        .bind::<Array<BigInt>, _>(&keys)
        .execute(conn)?;
    let (shops, hours): (Vec<i64>, Vec<DateTime<Utc>>) = cells.into_iter().unzip();
    let mut written: Vec<i64> = shops.clone();
    written.sort_unstable();
    written.dedup();
    // Row locks in id order, after the cell locks: the same order for every writer.
    // NO KEY UPDATE, like the UPDATE itself: FOR UPDATE would also wait for the KEY
    // SHARE locks that other writers' order inserts hold on the shop (foreign key
    // checks) while they wait for this writer's cell locks — a deadlock.
    diesel::sql_query(
        "UPDATE shops SET data_version = nextval('data_version_seq') \
         WHERE id IN (SELECT id FROM shops WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE)",
    )
    .bind::<Array<BigInt>, _>(&written)
    .execute(conn)?;
    // Hours first: the day cells are summed from them.
    for function in [
        "rollup_refresh",
        "rollup_refresh_days",
        "rollup_refresh_dims",
    ] {
        diesel::sql_query(format!("SELECT {function}($1, $2)"))
            .bind::<Array<BigInt>, _>(&shops)
            .bind::<Array<Timestamptz>, _>(&hours)
            .execute(conn)?;
    }
    Ok(())
}
