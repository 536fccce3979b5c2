//! Bearer JWT verification and the per-request principal (DESIGN section 5).
//!
//! The token only says who is calling; permissions and shop scope are loaded from the
//! database on every request, so disabling an account or changing what it may do takes
//! effect on its next request.

use std::collections::BTreeSet;

use chrono::Utc;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::db::reference::ShopRow;
use crate::domain::Permission;
use crate::error::{AppError, AppResult};
use crate::settings::JwtSettings;

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
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSubject {
    pub account_id: i64,
    pub tenant_id: i64,
}

/// Verifies and mints tokens with the configured keys.
#[derive(Clone)]
pub struct TokenVerifier {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
    settings: JwtSettings,
}

/// The one message every rejected token gets: a client learns nothing about why.
const INVALID_TOKEN: &str = "missing or invalid credentials";

impl TokenVerifier {
    pub fn new(settings: &JwtSettings) -> TokenVerifier {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = settings.leeway_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[settings.issuer.as_str()]);
        validation.set_audience(&[settings.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        TokenVerifier {
            decoding: DecodingKey::from_secret(settings.secret.as_bytes()),
            encoding: EncodingKey::from_secret(settings.secret.as_bytes()),
            validation,
            settings: settings.clone(),
        }
    }

    /// Checks signature, `exp`, `nbf`, `iss` and `aud`; any failure is `UNAUTHENTICATED`
    /// with the same message.
    pub fn verify(&self, token: &str) -> AppResult<TokenSubject> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
            tracing::debug!(reason = %e, "token rejected");
            AppError::Unauthenticated(INVALID_TOKEN.into())
        })?;
        let claims = data.claims;
        match (claims.sub.parse::<i64>(), claims.tid.parse::<i64>()) {
            (Ok(account_id), Ok(tenant_id)) => Ok(TokenSubject {
                account_id,
                tenant_id,
            }),
            _ => Err(AppError::Unauthenticated(INVALID_TOKEN.into())),
        }
    }

    /// Mints a token for an account, valid for `ttl_seconds` (the configured default when
    /// `None`).
    pub fn issue(&self, subject: TokenSubject, ttl_seconds: Option<i64>) -> AppResult<String> {
        let now = Utc::now().timestamp();
        let ttl = ttl_seconds.unwrap_or(self.settings.default_ttl.as_secs() as i64);
        let claims = Claims {
            sub: subject.account_id.to_string(),
            tid: subject.tenant_id.to_string(),
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            exp: now + ttl,
            iat: now,
            nbf: Some(now),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(AppError::internal)
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

/// The authenticated caller of one request: its account, tenant, permissions and the
/// shops it may see. Every query is computed inside this scope.
#[derive(Debug, Clone)]
pub struct Principal {
    pub account_id: i64,
    pub account_name: String,
    pub tenant_id: i64,
    pub tenant_name: String,
    pub is_owner: bool,
    pub permissions: BTreeSet<Permission>,
    /// The shops in scope: the tenant's, narrowed to the account's `shop_ids` when set.
    pub shops: Vec<ShopRow>,
}

impl Principal {
    pub fn has(&self, permission: Permission) -> bool {
        self.is_owner || self.permissions.contains(&permission)
    }

    /// `FORBIDDEN` unless the account holds `permission`.
    pub fn require(&self, permission: Permission) -> AppResult<()> {
        if self.has(permission) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this account lacks the {permission} permission"
            )))
        }
    }

    pub fn shop_ids(&self) -> Vec<i64> {
        self.shops.iter().map(|s| s.id).collect()
    }

    /// The shop if it is in scope; another tenant's shop is indistinguishable from a
    /// missing one.
    pub fn shop(&self, id: i64) -> Option<&ShopRow> {
        self.shops.iter().find(|s| s.id == id)
    }

    /// Narrows a requested shop list to the scope; `None` means every shop in scope.
    /// A requested shop outside the scope simply matches nothing.
    pub fn scoped_shop_ids(&self, requested: Option<&[i64]>) -> Vec<i64> {
        match requested {
            None => self.shop_ids(),
            Some(ids) => self
                .shops
                .iter()
                .filter(|s| ids.contains(&s.id))
                .map(|s| s.id)
                .collect(),
        }
    }

    /// Effective permissions (the owner has all).
    pub fn effective_permissions(&self) -> Vec<Permission> {
        if self.is_owner {
            Permission::ALL.to_vec()
        } else {
            self.permissions.iter().copied().collect()
        }
    }
}
