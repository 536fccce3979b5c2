//! The database work one request may do: a deadline after which none of its statements
//! starts and its running ones are stopped by PostgreSQL, a cap on how many of its
//! statements run at once, and its tenant's share of the pool, so that one request or
//! one tenant cannot hold every pooled connection while others wait.
//!
//! A transport opens a [`RequestBudget`] around the work of one request
//! ([`RequestBudget::scope`]); [`super::run`] finds it in the task and obeys it. Work
//! outside any scope (commands, background jobs) runs unbudgeted.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::error::{AppError, AppResult};

tokio::task_local! {
    static CURRENT: Arc<RequestBudget>;
}

/// Per-tenant semaphores over the pool, created on first use.
pub struct TenantShares {
    per_tenant: usize,
    shares: Mutex<HashMap<i64, Arc<Semaphore>>>,
}

impl TenantShares {
    /// `per_tenant` statements of one tenant may run at once (at least one).
    pub fn new(per_tenant: usize) -> TenantShares {
        TenantShares {
            per_tenant: per_tenant.max(1),
            shares: Mutex::new(HashMap::new()),
        }
    }

    fn of(&self, tenant_id: i64) -> Arc<Semaphore> {
        let mut shares = self.shares.lock().unwrap_or_else(|e| e.into_inner());
        if shares.len() > 4_096 {
            // Tenants with nothing running hold no state worth keeping.
            shares.retain(|_, s| Arc::strong_count(s) > 1);
        }
        shares
            .entry(tenant_id)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant)))
            .clone()
    }
}

/// What one request may still spend on the database.
pub struct RequestBudget {
    deadline: Instant,
    own: Arc<Semaphore>,
    tenant: Arc<Semaphore>,
    /// Set after a checkout timed out: the pool is exhausted or PostgreSQL is away, and
    /// the request's later statements fail at once instead of each waiting again.
    unavailable: AtomicBool,
}

/// Permits held while a statement runs; released when it ends, even if the request
/// that started it has already given up.
pub struct Admission {
    _own: OwnedSemaphorePermit,
    _tenant: OwnedSemaphorePermit,
}

impl RequestBudget {
    pub fn new(
        timeout: Duration,
        per_request: usize,
        tenant_id: i64,
        shares: &TenantShares,
    ) -> Arc<RequestBudget> {
        Arc::new(RequestBudget {
            deadline: Instant::now() + timeout,
            own: Arc::new(Semaphore::new(per_request.max(1))),
            tenant: shares.of(tenant_id),
            unavailable: AtomicBool::new(false),
        })
    }

    /// Runs `work` with this budget governing every `db::run` inside it.
    pub async fn scope<F: Future>(self: Arc<Self>, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }

    /// When the request gives up.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The budget of the request this task serves, if any.
    pub fn current() -> Option<Arc<RequestBudget>> {
        CURRENT.try_with(Arc::clone).ok()
    }

    /// Time left before the deadline; `TIMEOUT` once it has passed, `UNAVAILABLE` once
    /// a checkout of this request has failed.
    pub fn remaining(&self) -> AppResult<Duration> {
        if self.unavailable.load(Ordering::Relaxed) {
            return Err(unavailable());
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(AppError::Timeout)
        } else {
            Ok(left)
        }
    }

    /// Waits for this request's and its tenant's turn, at most until the deadline.
    pub async fn admit(&self) -> AppResult<Admission> {
        self.remaining()?;
        let permits = async {
            let own = self.own.clone().acquire_owned().await;
            let tenant = self.tenant.clone().acquire_owned().await;
            (own, tenant)
        };
        match tokio::time::timeout_at(self.deadline, permits).await {
            Ok((Ok(own), Ok(tenant))) => Ok(Admission {
                _own: own,
                _tenant: tenant,
            }),
            Ok(_) => Err(AppError::internal(anyhow::anyhow!("request budget closed"))),
            Err(_) => Err(AppError::Timeout),
        }
    }

    pub fn mark_unavailable(&self) {
        self.unavailable.store(true, Ordering::Relaxed);
    }
}

fn unavailable() -> AppError {
    AppError::Unavailable("the database is unavailable, try again shortly".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tenant_share_caps_its_requests_together() {
        let shares = TenantShares::new(2);
        let a = RequestBudget::new(Duration::from_secs(5), 4, 1, &shares);
        let b = RequestBudget::new(Duration::from_millis(50), 4, 1, &shares);
        let _first = a.admit().await.unwrap();
        let _second = a.admit().await.unwrap();
        // Tenant 1 has both its permits out: its next request waits until its deadline.
        assert!(matches!(b.admit().await, Err(AppError::Timeout)));
        // Tenant 2 is not affected.
        let other = RequestBudget::new(Duration::from_millis(50), 4, 2, &shares);
        assert!(other.admit().await.is_ok());
    }

    #[tokio::test]
    async fn a_request_runs_at_most_its_own_share_at_once() {
        let shares = TenantShares::new(8);
        let budget = RequestBudget::new(Duration::from_millis(50), 1, 1, &shares);
        let _first = budget.admit().await.unwrap();
        assert!(matches!(budget.admit().await, Err(AppError::Timeout)));
        assert!(matches!(budget.remaining(), Err(AppError::Timeout)));
    }

    #[tokio::test]
    async fn after_one_failed_checkout_the_request_fails_at_once() {
        let shares = TenantShares::new(8);
        let budget = RequestBudget::new(Duration::from_secs(5), 4, 1, &shares);
        budget.mark_unavailable();
        let started = std::time::Instant::now();
        assert!(matches!(
            budget.admit().await,
            Err(AppError::Unavailable(_))
        ));
        assert!(started.elapsed() < Duration::from_millis(50));
    }
}
