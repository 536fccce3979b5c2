//! Database access: the pool, the one helper every query goes through, migrations, and
//! one module per domain with its Diesel queries.

pub mod accounts;
pub mod audit;
pub mod budget;
pub mod export_links;
pub mod facts;
pub mod ingest;
pub mod inventory;
pub mod operations;
pub mod orders;
pub mod principal;
pub mod reference;
pub mod schedules;
pub mod schema;
pub mod versions;

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, ManageConnection, Pool};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use tracing::Instrument;

pub use budget::{RequestBudget, TenantShares};

use crate::error::{AppError, AppResult};

pub type PgPool = Pool<Manager>;

/// Migrations compiled into the binary, so `orderscope migrate` needs no CLI.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// A pooled connection with what the pool must know about it beyond Diesel's view.
pub struct Conn {
    inner: PgConnection,
    /// The session's `statement_timeout` now, in milliseconds.
    statement_timeout_ms: u64,
    /// The pool's default `statement_timeout`, for work outside a request's budget.
    default_timeout: Duration,
    /// Its socket died (PostgreSQL restarted, the backend was terminated): the pool
    /// discards it instead of handing it out again.
    broken: bool,
    last_used: Instant,
}

/// Diesel's r2d2 manager, plus discarding connections found broken.
pub struct Manager {
    inner: ConnectionManager<PgConnection>,
    statement_timeout: Duration,
}

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Conn, Self::Error> {
        Ok(Conn {
            inner: self.inner.connect()?,
            statement_timeout_ms: 0,
            default_timeout: self.statement_timeout,
            broken: false,
            last_used: Instant::now(),
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), Self::Error> {
        self.inner.is_valid(&mut conn.inner)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken || self.inner.has_broken(&mut conn.inner)
    }
}

/// Sets `statement_timeout` on every new connection (a Rust-side timeout alone does not
/// stop a running query) and turns off parallel query: on small machines serving many
/// short concurrent requests, starting workers costs more (about 10 ms) than it saves.
/// `work_mem` is raised to 32 MB so that grouping queries (exports, abnormal-order
/// counts) hash instead of sorting; at most one such allocation per pooled connection
/// and query node. JIT compilation is off: queries with poor row estimates crossed its
/// cost threshold and spent about 30 ms compiling to run a few milliseconds.
#[derive(Debug)]
struct SessionSettings {
    statement_timeout_ms: u64,
}

impl CustomizeConnection<Conn, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut Conn) -> Result<(), diesel::r2d2::Error> {
        conn.inner
            .batch_execute(&format!(
                "SET statement_timeout = {}; SET TIME ZONE 'UTC'; SET max_parallel_workers_per_gather = 0; \
                 SET work_mem = '32MB'; SET jit = off",
                self.statement_timeout_ms
            ))
            .map_err(diesel::r2d2::Error::QueryError)?;
        conn.statement_timeout_ms = self.statement_timeout_ms;
        Ok(())
    }
}

/// Builds the pool without connecting: the server starts even when Postgres is down
/// and reports it on `/readyz`.
pub fn build_pool(
    database_url: &str,
    size: u32,
    checkout_timeout: Duration,
    statement_timeout: Duration,
) -> PgPool {
    Pool::builder()
        .max_size(size)
        .min_idle(Some(size.min(4)))
        .connection_timeout(checkout_timeout)
        .test_on_check_out(false)
        .connection_customizer(Box::new(SessionSettings {
            statement_timeout_ms: statement_timeout.as_millis() as u64,
        }))
        .build_unchecked(Manager {
            inner: ConnectionManager::new(database_url),
            statement_timeout,
        })
}

/// A connection idle longer than this is pinged before use: after PostgreSQL restarts,
/// every idle socket is dead, and an idle node must not answer its next requests with
/// errors until each one has failed once.
const PING_AFTER_IDLE: Duration = Duration::from_secs(2);

/// A statement may run this much past its request's deadline before the session's
/// `statement_timeout` is lowered for it (saves a round trip on early statements).
const DEADLINE_SLACK: Duration = Duration::from_millis(250);

/// Runs database work on the blocking thread pool with the caller's tracing span, mapping
/// pool, join and query errors into [`AppError`]. Nothing else calls `pool.get()`.
///
/// Inside a [`RequestBudget`] it waits for the request's and its tenant's turn, starts
/// nothing after the deadline, and lowers `statement_timeout` so that PostgreSQL stops
/// the statement at the deadline. A connection whose socket turns out dead is discarded.
pub async fn run<F, T>(pool: &PgPool, work: F) -> AppResult<T>
where
    F: FnOnce(&mut PgConnection) -> AppResult<T> + Send + 'static,
    T: Send + 'static,
{
    let budget = RequestBudget::current();
    let admission = match &budget {
        Some(b) => Some(b.admit().await?),
        None => None,
    };
    let pool = pool.clone();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let _admission = admission;
        let mut conn = checkout(&pool, budget.as_deref())?;
        let wanted = match &budget {
            // A statement queued here may have waited: it gets what is left.
            Some(b) => b.remaining()?.min(conn.default_timeout),
            None => conn.default_timeout,
        };
        let wanted_ms = wanted.as_millis().max(1) as u64;
        let current = Duration::from_millis(conn.statement_timeout_ms);
        if current > wanted + DEADLINE_SLACK || current < wanted {
            if let Err(e) = conn
                .inner
                .batch_execute(&format!("SET statement_timeout = {wanted_ms}"))
            {
                conn.broken = true;
                return Err(AppError::from(e));
            }
            conn.statement_timeout_ms = wanted_ms;
        }
        let result = work(&mut conn.inner);
        conn.last_used = Instant::now();
        if let Err(e) = &result {
            if e.is_connection_lost() {
                conn.broken = true;
            }
        }
        result
    })
    .instrument(tracing::Span::current())
    .await
    .map_err(|e| AppError::internal(anyhow::anyhow!("database task failed: {e}")))?
}

/// Checks a connection out within the request's deadline, pinging one that sat idle
/// and discarding it if the ping fails.
fn checkout(
    pool: &PgPool,
    budget: Option<&RequestBudget>,
) -> AppResult<diesel::r2d2::PooledConnection<Manager>> {
    let checkout_timeout = pool.connection_timeout();
    // Every pooled connection may be dead (PostgreSQL restarted): try them all, then a new one.
    for _ in 0..=pool.max_size() {
        let wait = match budget {
            Some(b) => b.remaining()?.min(checkout_timeout),
            None => checkout_timeout,
        };
        let mut conn = match pool.get_timeout(wait) {
            Ok(conn) => conn,
            Err(e) => {
                if let Some(b) = budget {
                    b.mark_unavailable();
                }
                return Err(AppError::from(e));
            }
        };
        if conn.last_used.elapsed() < PING_AFTER_IDLE
            || conn.inner.batch_execute("SELECT 1").is_ok()
        {
            return Ok(conn);
        }
        tracing::info!("discarding a pooled connection that no longer answers");
        conn.broken = true;
    }
    Err(AppError::Unavailable(
        "the database is unavailable, try again shortly".into(),
    ))
}

/// Applies pending migrations; returns how many ran.
pub fn migrate(conn: &mut PgConnection) -> anyhow::Result<usize> {
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?
        .len();
    // The functions' current definitions, after the migrations that made what they
    // read; under a lock, as two processes migrating at once would race on them.
    diesel::Connection::transaction(conn, |c| {
        c.batch_execute("SELECT pg_advisory_xact_lock(4242001)")?;
        c.batch_execute(include_str!("functions.sql"))?;
        Ok::<_, diesel::result::Error>(())
    })
    .map_err(|e| anyhow::anyhow!("replacing the database functions failed: {e}"))?;
    Ok(applied)
}

/// Creates the database named in `database_url` when it does not exist yet.
pub fn ensure_database(database_url: &str) -> anyhow::Result<()> {
    use diesel::Connection;
    if PgConnection::establish(database_url).is_ok() {
        return Ok(());
    }
    let (server, name) = split_database_url(database_url)?;
    let mut admin = PgConnection::establish(&format!("{server}/postgres"))
        .map_err(|e| anyhow::anyhow!("cannot reach PostgreSQL at {server}: {e}"))?;
    admin.batch_execute(&format!("CREATE DATABASE \"{}\"", name.replace('"', "")))?;
    Ok(())
}

/// Splits `postgres://user@host:port/name?opts` into (`postgres://user@host:port`, `name`).
pub fn split_database_url(database_url: &str) -> anyhow::Result<(String, String)> {
    let without_query = database_url.split('?').next().unwrap_or(database_url);
    let idx = without_query
        .rfind('/')
        .filter(|i| *i > "postgres://".len())
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL has no database name"))?;
    Ok((
        without_query[..idx].to_string(),
        without_query[idx + 1..].to_string(),
    ))
}
