//! The authenticated principal of a request and what a verified token names: the
//! types every layer above the database reads (GraphQL, CSV, the cache, subscriptions),
//! loaded by `db::accounts` and made by `auth` from tokens.

use std::collections::BTreeSet;

use crate::db::reference::ShopRow;
use crate::domain::Permission;
use crate::error::{AppError, AppResult};

/// Who a verified token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSubject {
    pub account_id: i64,
    pub tenant_id: i64,
    /// Must equal the account's current generation (revocation).
    pub generation: i32,
    /// An OIDC provider's roles narrow the account's permissions to these (bit `i` is
    /// `Permission::ALL[i]`); `None`: not narrowed.
    pub permission_mask: Option<u32>,
}

impl TokenSubject {
    /// A subject whose permissions are the account's own.
    pub fn account(account_id: i64, tenant_id: i64, generation: i32) -> TokenSubject {
        TokenSubject {
            account_id,
            tenant_id,
            generation,
            permission_mask: None,
        }
    }
}

/// A verified OIDC token's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    pub issuer: String,
    pub subject: String,
    /// The tenant claim's value, when the provider is configured with one: it must
    /// name the linked account's tenant.
    pub tenant: Option<String>,
    /// The permissions the provider's roles grant (see [`TokenSubject::permission_mask`]).
    pub permission_mask: Option<u32>,
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
    /// How many shops the tenant has in all (to tell a narrowed account).
    pub tenant_shop_count: usize,
    /// What the response cache checks an entry against (read with the account).
    pub stamp: ResponseStamp,
    /// The OIDC roles' narrowing the permissions above already reflect.
    pub permission_mask: Option<u32>,
}

/// The versions a cached response was computed at: the greatest data version of the
/// tenant's shops, the account's own data version, and the token generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseStamp {
    pub tenant_version: i64,
    pub account_version: i64,
    pub token_generation: i32,
}

impl Principal {
    /// Who acts, for audit entries.
    pub fn actor(&self) -> crate::db::audit::Actor {
        crate::db::audit::Actor {
            tenant_id: self.tenant_id,
            account_id: self.account_id,
        }
    }

    pub fn has(&self, permission: Permission) -> bool {
        self.is_owner || self.permissions.contains(&permission)
    }

    /// `FORBIDDEN` when the account asks to skip the caches in production without
    /// `CACHE_BYPASS` (outside production anyone may).
    pub fn require_cache_bypass(&self, production: bool) -> AppResult<()> {
        if production && !self.has(crate::domain::Permission::CacheBypass) {
            return Err(AppError::Forbidden(
                "bypassing the cache needs the CACHE_BYPASS permission".into(),
            ));
        }
        Ok(())
    }

    /// `FORBIDDEN` unless the account may read `data`: the one rule for that data set.
    pub fn require_read(&self, data: crate::domain::DataSet) -> AppResult<()> {
        self.require(data.permission())
    }

    /// Whether the account may read `data`.
    pub fn may_read(&self, data: crate::domain::DataSet) -> bool {
        self.has(data.permission())
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
