//! Who the caller is (`viewer`), the shops it may see, and the region reference data.

use async_graphql::{Context, Object, SimpleObject, ID};

use super::{principal, provinces};
use crate::db::reference::{ProvinceRow, ShopRow};
use crate::domain::{Permission, Platform, Region};

/// A shop on one platform.
pub struct Shop(pub ShopRow);

#[Object]
impl Shop {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn platform(&self) -> Platform {
        self.0.platform
    }
    /// The shop's id on its platform.
    async fn external_id(&self) -> &str {
        &self.0.external_id
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// ISO-4217 currency of every amount of this shop's orders.
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    /// IANA time zone the shop reports in.
    async fn timezone(&self) -> &str {
        &self.0.timezone
    }
}

impl From<ShopRow> for Shop {
    fn from(row: ShopRow) -> Self {
        Shop(row)
    }
}

#[derive(SimpleObject, Clone)]
pub struct Province {
    /// GB/T 2260 two-digit code.
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub region: Region,
}

impl From<&ProvinceRow> for Province {
    fn from(row: &ProvinceRow) -> Self {
        Province {
            code: row.code.clone(),
            name_zh: row.name_zh.clone(),
            name_en: row.name_en.clone(),
            region: Region::parse(&row.region).unwrap_or(Region::East),
        }
    }
}

#[derive(SimpleObject)]
pub struct RegionInfo {
    pub code: Region,
    pub name_zh: String,
    pub name_en: String,
    pub provinces: Vec<Province>,
}

#[derive(SimpleObject)]
pub struct AccountInfo {
    pub id: ID,
    pub name: String,
    pub is_owner: bool,
}

#[derive(SimpleObject)]
pub struct TenantInfo {
    pub id: ID,
    pub name: String,
}

/// What the caller is and may do, so a frontend can hide what it cannot use.
#[derive(SimpleObject)]
pub struct Viewer {
    pub account: AccountInfo,
    pub tenant: TenantInfo,
    pub permissions: Vec<Permission>,
    pub shops: Vec<Shop>,
}

#[derive(Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// The authenticated account, its tenant, permissions and shops in scope.
    async fn viewer(&self, ctx: &Context<'_>) -> async_graphql::Result<Viewer> {
        let p = principal(ctx)?;
        Ok(Viewer {
            account: AccountInfo {
                id: ID(p.account_id.to_string()),
                name: p.account_name.clone(),
                is_owner: p.is_owner,
            },
            tenant: TenantInfo {
                id: ID(p.tenant_id.to_string()),
                name: p.tenant_name.clone(),
            },
            permissions: p.effective_permissions(),
            shops: p.shops.iter().cloned().map(Shop).collect(),
        })
    }

    /// The shops the caller may see.
    async fn shops(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Shop>> {
        Ok(principal(ctx)?.shops.iter().cloned().map(Shop).collect())
    }

    /// The seven macro regions with their provinces.
    async fn regions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<RegionInfo>> {
        principal(ctx)?;
        let rows = provinces(ctx).await?;
        Ok(Region::ALL
            .iter()
            .map(|region| {
                let (name_zh, name_en) = crate::domain::Region::names(*region);
                RegionInfo {
                    code: *region,
                    name_zh: name_zh.into(),
                    name_en: name_en.into(),
                    provinces: rows
                        .iter()
                        .filter(|p| p.region == region.as_str())
                        .map(Province::from)
                        .collect(),
                }
            })
            .collect())
    }
}
