//! The response cache: whole GraphQL response bodies of report-only requests, stamped
//! with the tenant's and the account's versions, and automatic persisted queries.

use std::time::{Duration, Instant};

use super::{hex, Cache, FORMAT};
use crate::auth::{ResponseStamp, TokenSubject};
use crate::db::accounts::TenantVersions;

/// How long a registered automatic persisted query is kept.
const PERSISTED_QUERY_TTL_SECS: u64 = 7 * 24 * 3600;

impl Cache {
    pub(super) fn tenant_version_key(&self, tenant_id: i64) -> String {
        // One hash tag per tenant: a Redis Cluster keeps a tenant's version and response
        // keys on one node, so one MGET or script reaches them all.
        format!("{}:ver:{{t{tenant_id}}}", self.settings.prefix)
    }

    pub(super) fn account_version_key(&self, tenant_id: i64, account_id: i64) -> String {
        format!(
            "{}:ver:{{t{tenant_id}}}:a{account_id}",
            self.settings.prefix
        )
    }

    pub(super) fn response_key(
        &self,
        tenant_id: i64,
        account_id: i64,
        request: &[u8; 32],
    ) -> String {
        format!(
            "{}:resp:{FORMAT}:{{t{tenant_id}}}:a{account_id}:{}",
            self.settings.prefix,
            hex(request)
        )
    }

    /// Whether this process may use the response cache for a tenant: not while one of
    /// its writes here could not be published to Redis.
    pub(super) fn versions_trusted(&self, tenant_id: i64) -> bool {
        let mut unpublished = self.unpublished.lock().unwrap_or_else(|e| e.into_inner());
        if unpublished.is_empty() {
            return true;
        }
        unpublished.retain(|_, until| *until > Instant::now());
        !unpublished.contains_key(&tenant_id)
    }

    /// The stored response body of this exact request (`request` is the SHA-256 of its
    /// body) by this account, if it was computed at the versions Redis holds now for
    /// the tenant and the account, and for this token generation.
    pub async fn cached_response(
        &self,
        subject: TokenSubject,
        request: &[u8; 32],
    ) -> Option<Vec<u8>> {
        if !self.versions_trusted(subject.tenant_id) {
            return None;
        }
        let mut cmd = redis::cmd("MGET");
        cmd.arg(self.tenant_version_key(subject.tenant_id))
            .arg(self.account_version_key(subject.tenant_id, subject.account_id))
            .arg(self.response_key(subject.tenant_id, subject.account_id, request));
        let values: Vec<Option<Vec<u8>>> = self.call(cmd).await?;
        let hit = match values.as_slice() {
            [Some(tenant), Some(account), Some(entry)] => {
                split_entry(entry).and_then(|(stamp, body_at)| {
                    (stamp.tenant_version.to_string().as_bytes() == tenant.as_slice()
                        && stamp.account_version.to_string().as_bytes() == account.as_slice()
                        && stamp.token_generation == subject.generation)
                        .then_some(body_at)
                })
            }
            _ => None,
        };
        // An entry whose body is not a JSON object (corrupted, or written by something
        // else) is a miss, as it is for the aggregate cache: never served as JSON.
        let body = hit.and_then(|body_at| {
            let mut entry = values.into_iter().nth(2).flatten()?;
            let body = entry.split_off(body_at);
            let valid = body.first() == Some(&b'{')
                && serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_ok();
            valid.then_some(body)
        });
        match body {
            Some(body) => {
                self.counters.response_hits.inc();
                Some(body)
            }
            None => {
                self.counters.response_misses.inc();
                None
            }
        }
    }

    /// Stores a response computed for an account, labelled with the versions read with
    /// its principal before computing (a later write only makes it unreachable), and
    /// raises the tenant's and the account's version keys to those versions.
    /// `loaded` is when the principal was read: versions older than a second are not
    /// written back, so an expired version key is never set to a value from before a
    /// write that was published meanwhile.
    pub async fn store_response(
        &self,
        tenant_id: i64,
        account_id: i64,
        stamp: ResponseStamp,
        loaded: Instant,
        request: &[u8; 32],
        body: &[u8],
    ) {
        if !self.versions_trusted(tenant_id) {
            return;
        }
        let mut entry = format!(
            "{}:{}:{}:",
            stamp.tenant_version, stamp.account_version, stamp.token_generation
        )
        .into_bytes();
        entry.extend_from_slice(body);
        let raise = loaded.elapsed() < Duration::from_secs(1);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(STORE_RESPONSE)
            .arg(3)
            .arg(self.tenant_version_key(tenant_id))
            .arg(self.account_version_key(tenant_id, account_id))
            .arg(self.response_key(tenant_id, account_id, request))
            .arg(stamp.tenant_version)
            .arg(stamp.account_version)
            .arg(entry)
            .arg(self.settings.ttl.as_millis().max(1) as u64)
            .arg(self.settings.version_ttl.as_millis().max(1) as u64)
            .arg(if raise { "1" } else { "0" });
        if self.call::<i64>(cmd).await.is_some() {
            self.counters.response_stored.inc();
        }
    }

    /// After a write has committed and before it is acknowledged: raises the tenant's
    /// and its accounts' version keys in Redis, so that no process serves a response
    /// computed before the write. If that fails, this process stops using the response
    /// cache for the tenant until the version keys have expired everywhere.
    pub async fn publish_versions(&self, versions: &TenantVersions) -> bool {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RAISE_VERSIONS)
            .arg(1 + versions.accounts.len())
            .arg(self.tenant_version_key(versions.tenant_id));
        for (account, _) in &versions.accounts {
            cmd.arg(self.account_version_key(versions.tenant_id, *account));
        }
        cmd.arg(self.settings.version_ttl.as_millis().max(1) as u64)
            .arg(versions.tenant_version);
        for (_, version) in &versions.accounts {
            cmd.arg(*version);
        }
        let published = self.call::<i64>(cmd).await.is_some();
        if !published {
            self.counters.publish_failures.inc();
            self.distrust(versions.tenant_id);
        }
        published
    }

    /// Stops using the response cache for a tenant in this process until every version
    /// key written before now has expired.
    pub fn distrust(&self, tenant_id: i64) {
        let until = Instant::now() + self.settings.version_ttl + Duration::from_secs(1);
        self.unpublished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant_id, until);
    }

    /// The query text registered under an automatic persisted query's SHA-256 (hex).
    pub async fn persisted_query(&self, sha256_hex: &str) -> Option<String> {
        let key = format!("{}:apq:{sha256_hex}", self.settings.prefix);
        self.get(&key)
            .await
            .and_then(|bytes| String::from_utf8(bytes).ok())
    }

    /// Registers a persisted query for a week (renewed by every registration).
    pub async fn store_persisted_query(&self, sha256_hex: &str, query: &str) {
        let key = format!("{}:apq:{sha256_hex}", self.settings.prefix);
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(query)
            .arg("EX")
            .arg(PERSISTED_QUERY_TTL_SECS);
        let _: Option<()> = self.call(cmd).await;
    }
}

/// Sets each version key to its version unless it holds a greater one (a value that is
/// not a number is replaced). KEYS: version
/// keys; ARGV[1]: lifetime in ms; ARGV[2..]: the versions, in the order of KEYS.
const RAISE_VERSIONS: &str = r#"
for i, key in ipairs(KEYS) do
  local current = tonumber(redis.call('GET', key))
  if (not current) or current < tonumber(ARGV[i + 1]) then
    redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
  end
end
return 1
"#;

/// Stores a response entry and, when ARGV[6] is '1', raises the version keys as
/// RAISE_VERSIONS does. KEYS: tenant version, account version, response. ARGV: tenant
/// version, account version, entry, entry lifetime ms, version lifetime ms, raise.
const STORE_RESPONSE: &str = r#"
if ARGV[6] == '1' then
  for i = 1, 2 do
    local current = tonumber(redis.call('GET', KEYS[i]))
    if (not current) or current < tonumber(ARGV[i]) then
      redis.call('SET', KEYS[i], ARGV[i], 'PX', ARGV[5])
    end
  end
end
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
return 1
"#;

/// Splits a response entry `tenant:account:generation:body` into its stamp and the
/// offset of the body; `None` when it does not parse (a corrupt entry is a miss).
fn split_entry(entry: &[u8]) -> Option<(ResponseStamp, usize)> {
    let mut fields = [0i64; 3];
    let mut at = 0;
    for field in &mut fields {
        let end = at + entry.get(at..)?.iter().position(|b| *b == b':')?;
        *field = std::str::from_utf8(&entry[at..end]).ok()?.parse().ok()?;
        at = end + 1;
    }
    Some((
        ResponseStamp {
            tenant_version: fields[0],
            account_version: fields[1],
            token_generation: i32::try_from(fields[2]).ok()?,
        },
        at,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_split_into_stamp_and_body() {
        let (stamp, at) = split_entry(b"17:23:2:{\"data\":1}").unwrap();
        assert_eq!(
            stamp,
            ResponseStamp {
                tenant_version: 17,
                account_version: 23,
                token_generation: 2
            }
        );
        assert_eq!(at, 8);
        assert!(split_entry(b"garbage").is_none());
        assert!(split_entry(b"1:2:x:{}").is_none());
        assert!(split_entry(b"").is_none());
    }
}
