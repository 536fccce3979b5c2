//! Bearer JWT verification and the per-request principal (docs/AUTH.md).
//!
//! The token only says who is calling; permissions and shop scope are loaded from the
//! database on every request, so disabling an account or changing what it may do takes
//! effect on its next request.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use chrono::Utc;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};

use crate::domain::Permission;
use crate::error::{AppError, AppResult};
use crate::settings::JwtSettings;

// The authenticated principal and what a token names live below the transports and
// the services, with the accounts that back them; they are re-exported here.
pub use crate::db::principal::{ExternalIdentity, Principal, ResponseStamp, TokenSubject};

/// The claims orderscope issues and requires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Account id.
    pub sub: String,
    /// Tenant id.
    pub tid: String,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
    /// The account's token generation when the token was issued (absent: 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gen: Option<i32>,
}

/// The `kid` of tokens signed with the HS256 secret (optional in their header).
pub const HS256_KID: &str = "orderscope-hs256";

/// A token minted by [`TokenVerifier::issue`].
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub jti: String,
    pub expires_at: chrono::DateTime<Utc>,
}

/// Public keys of external issuers by `kid`.
#[derive(Default)]
struct KeySet {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    loaded_at: Option<Instant>,
}

/// Verifies and mints tokens with the configured keys.
pub struct TokenVerifier {
    decoding: DecodingKey,
    encoding: EncodingKey,
    external: RwLock<KeySet>,
    remote: Vec<Remote>,
    settings: JwtSettings,
}

/// The one message every rejected token gets: a client learns nothing about why.
const INVALID_TOKEN: &str = "missing or invalid credentials";

fn rejected(reason: impl std::fmt::Display) -> AppError {
    tracing::debug!(%reason, "token rejected");
    AppError::Unauthenticated(INVALID_TOKEN.into())
}

fn parse_alg(name: &str) -> anyhow::Result<Algorithm> {
    match name {
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        other => anyhow::bail!("unsupported external key algorithm {other:?} (RS256 or ES256)"),
    }
}

/// The keys of a JWKS document by `kid` (keys without a `kid` or of another kind are
/// skipped).
fn keys_of(set: &JwkSet) -> HashMap<String, (Algorithm, DecodingKey)> {
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
            (Some(a), _) => match parse_alg(&a.to_string()) {
                Ok(alg) => alg,
                Err(_) => continue,
            },
            (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
            (None, AlgorithmParameters::EllipticCurve(_)) => Algorithm::ES256,
            _ => continue,
        };
        if let Ok(key) = DecodingKey::from_jwk(jwk) {
            keys.insert(kid, (alg, key));
        }
    }
    keys
}

/// Reads the external keys: a PEM file and/or a JWKS file.
fn load_external(
    settings: &JwtSettings,
) -> anyhow::Result<HashMap<String, (Algorithm, DecodingKey)>> {
    let mut keys = HashMap::new();
    if let Some(path) = &settings.public_key_file {
        let pem = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let alg = parse_alg(&settings.public_key_alg)?;
        let key = match alg {
            Algorithm::ES256 => DecodingKey::from_ec_pem(&pem),
            _ => DecodingKey::from_rsa_pem(&pem),
        }
        .map_err(|e| anyhow::anyhow!("{} is not a {alg:?} public key: {e}", path.display()))?;
        keys.insert(settings.public_key_kid.clone(), (alg, key));
    }
    if let Some(path) = &settings.jwks_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let set: JwkSet = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a JWKS: {e}", path.display()))?;
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
                (Some(a), _) => parse_alg(&a.to_string())?,
                (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
                (None, AlgorithmParameters::EllipticCurve(_)) => Algorithm::ES256,
                _ => continue,
            };
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|e| anyhow::anyhow!("key {kid} in {}: {e}", path.display()))?;
            keys.insert(kid, (alg, key));
        }
    }
    Ok(keys)
}

/// An unknown `kid` re-reads the JWKS file at most this often.
const JWKS_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

impl TokenVerifier {
    /// Fails when a configured key file cannot be read or parsed.
    pub fn new(settings: &JwtSettings) -> anyhow::Result<TokenVerifier> {
        let keys = load_external(settings)?;
        Ok(TokenVerifier {
            decoding: DecodingKey::from_secret(settings.secret.as_bytes()),
            encoding: EncodingKey::from_secret(settings.secret.as_bytes()),
            external: RwLock::new(KeySet {
                keys,
                loaded_at: Some(Instant::now()),
            }),
            remote: settings.oidc.iter().cloned().map(Remote::new).collect(),
            settings: settings.clone(),
        })
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.leeway = self.settings.leeway_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[self.settings.issuer.as_str()]);
        validation.set_audience(&[self.settings.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation
    }

    /// The external key for `kid`, re-reading the JWKS file once when it is unknown.
    fn external_key(&self, kid: &str, alg: Algorithm) -> Option<DecodingKey> {
        let lookup = |set: &KeySet| {
            set.keys
                .get(kid)
                .filter(|(a, _)| *a == alg)
                .map(|(_, k)| k.clone())
        };
        if let Some(key) = lookup(&self.external.read().unwrap_or_else(|e| e.into_inner())) {
            return Some(key);
        }
        self.settings.jwks_file.as_ref()?;
        let mut set = self.external.write().unwrap_or_else(|e| e.into_inner());
        if set
            .loaded_at
            .is_some_and(|at| at.elapsed() < JWKS_RELOAD_INTERVAL)
        {
            return lookup(&set);
        }
        set.loaded_at = Some(Instant::now());
        match load_external(&self.settings) {
            Ok(keys) => set.keys = keys,
            Err(e) => {
                tracing::warn!(error = %e, "reloading external keys failed; keeping the old ones")
            }
        }
        lookup(&set)
    }

    /// Checks signature, `exp`, `nbf`, `iss` and `aud`; any failure is `UNAUTHENTICATED`
    /// with the same message. A token whose `iss` is a configured OIDC provider is
    /// checked against that provider's JWKS and audiences and names an external
    /// identity; otherwise HS256 tokens use the secret, and RS256 and ES256 tokens must
    /// name a known `kid` of that algorithm from the key files.
    pub async fn verify(&self, token: &str) -> AppResult<Verified> {
        let header = decode_header(token).map_err(rejected)?;
        if let Some(remote) = unverified_issuer(token)
            .and_then(|iss| self.remote.iter().find(|r| r.config.issuer == iss))
        {
            return remote
                .verify(token, &header, self.settings.leeway_seconds)
                .await;
        }
        let key = match header.alg {
            Algorithm::HS256 => match header.kid.as_deref() {
                None | Some(HS256_KID) => self.decoding.clone(),
                Some(other) => return Err(rejected(format!("unknown kid {other}"))),
            },
            Algorithm::RS256 | Algorithm::ES256 => {
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| rejected("external token without kid"))?;
                self.external_key(kid, header.alg)
                    .ok_or_else(|| rejected(format!("unknown kid {kid}")))?
            }
            other => return Err(rejected(format!("algorithm {other:?} not accepted"))),
        };
        let claims = decode::<Claims>(token, &key, &self.validation(header.alg))
            .map_err(rejected)?
            .claims;
        match (claims.sub.parse::<i64>(), claims.tid.parse::<i64>()) {
            (Ok(account_id), Ok(tenant_id)) => Ok(Verified::Account(TokenSubject::account(
                account_id,
                tenant_id,
                claims.gen.unwrap_or(0),
            ))),
            _ => Err(rejected("sub or tid is not an id")),
        }
    }

    /// Mints an HS256 token for an account, valid for `ttl_seconds` (the configured
    /// default when `None`).
    pub fn issue(&self, subject: TokenSubject, ttl_seconds: Option<i64>) -> AppResult<IssuedToken> {
        let now = Utc::now().timestamp();
        let ttl = ttl_seconds.unwrap_or(self.settings.default_ttl.as_secs() as i64);
        let jti = uuid::Uuid::new_v4().to_string();
        let claims = Claims {
            sub: subject.account_id.to_string(),
            tid: subject.tenant_id.to_string(),
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            exp: now + ttl,
            iat: now,
            nbf: Some(now),
            jti: jti.clone(),
            gen: Some(subject.generation),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(HS256_KID.to_string());
        let token = encode(&header, &claims, &self.encoding).map_err(AppError::internal)?;
        Ok(IssuedToken {
            token,
            jti,
            expires_at: chrono::DateTime::from_timestamp(now + ttl, 0).unwrap_or_else(Utc::now),
        })
    }
}

/// What a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// One of orderscope's own accounts (an orderscope token or a key-file issuer's).
    Account(TokenSubject),
    /// A person at an OIDC provider, to be mapped to an account by its link
    /// (`linkExternalIdentity`).
    External(ExternalIdentity),
}

pub use crate::settings::OidcIssuer;

/// What an OIDC provider's token grants.
trait RoleMapping {
    fn mask_of(&self, claims: &serde_json::Value) -> Option<u32>;
}

impl RoleMapping for OidcIssuer {
    /// The permission mask the token's roles grant, when roles are mapped.
    fn mask_of(&self, claims: &serde_json::Value) -> Option<u32> {
        let path = self.roles_claim.as_ref()?;
        let value = path.split('.').try_fold(claims, |v, key| v.get(key));
        let roles: Vec<&str> = match value {
            Some(serde_json::Value::Array(items)) => {
                items.iter().filter_map(|v| v.as_str()).collect()
            }
            Some(serde_json::Value::String(one)) => one.split_whitespace().collect(),
            _ => Vec::new(),
        };
        let mut mask = 0u32;
        for role in roles {
            for name in self.role_permissions.get(role).into_iter().flatten() {
                if let Some(i) = Permission::ALL
                    .iter()
                    .position(|p| Some(*p) == Permission::parse(name))
                {
                    mask |= 1 << i;
                }
            }
        }
        Some(mask)
    }
}

/// An OIDC provider's keys, fetched from its JWKS URL and cached.
struct Remote {
    config: OidcIssuer,
    keys: RwLock<KeySet>,
    /// One fetch at a time; others wait for its keys.
    fetching: tokio::sync::Mutex<()>,
    client: reqwest::Client,
}

/// An unknown `kid` fetches the JWKS again at most this often.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

impl Remote {
    fn new(config: OidcIssuer) -> Remote {
        Remote {
            config,
            keys: RwLock::new(KeySet::default()),
            fetching: tokio::sync::Mutex::new(()),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
        }
    }

    fn lookup(&self, kid: &str, alg: Algorithm) -> (Option<DecodingKey>, Option<Instant>) {
        let set = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let key = set
            .keys
            .get(kid)
            .filter(|(a, _)| *a == alg)
            .map(|(_, k)| k.clone());
        (key, set.loaded_at)
    }

    /// The key for `kid`: cached while fresh; fetched when stale or unknown (an unknown
    /// one at most every [`JWKS_REFETCH_INTERVAL`]). A failed fetch keeps the old keys.
    async fn key(&self, kid: &str, alg: Algorithm) -> Option<DecodingKey> {
        let ttl = Duration::from_secs(self.config.jwks_cache_seconds);
        let (key, loaded_at) = self.lookup(kid, alg);
        let age = loaded_at.map(|at| at.elapsed());
        let stale = age.is_none_or(|a| a >= ttl);
        let may_refetch = age.is_none_or(|a| a >= JWKS_REFETCH_INTERVAL);
        if !stale && (key.is_some() || !may_refetch) {
            return key;
        }
        let _turn = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        let (again, loaded_again) = self.lookup(kid, alg);
        if loaded_again != loaded_at {
            return again;
        }
        match self.fetch().await {
            Ok(keys) => {
                let mut set = self.keys.write().unwrap_or_else(|e| e.into_inner());
                set.keys = keys;
                set.loaded_at = Some(Instant::now());
            }
            Err(e) => {
                tracing::warn!(issuer = %self.config.issuer, error = %e, "JWKS fetch failed; keeping the old keys");
                let mut set = self.keys.write().unwrap_or_else(|e| e.into_inner());
                // Retry after the refetch interval, not on every request.
                if set.loaded_at.is_some() || !set.keys.is_empty() {
                    set.loaded_at =
                        Some(Instant::now() - ttl.saturating_sub(JWKS_REFETCH_INTERVAL));
                } else {
                    set.loaded_at = Some(Instant::now() - ttl.max(JWKS_REFETCH_INTERVAL));
                }
            }
        }
        self.lookup(kid, alg).0
    }

    async fn fetch(&self) -> anyhow::Result<HashMap<String, (Algorithm, DecodingKey)>> {
        let response = self
            .client
            .get(&self.config.jwks_url)
            .send()
            .await?
            .error_for_status()?;
        let set: JwkSet = response.json().await?;
        Ok(keys_of(&set))
    }

    async fn verify(&self, token: &str, header: &Header, leeway: u64) -> AppResult<Verified> {
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(rejected(format!("algorithm {:?} not accepted", header.alg)));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| rejected("OIDC token without kid"))?;
        let key = self
            .key(kid, header.alg)
            .await
            .ok_or_else(|| rejected(format!("unknown kid {kid}")))?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.leeway = leeway;
        validation.validate_nbf = true;
        validation.set_issuer(&[self.config.issuer.as_str()]);
        validation.set_audience(&self.config.audience);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = decode::<serde_json::Value>(token, &key, &validation)
            .map_err(rejected)?
            .claims;
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let subject = claims
            .get(&self.config.subject_claim)
            .and_then(text)
            .ok_or_else(|| rejected("no subject claim"))?;
        let tenant = match &self.config.tenant_claim {
            Some(claim) => Some(
                claims
                    .get(claim)
                    .and_then(text)
                    .ok_or_else(|| rejected("no tenant claim"))?,
            ),
            None => None,
        };
        Ok(Verified::External(ExternalIdentity {
            issuer: self.config.issuer.clone(),
            subject,
            tenant,
            permission_mask: self.config.mask_of(&claims),
        }))
    }
}

/// The `iss` of a token's payload, read before verification only to pick the keys.
fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}

impl TokenVerifier {
    /// Whether `issuer` is a configured OIDC provider.
    pub fn knows_issuer(&self, issuer: &str) -> bool {
        self.remote.iter().any(|r| r.config.issuer == issuer)
    }
}

/// Extracts the token from an `Authorization: Bearer …` header value.
pub fn bearer_token(header: Option<&str>) -> AppResult<&str> {
    let value = header.ok_or_else(|| AppError::Unauthenticated(INVALID_TOKEN.into()))?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or_else(|| AppError::Unauthenticated(INVALID_TOKEN.into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AppError::Unauthenticated(INVALID_TOKEN.into()));
    }
    Ok(token.trim())
}
