//! `orderscope invalidate-cache`: retires every cached answer after data changed
//! outside the API.

use super::Cache;
use crate::db::accounts::TenantVersions;

/// For data changed outside the API (hand-made SQL, exchange rates loaded by a
/// script): sets a new data version on every shop and account, then publishes each
/// tenant's versions to Redis, so that no answer cached before the change is served
/// again. Returns how many tenants were published.
pub async fn invalidate_all(database_url: &str, cache: &Cache) -> anyhow::Result<usize> {
    let url = database_url.to_string();
    let tenants = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<TenantVersions>> {
        use diesel::prelude::*;
        let mut conn = PgConnection::establish(&url)?;
        conn.transaction(|c| {
            diesel::sql_query("UPDATE shops SET data_version = nextval('data_version_seq')")
                .execute(c)?;
            diesel::sql_query("UPDATE accounts SET data_version = nextval('data_version_seq')")
                .execute(c)?;
            Ok::<_, diesel::result::Error>(())
        })?;
        let ids: Vec<i64> = crate::db::schema::tenants::table
            .select(crate::db::schema::tenants::id)
            .load(&mut conn)?;
        ids.into_iter()
            .map(|id| {
                crate::db::accounts::tenant_versions(&mut conn, id)
                    .map_err(|e| anyhow::anyhow!("{}", e.public_message()))
            })
            .collect()
    })
    .await??;
    for versions in &tenants {
        if !cache.publish_versions(versions).await {
            anyhow::bail!(
                "Redis did not take tenant {}'s versions; cached answers stop being served within CACHE_VERSION_TTL_MS",
                versions.tenant_id
            );
        }
    }
    Ok(tenants.len())
}
