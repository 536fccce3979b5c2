//! Building and running the application: what `serve` runs and what tests start.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Server, Service};
use actix_web::{web, App, HttpMessage, HttpServer};
use futures_util::FutureExt;

use crate::auth::TokenVerifier;
use crate::db;
use crate::graphql::schema_builder;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::state::Services;

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and builds the server.
    pub fn build(settings: Settings) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(&settings.bind)
            .map_err(|e| anyhow::anyhow!("cannot bind {}: {e}", settings.bind))?;
        let local = listener.local_addr()?;
        let port = local.port();
        let pool = db::build_pool(
            &settings.database_url,
            settings.db_pool_size,
            settings.db_checkout_timeout,
            settings.request_timeout,
        );
        let cache = Arc::new(crate::cache::Cache::new(settings.cache.clone()));
        crate::analytics::scan::set_parallel_from(settings.analytics_parallel_from);
        crate::analytics::live::set_compact_at(settings.analytics_compact_at);
        crate::analytics::store::set_delivery_promise_hours(settings.delivery_promise_hours);
        let engine = crate::analytics::live::Engine::new(pool.clone());
        engine.start(settings.analytics_sync_interval);
        // Writes announced by other nodes: catch up at once for live subscriptions.
        let follower = engine.clone();
        cache.follow_changes(move |_tenant| follower.nudge());
        let verifier = Arc::new(TokenVerifier::new(&settings.jwt)?);
        // Scheduled reports render through this node's own API.
        let own = if local.ip().is_unspecified() {
            std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), port)
        } else {
            local
        };
        // The scheduler's own connection: its ticks never take one from requests.
        let scheduler_pool = db::build_pool(
            &settings.database_url,
            1,
            settings.db_checkout_timeout,
            settings.request_timeout,
        );
        crate::schedules::start(
            scheduler_pool,
            verifier.clone(),
            format!("http://{own}"),
            settings.scheduler_tick,
            settings.schedule_retry_base,
        );
        let metrics = Arc::new(Metrics::new());
        cache.register_metrics(metrics.registry());
        let services = Arc::new(Services {
            verifier: verifier.clone(),
            pool,
            metrics: metrics.clone(),
            cache,
            tenant_shares: db::TenantShares::new(settings.db_per_tenant),
            engine,
            provinces: Arc::new(tokio::sync::OnceCell::new()),
            settings: settings.clone(),
        });
        let schema = schema_builder(&settings.limits, settings.is_production())
            .data(services.clone())
            .finish();
        let state = web::Data::new(AppState { services, schema });
        let export_slots = web::Data::new(http::export::ExportSlots::default());
        let cors = settings.cors.clone();
        let server = HttpServer::new(move || {
            let metrics = metrics.clone();
            App::new()
                .app_data(state.clone())
                .app_data(export_slots.clone())
                .wrap_fn(move |req, srv| {
                    let started = Instant::now();
                    let route = req
                        .match_pattern()
                        .unwrap_or_else(|| "unmatched".to_string());
                    let method = req.method().to_string();
                    let request_id =
                        http::access::request_id(req.headers().get(http::access::REQUEST_ID));
                    let metrics = metrics.clone();
                    srv.call(req).map(move |res| {
                        let mut res = res?;
                        let elapsed = started.elapsed();
                        let status = res.status().as_u16();
                        metrics.observe_request(&route, status, elapsed);
                        let note = res
                            .request()
                            .extensions()
                            .get::<http::access::AccessNote>()
                            .cloned()
                            .unwrap_or_default();
                        if route == "/graphql" {
                            metrics.observe_operation(note.operation.as_deref(), elapsed);
                        }
                        tracing::info!(
                            target: "access",
                            method = %method,
                            route = %route,
                            operation = note.operation.as_deref().unwrap_or(""),
                            status,
                            duration_ms = elapsed.as_secs_f64() * 1000.0,
                            tenant = note.tenant_id,
                            request_id = %request_id,
                            "request"
                        );
                        if let Ok(value) = request_id.parse() {
                            res.headers_mut().insert(http::access::REQUEST_ID, value);
                        }
                        Ok(res)
                    })
                })
                // gzip for JSON and CSV when the client accepts it (a 19 KB answer is
                // about 2 KB compressed); the feature was compiled in but never used.
                .wrap(actix_web::middleware::Compress::default())
                .wrap(http::cors::middleware(cors.clone()))
                .wrap(tracing_actix_web::TracingLogger::default())
                .route("/graphql", web::post().to(http::graphql))
                // A WebSocket upgrade on /graphql carries subscriptions.
                .route(
                    "/graphql",
                    web::get()
                        .guard(actix_web::guard::Header("upgrade", "websocket"))
                        .to(http::ws::subscriptions),
                )
                .route("/schema.graphql", web::get().to(http::schema_sdl))
                .route("/graphiql/{file}", web::get().to(http::graphiql_asset))
                .route("/", web::get().to(http::dashboard::page))
                .route(
                    "/dashboard/{file:.*}",
                    web::get().to(http::dashboard::asset),
                )
                .route(
                    "/dev/demo-accounts",
                    web::get().to(http::dashboard::demo_accounts),
                )
                .route("/healthz", web::get().to(http::healthz))
                .route("/readyz", web::get().to(http::readyz))
                .route("/metrics", web::get().to(http::metrics))
                .route(
                    "/export/orders.csv",
                    web::get().to(http::export::orders_csv),
                )
                .route("/export/trend.csv", web::get().to(http::export::trend_csv))
                .route("/import/orders", web::post().to(http::import::orders))
                .route("/import/stock", web::post().to(http::import::stock))
                .route("/export/link/{token}", web::get().to(http::export::link))
                .route(
                    "/export/breakdown.csv",
                    web::get().to(http::export::breakdown_csv),
                )
                // GET runs queries (and shows GraphiQL to a browser outside production).
                .route("/graphql", web::get().to(http::graphql_get))
        })
        // Blocking threads run database work; more than the pool can serve at once only
        // wait, and each one that ever ran keeps its stack and allocator state.
        .worker_max_blocking_threads((settings.db_pool_size as usize * 2).max(16))
        .listen(listener)?
        .run();
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
