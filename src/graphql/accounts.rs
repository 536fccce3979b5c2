//! Sub-accounts, tokens and the audit log. Everything here needs
//! `ACCOUNTS_MANAGE`; a manager that is not the owner can grant only what it holds
//! itself, inside its own shop scope, and cannot act on the owner.

use std::collections::BTreeSet;

use async_graphql::{Context, InputObject, Json, Object, SimpleObject, ID};
use base64::Engine;
use chrono::{DateTime, Utc};

use super::{parse_id, principal, shared};
use crate::auth::{Principal, TokenSubject};
use crate::db::accounts::{AccountChanges, AccountRow};
use crate::db::{self};
use crate::domain::{Permission, RolePreset};
use crate::error::{AppError, AppResult};

/// An account of the caller's tenant.
#[derive(SimpleObject)]
pub struct Account {
    pub id: ID,
    pub name: String,
    pub is_owner: bool,
    /// What the account may do (the owner: everything).
    pub permissions: Vec<Permission>,
    /// The shops it is narrowed to; empty means every shop of the tenant.
    pub shop_ids: Vec<ID>,
    pub disabled: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<AccountRow> for Account {
    fn from(row: AccountRow) -> Self {
        let permissions = if row.is_owner {
            Permission::ALL.to_vec()
        } else {
            row.permissions
                .iter()
                .filter_map(|p| Permission::parse(p))
                .collect()
        };
        Account {
            id: ID(row.id.to_string()),
            name: row.name,
            is_owner: row.is_owner,
            permissions,
            shop_ids: row.shop_ids.iter().map(|id| ID(id.to_string())).collect(),
            disabled: row.disabled_at.is_some(),
            disabled_at: row.disabled_at,
            created_at: row.created_at,
        }
    }
}

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

#[derive(SimpleObject)]
pub struct IssuedTokenPayload {
    /// The bearer token; it is shown once and never stored.
    pub token: String,
    pub jti: String,
    pub expires_at: DateTime<Utc>,
    pub account: Account,
}

#[derive(SimpleObject)]
pub struct AuditEntry {
    pub id: ID,
    pub account_id: Option<ID>,
    pub account_name: Option<String>,
    /// The operation: a mutation name, `readPii`, `export`, ...
    pub action: String,
    /// What it acted on, e.g. `account:12` or `orders`.
    pub target: String,
    pub details: Json<serde_json::Value>,
    pub at: DateTime<Utc>,
}

#[derive(SimpleObject)]
pub struct AuditEntryEdge {
    pub cursor: String,
    pub node: AuditEntry,
}

#[derive(SimpleObject)]
pub struct AuditPageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

#[derive(SimpleObject)]
pub struct AuditEntryConnection {
    pub edges: Vec<AuditEntryEdge>,
    pub page_info: AuditPageInfo,
}

const MIN_TOKEN_TTL: i64 = 60;
const DEFAULT_TOKEN_TTL: i64 = 7 * 24 * 3600;
const MAX_TOKEN_TTL: i64 = 90 * 24 * 3600;
const MAX_NAME: usize = 100;

fn manager<'a>(ctx: &Context<'a>) -> AppResult<&'a Principal> {
    let p = principal(ctx)?;
    p.require(Permission::AccountsManage)?;
    Ok(p)
}

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

/// The target must be a sub-account of the tenant (or, for the owner, any account).
async fn target_account(
    ctx: &Context<'_>,
    p: &Principal,
    id: &ID,
    allow_owner: bool,
) -> AppResult<AccountRow> {
    let id = parse_id("accountId", id)?;
    let tenant = p.tenant_id;
    let row = db::run(&shared(ctx).pool, move |c| {
        db::accounts::find_in_tenant(c, tenant, id)
    })
    .await?
    .ok_or_else(|| AppError::NotFound(format!("account {id} not found")))?;
    if row.is_owner && !(allow_owner && p.is_owner) {
        return Err(AppError::Forbidden(
            "the owner account cannot be changed here".into(),
        ));
    }
    Ok(row)
}

#[derive(Default)]
pub struct AccountsQuery;

#[Object]
impl AccountsQuery {
    /// The tenant's accounts. Needs `ACCOUNTS_MANAGE`.
    async fn accounts(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Account>> {
        let p = manager(ctx)?;
        let tenant = p.tenant_id;
        let rows = db::run(&shared(ctx).pool, move |c| {
            db::accounts::list_for_tenant(c, tenant)
        })
        .await?;
        Ok(rows.into_iter().map(Account::from).collect())
    }

    /// Who did what, newest first: mutations, token issuance, PII reads and exports.
    /// Needs `ACCOUNTS_MANAGE`.
    #[graphql(complexity = "(first.clamp(0, 200) as usize) * child_complexity + 5")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
        account_id: Option<ID>,
    ) -> async_graphql::Result<AuditEntryConnection> {
        let p = manager(ctx)?;
        let max = shared(ctx).settings.limits.max_page_size;
        if !(0..=max).contains(&first) {
            return Err(AppError::bad_input(format!("first must be between 0 and {max}")).into());
        }
        let account = account_id
            .as_ref()
            .map(|id| parse_id("accountId", id))
            .transpose()?;
        let before = after
            .as_deref()
            .map(|c| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| s.strip_prefix("audit:").and_then(|n| n.parse::<i64>().ok()))
                    .ok_or_else(|| AppError::bad_input("after is not a cursor of the audit log"))
            })
            .transpose()?;
        let tenant = p.tenant_id;
        let mut rows = db::run(&shared(ctx).pool, move |c| {
            db::audit::list(c, tenant, account, before, i64::from(first) + 1)
        })
        .await?;
        let has_next_page = rows.len() > first as usize;
        rows.truncate(first as usize);
        let edges: Vec<AuditEntryEdge> = rows
            .into_iter()
            .map(|(row, name)| AuditEntryEdge {
                cursor: base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(format!("audit:{}", row.id)),
                node: AuditEntry {
                    id: ID(row.id.to_string()),
                    account_id: row.account_id.map(|id| ID(id.to_string())),
                    account_name: name,
                    action: row.action,
                    target: row.target,
                    details: Json(row.details),
                    at: row.at,
                },
            })
            .collect();
        Ok(AuditEntryConnection {
            page_info: AuditPageInfo {
                has_next_page,
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
        })
    }
}

#[derive(Default)]
pub struct AccountsMutation;

#[Object]
impl AccountsMutation {
    /// Lets a person at an OIDC provider (`OIDC_ISSUERS`) act as an account: tokens of
    /// `issuer` whose subject claim is `subject` then have the account's permissions
    /// and shop scope (narrowed by the provider's roles when they are mapped). A manager
    /// that is not the owner may link only accounts that hold nothing it does not hold
    /// itself, inside its own shop scope. `false` when the identity is already linked
    /// in another tenant.
    async fn link_external_identity(
        &self,
        ctx: &Context<'_>,
        account_id: ID,
        issuer: String,
        subject: String,
    ) -> async_graphql::Result<bool> {
        let p = manager(ctx)?;
        if !shared(ctx).verifier.knows_issuer(&issuer) {
            return Err(AppError::bad_input(format!(
                "{issuer:?} is not a configured OIDC issuer (OIDC_ISSUERS)"
            ))
            .into());
        }
        if subject.is_empty() || subject.len() > 500 {
            return Err(AppError::bad_input("subject must be 1 to 500 bytes").into());
        }
        let target = target_account(ctx, p, &account_id, true).await?;
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
                )
                .into());
            }
        }
        let actor = p.actor();
        let (tenant_id, target_id) = (p.tenant_id, target.id);
        let details = serde_json::json!({ "issuer": issuer, "subject": subject });
        let linked = db::audit::audited(
            &shared(ctx).pool,
            actor,
            "linkExternalIdentity",
            move |c| db::accounts::link_external(c, tenant_id, target_id, &issuer, &subject),
            move |linked| linked.then(|| (format!("account:{target_id}"), details)),
        )
        .await?;
        Ok(linked)
    }

    /// Removes an OIDC identity's link: its tokens stop working on their next request.
    async fn unlink_external_identity(
        &self,
        ctx: &Context<'_>,
        issuer: String,
        subject: String,
    ) -> async_graphql::Result<bool> {
        let p = manager(ctx)?;
        let actor = p.actor();
        let tenant_id = p.tenant_id;
        let details = serde_json::json!({ "issuer": issuer, "subject": subject });
        let removed = db::audit::audited(
            &shared(ctx).pool,
            actor,
            "unlinkExternalIdentity",
            move |c| db::accounts::unlink_external(c, tenant_id, &issuer, &subject),
            move |removed| removed.then(|| ("externalIdentity".to_string(), details)),
        )
        .await?;
        Ok(removed)
    }

    /// Creates a sub-account from a preset and/or permissions, optionally narrowed to shops.
    async fn create_sub_account(
        &self,
        ctx: &Context<'_>,
        input: CreateSubAccountInput,
    ) -> async_graphql::Result<Account> {
        let p = manager(ctx)?;
        let name = check_name(&input.name)?;
        let permissions = grantable(p, input.preset, input.permissions.as_deref())?;
        let shops = grantable_shops(p, input.shop_ids.as_deref())?;
        let actor = p.actor();
        let row = db::audit::audited(
            &shared(ctx).pool,
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
        .await?;
        Ok(row.into())
    }

    /// Changes a sub-account's name, permissions, shops, or disables it; takes effect on
    /// the account's next request.
    async fn update_sub_account(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateSubAccountInput,
    ) -> async_graphql::Result<Account> {
        let p = manager(ctx)?;
        let target = target_account(ctx, p, &id, false).await?;
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
                return Err(AppError::bad_input("an account cannot disable itself").into());
            }
            changes.disabled_at = Some(disabled.then(Utc::now));
        }
        let actor = p.actor();
        let details = serde_json::json!({
            "name": changes.name, "permissions": changes.permissions, "shopIds": changes.shop_ids,
            "disabled": input.disabled,
        });
        let row = db::audit::audited(
            &shared(ctx).pool,
            actor,
            "updateSubAccount",
            move |c| db::accounts::update_sub_account(c, actor.tenant_id, target.id, &changes),
            move |row| Some((format!("account:{}", row.id), details)),
        )
        .await?;
        Ok(row.into())
    }

    /// Issues a token for an account of the tenant, valid `ttlSeconds` (60 s to 90 days).
    async fn issue_token(
        &self,
        ctx: &Context<'_>,
        account_id: ID,
        #[graphql(desc = "Lifetime in seconds; 7 days when absent.")] ttl_seconds: Option<i64>,
    ) -> async_graphql::Result<IssuedTokenPayload> {
        let p = manager(ctx)?;
        let ttl_seconds = ttl_seconds.unwrap_or(DEFAULT_TOKEN_TTL);
        if !(MIN_TOKEN_TTL..=MAX_TOKEN_TTL).contains(&ttl_seconds) {
            return Err(AppError::bad_input(format!(
                "ttlSeconds must be between {MIN_TOKEN_TTL} and {MAX_TOKEN_TTL}"
            ))
            .into());
        }
        let target = target_account(ctx, p, &account_id, true).await?;
        if target.disabled_at.is_some() {
            return Err(AppError::bad_input("the account is disabled").into());
        }
        let issued = shared(ctx).verifier.issue(
            TokenSubject::account(target.id, target.tenant_id, target.token_generation),
            Some(ttl_seconds),
        )?;
        let actor = p.actor();
        let details = serde_json::json!({ "jti": issued.jti, "expiresAt": issued.expires_at });
        let target_id = target.id;
        db::audit::audited(
            &shared(ctx).pool,
            actor,
            "issueToken",
            |_| Ok(()),
            move |_| Some((format!("account:{target_id}"), details)),
        )
        .await?;
        Ok(IssuedTokenPayload {
            token: issued.token,
            jti: issued.jti,
            expires_at: issued.expires_at,
            account: target.into(),
        })
    }

    /// Revokes every token issued so far for the account; it needs a new one from its
    /// next request on.
    async fn revoke_tokens(
        &self,
        ctx: &Context<'_>,
        account_id: ID,
    ) -> async_graphql::Result<Account> {
        let p = manager(ctx)?;
        let target = target_account(ctx, p, &account_id, true).await?;
        let actor = p.actor();
        let row = db::audit::audited(
            &shared(ctx).pool,
            actor,
            "revokeTokens",
            move |c| db::accounts::revoke_tokens(c, actor.tenant_id, target.id),
            |row| Some((format!("account:{}", row.id), serde_json::json!({}))),
        )
        .await?;
        Ok(row.into())
    }
}
