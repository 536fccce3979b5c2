//! Keeps a node's [`Store`] current with PostgreSQL and answers from it.
//!
//! At start the node loads every order in one snapshot (in id ranges) and remembers the
//! snapshot's xmin. A catch-up opens a new snapshot, reads the change log of every
//! transaction at or above the previous xmin (all older ones were finished, so
//! applied), reloads those orders, products, shops and rates from the same snapshot,
//! and applies them. Before answering, a request waits for a catch-up that began after
//! it arrived (concurrent requests share one), so any write that returned before the
//! request is in the answer, on every node, whoever wrote it. The wait is bounded by
//! the request's deadline: a node that cannot catch up answers TIMEOUT or
//! UNAVAILABLE, never a stale number.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use diesel::PgConnection;

use super::money::Rates;
use super::store::{OrderFacts, Store};
use crate::db::{self, PgPool};
use crate::error::{AppError, AppResult};

/// Orders read per statement while loading.
const LOAD_CHUNK: i64 = 100_000;
/// Orders read per statement while catching up.
const CATCH_UP_CHUNK: usize = 20_000;
/// How long the change log keeps entries of finished transactions.
const LOG_KEEP_SECONDS: i64 = 600;
/// Rows in the unsorted tail (and dead rows) that make a node merge them into its sorted
/// body (`ANALYTICS_COMPACT_AT`; the tests set it low so that their writes compact).
static COMPACT_AT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1_000_000);

/// Sets the tail size that makes a node compact its store.
pub fn set_compact_at(rows: usize) {
    COMPACT_AT.store(rows, Ordering::Relaxed);
}

struct Loaded {
    store: Store,
    rates: Rates,
    /// xmin of the snapshot the store reflects.
    xmin: u64,
}

/// The analytic store of this node and how it is kept current.
pub struct Engine {
    pool: PgPool,
    state: RwLock<Option<Loaded>>,
    /// One catch-up at a time; requests queue here and share the newest one.
    sync: tokio::sync::Mutex<()>,
    /// Catch-ups begun, and the number of the last one finished.
    begun: AtomicU64,
    finished: AtomicU64,
    ready: AtomicBool,
    loading_since: Instant,
    /// What each catch-up changed, for live subscriptions on this node.
    changes: tokio::sync::broadcast::Sender<Arc<ChangeBatch>>,
}

/// What one catch-up applied: the orders written (with their shop, and whether the
/// store did not hold them before), or a reload of everything.
#[derive(Debug, Default)]
pub struct ChangeBatch {
    pub orders: Vec<ChangedOrder>,
    /// Shops whose settings changed.
    pub shops: Vec<i64>,
    /// The store was reloaded or the exchange rates changed: anything may have changed.
    pub everything: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct ChangedOrder {
    pub id: i64,
    pub shop_id: i64,
    pub created: bool,
}

impl ChangeBatch {
    /// A batch after which anything may have changed (a reload, or a subscriber that
    /// fell behind the backlog).
    pub fn everything() -> Arc<ChangeBatch> {
        Arc::new(ChangeBatch {
            everything: true,
            ..ChangeBatch::default()
        })
    }

    /// Whether the batch may change answers over these shops.
    pub fn touches(&self, shop_ids: &[i64]) -> bool {
        self.everything
            || self.orders.iter().any(|o| shop_ids.contains(&o.shop_id))
            || self.shops.iter().any(|s| shop_ids.contains(s))
    }
}

/// Batches a slow subscriber may fall behind by before it is told it lagged.
const CHANGE_BACKLOG: usize = 256;

/// What a catch-up read from one snapshot.
enum Delta {
    Reload(Box<Loaded>),
    Changes {
        xmin: u64,
        orders: Vec<OrderFacts>,
        order_ids: Vec<i64>,
        products: Vec<(i64, String)>,
        shops: Vec<crate::analytics::store::ShopFacts>,
        rates: Option<Rates>,
    },
}

impl Engine {
    pub fn new(pool: PgPool) -> Arc<Engine> {
        Arc::new(Engine {
            pool,
            state: RwLock::new(None),
            sync: tokio::sync::Mutex::new(()),
            begun: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            ready: AtomicBool::new(false),
            loading_since: Instant::now(),
            changes: tokio::sync::broadcast::channel(CHANGE_BACKLOG).0,
        })
    }

    /// Every later catch-up's changes (a receiver that falls behind by more than the
    /// backlog is told how many it missed).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<ChangeBatch>> {
        self.changes.subscribe()
    }

    /// Catches up now (after a write here, or one another node announced), so live
    /// subscribers see it without waiting for the next tick.
    /// Nothing happens when no subscription listens on this node: requests catch up on
    /// their own, and writes then cost no extra catch-up.
    pub fn nudge(self: &Arc<Engine>) {
        if self.changes.receiver_count() == 0 {
            return;
        }
        let engine = self.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            if let Err(e) = engine.ensure_current(deadline).await {
                tracing::warn!(error = ?e, "analytic store catch-up failed");
            }
        });
    }

    /// Loads the store and then follows the change log every `interval`, pruning it
    /// now and then. Runs for the life of the process.
    pub fn start(self: &Arc<Engine>, interval: Duration) {
        let engine = self.clone();
        tokio::spawn(async move {
            let mut ticks = 0u64;
            loop {
                if let Err(e) = engine.clone().catch_up_now().await {
                    tracing::warn!(error = ?e, "analytic store catch-up failed; retrying");
                }
                ticks += 1;
                if ticks.is_multiple_of(60) {
                    let pool = engine.pool.clone();
                    if let Err(e) =
                        db::run(&pool, |c| db::facts::prune_changes(c, LOG_KEEP_SECONDS)).await
                    {
                        tracing::warn!(error = ?e, "change log pruning failed");
                    }
                }
                tokio::time::sleep(interval).await;
            }
        });
    }

    /// Whether the store has been loaded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Rows held and an estimate of their bytes.
    pub fn size(&self) -> (usize, usize) {
        match self.state.read().expect("store lock").as_ref() {
            Some(l) => l.store.size(),
            None => (0, 0),
        }
    }

    /// Waits until the store reflects every transaction committed before this call
    /// (bounded by `deadline`).
    pub async fn ensure_current(self: &Arc<Engine>, deadline: Instant) -> AppResult<()> {
        let arrival = self.begun.load(Ordering::Acquire);
        let engine = self.clone();
        // A catch-up of its own task: it serves every waiting request and must not
        // count against one request's statement budget.
        let wait = async move {
            let _turn = engine.sync.lock().await;
            if engine.finished.load(Ordering::Acquire) > arrival {
                return Ok(());
            }
            engine.clone().catch_up_locked().await
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, tokio::spawn(wait)).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(AppError::Internal(anyhow::anyhow!("catch-up task: {join}"))),
            Err(_) if !self.is_ready() => Err(AppError::Unavailable(format!(
                "analytics are loading on this node ({} s so far); try again shortly",
                self.loading_since.elapsed().as_secs()
            ))),
            Err(_) => Err(AppError::Timeout),
        }
    }

    async fn catch_up_now(self: Arc<Engine>) -> AppResult<()> {
        let engine = self.clone();
        let _turn = engine.sync.lock().await;
        self.catch_up_locked().await
    }

    async fn catch_up_locked(self: Arc<Engine>) -> AppResult<()> {
        let number = self.begun.fetch_add(1, Ordering::AcqRel) + 1;
        let previous = self
            .state
            .read()
            .expect("store lock")
            .as_ref()
            .map(|l| l.xmin);
        let pool = self.pool.clone();
        let delta = db::run(&pool, move |c| read_delta(c, previous)).await?;
        let engine = self.clone();
        tokio::task::spawn_blocking(move || engine.apply(delta))
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("applying changes: {e}")))?;
        self.finished.store(number, Ordering::Release);
        Ok(())
    }

    fn apply(&self, delta: Delta) {
        match delta {
            Delta::Reload(loaded) => {
                let (rows, bytes) = loaded.store.size();
                let first = !self.ready.load(Ordering::Acquire);
                *self.state.write().expect("store lock") = Some(*loaded);
                if !first {
                    let _ = self.changes.send(ChangeBatch::everything());
                }
                if !self.ready.swap(true, Ordering::AcqRel) {
                    tracing::info!(
                        rows,
                        mib = bytes >> 20,
                        seconds = self.loading_since.elapsed().as_secs_f64(),
                        "analytic store loaded"
                    );
                }
            }
            Delta::Changes {
                xmin,
                orders,
                order_ids,
                products,
                shops,
                rates,
            } => {
                let mut guard = self.state.write().expect("store lock");
                let Some(loaded) = guard.as_mut() else { return };
                let store = &mut loaded.store;
                for shop in &shops {
                    store.set_shop(shop);
                }
                for (id, category) in &products {
                    store.set_product(*id, category);
                }
                let mut by_id: std::collections::HashMap<i64, &OrderFacts> =
                    orders.iter().map(|o| (o.id, o)).collect();
                let mut batch = ChangeBatch {
                    shops: shops.iter().map(|s| s.id).collect(),
                    ..ChangeBatch::default()
                };
                for id in &order_ids {
                    let facts = by_id.remove(id);
                    if let Some(facts) = facts {
                        batch.orders.push(ChangedOrder {
                            id: *id,
                            shop_id: facts.shop_id,
                            created: !store.has_order(*id),
                        });
                    }
                    store.apply(*id, facts);
                }
                if let Some(rates) = rates {
                    loaded.rates = rates;
                    batch.everything = true;
                }
                loaded.xmin = xmin;
                if store.tail.len() + store.dead_rows > COMPACT_AT.load(Ordering::Relaxed) {
                    store.compact();
                }
                drop(guard);
                if batch.everything || !batch.orders.is_empty() || !batch.shops.is_empty() {
                    let _ = self.changes.send(Arc::new(batch));
                }
            }
        }
    }

    /// Runs `f` over the store and rates (on a blocking thread: scans take
    /// milliseconds of CPU).
    pub async fn read<T, F>(self: &Arc<Engine>, f: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store, &Rates) -> AppResult<T> + Send + 'static,
    {
        let engine = self.clone();
        tokio::task::spawn_blocking(move || {
            let guard = engine.state.read().expect("store lock");
            match guard.as_ref() {
                Some(l) => f(&l.store, &l.rates),
                None => Err(AppError::Unavailable(
                    "analytics are loading on this node; try again shortly".into(),
                )),
            }
        })
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("analytics task: {e}")))?
    }
}

/// Reads, in one repeatable-read snapshot, either everything (no previous snapshot, or
/// the log was pruned past it, or a bulk load happened) or the changes since.
fn read_delta(conn: &mut PgConnection, previous: Option<u64>) -> AppResult<Delta> {
    conn.build_transaction()
        .repeatable_read()
        .read_only()
        .run(|c| {
            // A catch-up's reads wait only on an exclusive lock (DDL, LOCK TABLE), and
            // then not long: it fails and the next one tries again, instead of keeping
            // a backend queued behind the lock (no snapshot is taken by SET).
            if previous.is_some() {
                use diesel::connection::SimpleConnection;
                c.batch_execute("SET LOCAL lock_timeout = '50ms'")?;
            }
            let (xmin, pruned_below) = db::facts::horizon(c)?;
            let Some(previous) = previous.filter(|p| *p >= pruned_below) else {
                return load_all(c, xmin).map(|l| Delta::Reload(Box::new(l)));
            };
            let entries = db::facts::changes_since(c, previous)?;
            if entries.iter().any(|(kind, _)| *kind == 'r') {
                return load_all(c, xmin).map(|l| Delta::Reload(Box::new(l)));
            }
            let ids_of = |kind: char| -> Vec<i64> {
                entries
                    .iter()
                    .filter(|(k, _)| *k == kind)
                    .map(|(_, id)| *id)
                    .collect()
            };
            let order_ids = ids_of('o');
            let mut orders = Vec::with_capacity(order_ids.len());
            for chunk in order_ids.chunks(CATCH_UP_CHUNK) {
                orders.extend(db::facts::orders_by_ids(c, chunk)?);
            }
            // Products the changed orders name, and products changed themselves.
            let mut product_ids = ids_of('p');
            product_ids.extend(
                orders
                    .iter()
                    .flat_map(|o| o.items.iter().filter_map(|i| i.product_id)),
            );
            product_ids.sort_unstable();
            product_ids.dedup();
            let products = if product_ids.is_empty() {
                Vec::new()
            } else {
                db::facts::product_categories(c, Some(&product_ids))?
            };
            let mut shop_ids = ids_of('s');
            shop_ids.extend(orders.iter().map(|o| o.shop_id));
            shop_ids.sort_unstable();
            shop_ids.dedup();
            let shops = if shop_ids.is_empty() {
                Vec::new()
            } else {
                db::facts::shops(c, Some(&shop_ids))?
            };
            let rates = if entries.iter().any(|(k, _)| *k == 'f') {
                Some(Rates::new(db::facts::factors(c)?))
            } else {
                None
            };
            Ok(Delta::Changes {
                xmin,
                orders,
                order_ids,
                products,
                shops,
                rates,
            })
        })
}

fn load_all(c: &mut PgConnection, xmin: u64) -> AppResult<Loaded> {
    let started = Instant::now();
    let mut store = Store::new(db::facts::province_regions(c)?);
    for shop in db::facts::shops(c, None)? {
        store.set_shop(&shop);
    }
    for (id, category) in db::facts::product_categories(c, None)? {
        store.set_product(id, &category);
    }
    let rates = Rates::new(db::facts::factors(c)?);
    if let Some((min, max)) = db::facts::order_id_bounds(c)? {
        store.reserve_ids(min, max);
        let mut lo = min;
        while lo <= max {
            let hi = lo.saturating_add(LOAD_CHUNK);
            let orders = db::facts::orders_in_range(c, lo, hi)?;
            store.load(&orders);
            lo = hi;
        }
    }
    store.finish_load();
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        rows = store.size().0,
        "analytic store read from PostgreSQL"
    );
    Ok(Loaded { store, rates, xmin })
}
