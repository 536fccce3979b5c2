//! The accounts service: sub-accounts, their tokens, OIDC identity links and the audit
//! log, for a manager (`ACCOUNTS_MANAGE`). A manager that is not the owner can grant
//! only what it holds itself, inside its own shop scope, and cannot act on the owner.
//! Every change is written with its audit entry in one transaction.

use std::collections::BTreeSet;

use async_graphql::{InputObject, ID};
use base64::Engine;
use chrono::Utc;

use crate::auth::{IssuedToken, Principal, TokenSubject};
use crate::db::accounts::{AccountChanges, AccountRow};
use crate::db::audit::AuditRow;
use crate::db::{self};
use crate::domain::{Permission, RolePreset};
use crate::error::{AppError, AppResult};
use crate::filters::parse_id;
use crate::state::Services;

#[derive(InputObject)]
pub struct CreateSubAccountInput {
    pub name: String,
    /// Start from a preset (仅查看 VIEWER, 处理售后 AFTER_SALES, 发货权限 SHIPPING, ...).
    pub preset: Option<RolePreset>,
    /// Added to the preset's permissions.
    pub permissions: Option<Vec<Permission>>,
    /// Narrow the account to these shops; empty or absent: every shop of the tenant.
    pub shop_ids: Option<Vec<ID>>,
}

#[derive(InputObject)]
pub struct UpdateSubAccountInput {
    pub name: Option<String>,
    /// Replaces the permissions with the preset's (plus `permissions`, when given).
    pub preset: Option<RolePreset>,
    /// Replaces the permissions (with `preset`: added to it).
    pub permissions: Option<Vec<Permission>>,
    pub shop_ids: Option<Vec<ID>>,
    /// `true` disables the account at once; `false` enables it again.
    pub disabled: Option<bool>,
}

/// A manager's view of the tenant's accounts: made by [`Accounts::of`], which checks
/// `ACCOUNTS_MANAGE`.
pub struct Accounts<'a> {
    services: &'a Services,
    p: &'a Principal,
}

/// A page of the audit log, newest first, with the acting account's name.
pub struct AuditPage {
    pub entries: Vec<(String, AuditRow, Option<String>)>,
    pub has_next_page: bool,
}

const MIN_TOKEN_TTL: i64 = 60;
const DEFAULT_TOKEN_TTL: i64 = 7 * 24 * 3600;
const MAX_TOKEN_TTL: i64 = 90 * 24 * 3600;
const MAX_NAME: usize = 100;

fn check_name(name: &str) -> AppResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(AppError::bad_input(format!(
            "name must be 1 to {MAX_NAME} characters"
        )));
    }
    crate::domain::check_plain_text("name", name, MAX_NAME).map_err(AppError::bad_input)?;
    Ok(name.to_string())
}

/// The permission set of a preset plus extra ones, checked against what the caller may grant.
fn grantable(
    p: &Principal,
    preset: Option<RolePreset>,
    extra: Option<&[Permission]>,
) -> AppResult<Vec<String>> {
    let mut set: BTreeSet<Permission> = preset
        .map(|r| r.permissions().to_vec())
        .unwrap_or_default()
        .into_iter()
        .collect();
    set.extend(extra.unwrap_or_default().iter().copied());
    if set.is_empty() {
        return Err(AppError::bad_input(
            "a sub-account needs a preset or at least one permission",
        ));
    }
    if let Some(missing) = set.iter().find(|perm| !p.has(**perm)) {
        return Err(AppError::Forbidden(format!(
            "cannot grant {missing}, which this account does not hold"
        )));
    }
    Ok(set.iter().map(|perm| perm.as_str().to_string()).collect())
}

/// Shop ids inside the caller's scope; a scoped manager cannot create an unscoped account.
fn grantable_shops(p: &Principal, ids: Option<&[ID]>) -> AppResult<Vec<i64>> {
    let ids: Vec<i64> = ids
        .unwrap_or_default()
        .iter()
        .map(|id| parse_id("shopIds", id))
        .collect::<AppResult<_>>()?;
    if let Some(bad) = ids.iter().find(|id| p.shop(**id).is_none()) {
        return Err(AppError::bad_input(format!("unknown shop {bad}")));
    }
    let scoped_caller = !p.is_owner && p.shops.len() < p.tenant_shop_count;
    if ids.is_empty() && scoped_caller {
        return Err(AppError::Forbidden(
            "an account narrowed to some shops cannot grant all shops".into(),
        ));
    }
    let mut ids = ids;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

impl<'a> Accounts<'a> {
    /// The accounts service for `p`, who must hold `ACCOUNTS_MANAGE`.
    pub fn of(services: &'a Services, p: &'a Principal) -> AppResult<Accounts<'a>> {
        p.require(Permission::AccountsManage)?;
        Ok(Accounts { services, p })
    }

    /// The target must be a sub-account of the tenant (or, for the owner, any account).
    async fn target(&self, id: &ID, allow_owner: bool) -> AppResult<AccountRow> {
        let id = parse_id("accountId", id)?;
        let tenant = self.p.tenant_id;
        let row = db::run(&self.services.pool, move |c| {
            db::accounts::find_in_tenant(c, tenant, id)
        })
        .await?
        .ok_or_else(|| AppError::NotFound(format!("account {id} not found")))?;
        if row.is_owner && !(allow_owner && self.p.is_owner) {
            return Err(AppError::Forbidden(
                "the owner account cannot be changed here".into(),
            ));
        }
        Ok(row)
    }

    /// The tenant's accounts.
    pub async fn list(&self) -> AppResult<Vec<AccountRow>> {
        let tenant = self.p.tenant_id;
        db::run(&self.services.pool, move |c| {
            db::accounts::list_for_tenant(c, tenant)
        })
        .await
    }

    /// Up to `first` audit entries after the cursor `after`, of one account or all.
    pub async fn audit_log(
        &self,
        first: i32,
        after: Option<&str>,
        account_id: Option<&ID>,
    ) -> AppResult<AuditPage> {
        let max = self.services.settings.limits.max_page_size;
        if !(0..=max).contains(&first) {
            return Err(AppError::bad_input(format!(
                "first must be between 0 and {max}"
            )));
        }
        let account = account_id.map(|id| parse_id("accountId", id)).transpose()?;
        let before = after
            .map(|c| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| s.strip_prefix("audit:").and_then(|n| n.parse::<i64>().ok()))
                    .ok_or_else(|| AppError::bad_input("after is not a cursor of the audit log"))
            })
            .transpose()?;
        let tenant = self.p.tenant_id;
        let mut rows = db::run(&self.services.pool, move |c| {
            db::audit::list(c, tenant, account, before, i64::from(first) + 1)
        })
        .await?;
        let has_next_page = rows.len() > first as usize;
        rows.truncate(first as usize);
        let entries = rows
            .into_iter()
            .map(|(row, name)| {
                let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(format!("audit:{}", row.id));
                (cursor, row, name)
            })
            .collect();
        Ok(AuditPage {
            entries,
            has_next_page,
        })
    }

    /// Links an OIDC identity to an account; `false` when it is already linked in
    /// another tenant.
    pub async fn link_external(
        &self,
        account_id: &ID,
        issuer: String,
        subject: String,
    ) -> AppResult<bool> {
        let p = self.p;
        if !self.services.verifier.knows_issuer(&issuer) {
            return Err(AppError::bad_input(format!(
                "{issuer:?} is not a configured OIDC issuer (OIDC_ISSUERS)"
            )));
        }
        if subject.is_empty() || subject.len() > 500 {
            return Err(AppError::bad_input("subject must be 1 to 500 bytes"));
        }
        let target = self.target(account_id, true).await?;
        if !p.is_owner {
            let held = target
                .permissions
                .iter()
                .filter_map(|name| Permission::parse(name))
                .all(|perm| p.has(perm));
            let scoped = p.shops.len() < p.tenant_shop_count;
            let inside = !target.shop_ids.is_empty()
                && target.shop_ids.iter().all(|id| p.shop(*id).is_some());
            if !held || (scoped && !inside) {
                return Err(AppError::Forbidden(
                    "cannot link an account that may do more than this one".into(),
                ));
            }
        }
        let (tenant_id, target_id) = (p.tenant_id, target.id);
        let details = serde_json::json!({ "issuer": issuer, "subject": subject });
        db::audit::audited(
            &self.services.pool,
            p.actor(),
            "linkExternalIdentity",
            move |c| db::accounts::link_external(c, tenant_id, target_id, &issuer, &subject),
            move |linked| linked.then(|| (format!("account:{target_id}"), details)),
        )
        .await
    }

    /// Removes an OIDC identity's link; `false` when there was none.
    pub async fn unlink_external(&self, issuer: String, subject: String) -> AppResult<bool> {
        let tenant_id = self.p.tenant_id;
        let details = serde_json::json!({ "issuer": issuer, "subject": subject });
        db::audit::audited(
            &self.services.pool,
            self.p.actor(),
            "unlinkExternalIdentity",
            move |c| db::accounts::unlink_external(c, tenant_id, &issuer, &subject),
            move |removed| removed.then(|| ("externalIdentity".to_string(), details)),
        )
        .await
    }

    /// Creates a sub-account from a preset and/or permissions, optionally narrowed to
    /// shops.
    pub async fn create_sub_account(&self, input: CreateSubAccountInput) -> AppResult<AccountRow> {
        let p = self.p;
        let name = check_name(&input.name)?;
        let permissions = grantable(p, input.preset, input.permissions.as_deref())?;
        let shops = grantable_shops(p, input.shop_ids.as_deref())?;
        let actor = p.actor();
        db::audit::audited(
            &self.services.pool,
            actor,
            "createSubAccount",
            move |c| {
                db::accounts::create_sub_account(c, actor.tenant_id, &name, &permissions, &shops)
            },
            |row| {
                let details = serde_json::json!({
                    "name": row.name, "permissions": row.permissions, "shopIds": row.shop_ids,
                });
                Some((format!("account:{}", row.id), details))
            },
        )
        .await
    }

    /// Changes a sub-account's name, permissions, shops, or disables it; takes effect on
    /// the account's next request.
    pub async fn update_sub_account(
        &self,
        id: &ID,
        input: UpdateSubAccountInput,
    ) -> AppResult<AccountRow> {
        let p = self.p;
        let target = self.target(id, false).await?;
        let mut changes = AccountChanges {
            name: input.name.as_deref().map(check_name).transpose()?,
            ..Default::default()
        };
        if input.preset.is_some() || input.permissions.is_some() {
            changes.permissions = Some(grantable(p, input.preset, input.permissions.as_deref())?);
        }
        if input.shop_ids.is_some() {
            changes.shop_ids = Some(grantable_shops(p, input.shop_ids.as_deref())?);
        }
        if let Some(disabled) = input.disabled {
            if disabled && target.id == p.account_id {
                return Err(AppError::bad_input("an account cannot disable itself"));
            }
            changes.disabled_at = Some(disabled.then(Utc::now));
        }
        let actor = p.actor();
        let details = serde_json::json!({
            "name": changes.name, "permissions": changes.permissions, "shopIds": changes.shop_ids,
            "disabled": input.disabled,
        });
        db::audit::audited(
            &self.services.pool,
            actor,
            "updateSubAccount",
            move |c| db::accounts::update_sub_account(c, actor.tenant_id, target.id, &changes),
            move |row| Some((format!("account:{}", row.id), details)),
        )
        .await
    }

    /// Issues a token for an account of the tenant, valid `ttl_seconds` (60 s to 90
    /// days; 7 days when absent).
    pub async fn issue_token(
        &self,
        account_id: &ID,
        ttl_seconds: Option<i64>,
    ) -> AppResult<(IssuedToken, AccountRow)> {
        let ttl_seconds = ttl_seconds.unwrap_or(DEFAULT_TOKEN_TTL);
        if !(MIN_TOKEN_TTL..=MAX_TOKEN_TTL).contains(&ttl_seconds) {
            return Err(AppError::bad_input(format!(
                "ttlSeconds must be between {MIN_TOKEN_TTL} and {MAX_TOKEN_TTL}"
            )));
        }
        let target = self.target(account_id, true).await?;
        if target.disabled_at.is_some() {
            return Err(AppError::bad_input("the account is disabled"));
        }
        let issued = self.services.verifier.issue(
            TokenSubject::account(target.id, target.tenant_id, target.token_generation),
            Some(ttl_seconds),
        )?;
        let details = serde_json::json!({ "jti": issued.jti, "expiresAt": issued.expires_at });
        let target_id = target.id;
        db::audit::log(
            &self.services.pool,
            self.p.actor(),
            "issueToken",
            format!("account:{target_id}"),
            details,
        )
        .await?;
        Ok((issued, target))
    }

    /// Revokes every token issued so far for the account.
    pub async fn revoke_tokens(&self, account_id: &ID) -> AppResult<AccountRow> {
        let target = self.target(account_id, true).await?;
        let actor = self.p.actor();
        db::audit::audited(
            &self.services.pool,
            actor,
            "revokeTokens",
            move |c| db::accounts::revoke_tokens(c, actor.tenant_id, target.id),
            |row| Some((format!("account:{}", row.id), serde_json::json!({}))),
        )
        .await
    }
}
