//! Data versions: every write transaction sets its shops' versions, as its last
//! statement, from one sequence; the aggregate cache keys hold them, so when a write
//! commits no answer cached before it can be served again. (The analytic store follows
//! the change log that triggers keep; it does not need these.)

use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt};

use crate::error::AppResult;

/// Sets new data versions for these shops. The shop rows are locked in id order, as
/// every writer does, so writers cannot deadlock; NO KEY UPDATE like the UPDATE itself
/// (FOR UPDATE would also wait for the KEY SHARE locks other writers' order inserts
/// hold on the shop). Run it last: the locks are held until commit.
pub fn touch(conn: &mut PgConnection, shop_ids: &mut Vec<i64>) -> AppResult<()> {
    shop_ids.sort_unstable();
    shop_ids.dedup();
    if shop_ids.is_empty() {
        return Ok(());
    }
    diesel::sql_query(
        "UPDATE shops SET data_version = nextval('data_version_seq') \
         WHERE id IN (SELECT id FROM shops WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE)",
    )
    .bind::<Array<BigInt>, _>(&*shop_ids)
    .execute(conn)?;
    Ok(())
}
