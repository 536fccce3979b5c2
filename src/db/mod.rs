//! Database access: the pool, the one helper every query goes through, migrations, and
//! one module per domain with its Diesel queries.

pub mod accounts;
pub mod analytics;
pub mod audit;
pub mod ingest;
pub mod operations;
pub mod orders;
pub mod reference;
pub mod rollups;
pub mod schema;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use tracing::Instrument;

use crate::error::{AppError, AppResult};

pub type PgPool = Pool<ConnectionManager<PgConnection>>;

/// Migrations compiled into the binary, so `orderscope migrate` needs no CLI.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Sets `statement_timeout` on every new connection (a Rust-side timeout alone does not
/// stop a running query) and turns off parallel query: on small machines serving many
/// short concurrent requests, starting workers costs more (about 10 ms) than it saves.
/// `work_mem` is raised to 32 MB so that rollup queries hash their groups instead of
/// sorting tens of thousands of cells by text keys (measured on dataset L: a 90-day
/// PROVINCE breakdown of 16 shops took 49 ms with the default 4 MB and 25 ms with
/// 32 MB). At most one such allocation per pooled connection and query node. JIT
/// compilation is off: rollup queries with poor row estimates crossed its cost threshold
/// and spent about 30 ms compiling to run a few milliseconds.
#[derive(Debug)]
struct SessionSettings {
    statement_timeout_ms: u64,
}

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&format!(
            "SET statement_timeout = {}; SET TIME ZONE 'UTC'; SET max_parallel_workers_per_gather = 0; \
             SET work_mem = '32MB'; SET jit = off",
            self.statement_timeout_ms
        ))
        .map_err(diesel::r2d2::Error::QueryError)
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
        .build_unchecked(ConnectionManager::new(database_url))
}

/// Runs database work on the blocking thread pool with the caller's tracing span, mapping
/// pool, join and query errors into [`AppError`]. Nothing else calls `pool.get()`.
pub async fn run<F, T>(pool: &PgPool, work: F) -> AppResult<T>
where
    F: FnOnce(&mut PgConnection) -> AppResult<T> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let mut conn = pool.get()?;
        work(&mut conn)
    })
    .instrument(tracing::Span::current())
    .await
    .map_err(|e| AppError::internal(anyhow::anyhow!("database task failed: {e}")))?
}

/// Applies pending migrations; returns how many ran.
pub fn migrate(conn: &mut PgConnection) -> anyhow::Result<usize> {
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
    Ok(applied.len())
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
