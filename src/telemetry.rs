//! Logging, and trace export: JSON lines in production, readable lines otherwise; with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, every span (requests, GraphQL, database work) is
//! also exported over OTLP/HTTP (protobuf) to that collector.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Keeps the trace pipeline alive; dropping it flushes what is still buffered.
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("orderscope: flushing traces failed: {e}");
            }
        }
    }
}

/// The OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. `http://collector:4318`), if set.
pub fn otlp_endpoint() -> Option<String> {
    std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// Installs the global subscriber once; later calls (tests) are ignored. Must run
/// outside an async runtime (the exporter's HTTP client is a blocking one).
pub fn init(json: bool) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,actix_web=warn,r2d2=warn"));
    let fmt_layer = if json {
        fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        fmt::layer().compact().with_writer(std::io::stderr).boxed()
    };
    let mut provider = None;
    let otel_layer = match otlp_endpoint() {
        Some(endpoint) => {
            let endpoint = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(&endpoint)
                .build()
                .map_err(|e| anyhow::anyhow!("OTEL_EXPORTER_OTLP_ENDPOINT {endpoint}: {e}"))?;
            let service = std::env::var("OTEL_SERVICE_NAME")
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "orderscope".into());
            let built = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(service)
                        .build(),
                )
                .build();
            let tracer = built.tracer("orderscope");
            provider = Some(built);
            Some(tracing_opentelemetry::layer().with_tracer(tracer))
        }
        None => None,
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init();
    Ok(Telemetry { provider })
}
