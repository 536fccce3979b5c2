//! Sub-accounts, tokens and the audit log: thin resolvers over the accounts service
//! (`crate::accounts`), which checks `ACCOUNTS_MANAGE` and the manager's limits and
//! writes every change with its audit entry.

use async_graphql::{Context, Json, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use super::{principal, shared};
use crate::accounts::Accounts;
use crate::db::accounts::AccountRow;
use crate::domain::Permission;
use crate::error::AppResult;

pub use crate::accounts::{CreateSubAccountInput, UpdateSubAccountInput};

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

fn manager<'a>(ctx: &Context<'a>) -> AppResult<Accounts<'a>> {
    Accounts::of(shared(ctx), principal(ctx)?)
}

#[derive(Default)]
pub struct AccountsQuery;

#[Object]
impl AccountsQuery {
    /// The tenant's accounts. Needs `ACCOUNTS_MANAGE`.
    async fn accounts(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Account>> {
        let rows = manager(ctx)?.list().await?;
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
        let page = manager(ctx)?
            .audit_log(first, after.as_deref(), account_id.as_ref())
            .await?;
        let edges: Vec<AuditEntryEdge> = page
            .entries
            .into_iter()
            .map(|(cursor, row, name)| AuditEntryEdge {
                cursor,
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
                has_next_page: page.has_next_page,
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
        Ok(manager(ctx)?
            .link_external(&account_id, issuer, subject)
            .await?)
    }

    /// Removes an OIDC identity's link: its tokens stop working on their next request.
    async fn unlink_external_identity(
        &self,
        ctx: &Context<'_>,
        issuer: String,
        subject: String,
    ) -> async_graphql::Result<bool> {
        Ok(manager(ctx)?.unlink_external(issuer, subject).await?)
    }

    /// Creates a sub-account from a preset and/or permissions, optionally narrowed to shops.
    async fn create_sub_account(
        &self,
        ctx: &Context<'_>,
        input: CreateSubAccountInput,
    ) -> async_graphql::Result<Account> {
        Ok(manager(ctx)?.create_sub_account(input).await?.into())
    }

    /// Changes a sub-account's name, permissions, shops, or disables it; takes effect on
    /// the account's next request.
    async fn update_sub_account(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateSubAccountInput,
    ) -> async_graphql::Result<Account> {
        Ok(manager(ctx)?.update_sub_account(&id, input).await?.into())
    }

    /// Issues a token for an account of the tenant, valid `ttlSeconds` (60 s to 90 days).
    async fn issue_token(
        &self,
        ctx: &Context<'_>,
        account_id: ID,
        #[graphql(desc = "Lifetime in seconds; 7 days when absent.")] ttl_seconds: Option<i64>,
    ) -> async_graphql::Result<IssuedTokenPayload> {
        let (issued, target) = manager(ctx)?.issue_token(&account_id, ttl_seconds).await?;
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
        Ok(manager(ctx)?.revoke_tokens(&account_id).await?.into())
    }
}
