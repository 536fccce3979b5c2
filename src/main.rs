//! The `orderscope` command: `serve`, `migrate`, `seed`, `invalidate-cache`,
//! `export-schema`, `healthcheck`, `token`, `import`.

use clap::{Parser, Subcommand};
use diesel::Connection;

use orderscope::settings::Settings;

#[derive(Parser)]
#[command(
    name = "orderscope",
    about = "GraphQL analytics API for marketplace sellers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API on BIND (default 127.0.0.1:8080).
    Serve,
    /// Create the database if needed and apply pending migrations.
    Migrate,
    /// Generate a deterministic dataset and load it with COPY.
    Seed(orderscope::seed::SeedArgs),
    /// Print the GraphQL schema (SDL), or write it to a file.
    ExportSchema {
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// After changing data outside the API: give every shop and account a new data
    /// version and publish them to Redis, so no cached answer from before is served.
    InvalidateCache,
    /// Exit 0 when the server on BIND answers `GET /healthz` with 200 within 3 s (the
    /// container image's HEALTHCHECK; it needs no curl).
    Healthcheck,
    /// Print a signed JWT for an account (by id, or the owner of a tenant).
    /// Import a platform's order export (CSV in UTF-8 or GBK, or .xlsx) into a shop,
    /// as its tenant's owner, through the same validation and upsert as ingestOrders.
    /// Prints one line per order (row, order number, outcome, reason) as CSV, then a
    /// summary on stderr.
    Import {
        /// DOUYIN, TAOBAO, TMALL, TIKTOK or KUAISHOU.
        #[arg(long, required_unless_present = "stock")]
        platform: Option<String>,
        /// The file sets stock levels (商品ID / Product ID and 库存 / Stock) instead.
        #[arg(long, conflicts_with = "platform")]
        stock: bool,
        /// The shop's id.
        #[arg(long)]
        shop: i64,
        file: std::path::PathBuf,
    },
    Token {
        #[arg(long, conflicts_with = "tenant")]
        account: Option<i64>,
        #[arg(long)]
        tenant: Option<i64>,
        /// Lifetime in seconds (default JWT_TTL_SECONDS).
        #[arg(long)]
        ttl: Option<i64>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Healthcheck = cli.command {
        return healthcheck();
    }
    let settings = Settings::from_env()?;
    let _telemetry = orderscope::telemetry::init(settings.is_production())?;
    match cli.command {
        Command::Serve => {
            orderscope::memory::limit_arenas();
            orderscope::memory::trim_periodically(std::time::Duration::from_secs(30));
            let runtime = actix_web::rt::System::new();
            runtime.block_on(async move {
                let app = orderscope::startup::Application::build(settings.clone())?;
                tracing::info!(bind = %settings.bind, port = app.port(), "orderscope serving");
                app.run_until_stopped().await?;
                Ok::<_, anyhow::Error>(())
            })
        }
        Command::Migrate => {
            orderscope::db::ensure_database(&settings.database_url)?;
            let mut conn = diesel::PgConnection::establish(&settings.database_url)?;
            let applied = orderscope::db::migrate(&mut conn)?;
            println!("migrations applied: {applied}");
            Ok(())
        }
        Command::Seed(args) => {
            let report = orderscope::seed::run(&settings.database_url, &args)?;
            println!("{report}");
            Ok(())
        }
        Command::InvalidateCache => {
            let runtime = actix_web::rt::System::new();
            runtime.block_on(async move {
                let cache = orderscope::cache::Cache::new(settings.cache.clone());
                let tenants =
                    orderscope::cache::invalidate_all(&settings.database_url, &cache).await?;
                println!("new data versions published for {tenants} tenants");
                Ok::<_, anyhow::Error>(())
            })
        }
        Command::ExportSchema { out } => {
            let sdl = orderscope::graphql::sdl();
            match out {
                Some(path) => std::fs::write(path, sdl)?,
                None => print!("{sdl}"),
            }
            Ok(())
        }
        Command::Healthcheck => healthcheck(),
        Command::Import {
            platform,
            stock,
            shop,
            file,
        } => import(
            &settings,
            platform.as_deref().filter(|_| !stock),
            shop,
            &file,
        ),
        Command::Token {
            account,
            tenant,
            ttl,
        } => {
            let mut conn = diesel::PgConnection::establish(&settings.database_url)?;
            let row = match (account, tenant) {
                (Some(id), _) => orderscope::db::accounts::account_by_id(&mut conn, id),
                (None, tenant) => {
                    orderscope::db::accounts::owner_of(&mut conn, tenant.unwrap_or(1))
                }
            }
            .map_err(|e| anyhow::anyhow!("no such account: {}", e.public_message()))?;
            let verifier = orderscope::auth::TokenVerifier::new(&settings.jwt)?;
            let issued = verifier
                .issue(
                    orderscope::auth::TokenSubject::account(
                        row.id,
                        row.tenant_id,
                        row.token_generation,
                    ),
                    ttl,
                )
                .map_err(|e| anyhow::anyhow!("cannot sign: {}", e.public_message()))?;
            println!("{}", issued.token);
            Ok(())
        }
    }
}

/// `GET /healthz` on the loopback side of BIND; an error unless the answer is 200.
fn healthcheck() -> anyhow::Result<()> {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
    use std::time::Duration;
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let mut addr: SocketAddr = bind
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("BIND {bind} names no address"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    if &head[9..12] != b"200" {
        anyhow::bail!("/healthz answered {}", String::from_utf8_lossy(&head));
    }
    println!("healthy");
    Ok(())
}

fn import(
    settings: &Settings,
    platform: Option<&str>,
    shop: i64,
    file: &std::path::Path,
) -> anyhow::Result<()> {
    use std::io::Write;
    let platform = platform
        .map(|p| {
            orderscope::domain::Platform::parse(&p.to_ascii_uppercase())
                .ok_or_else(|| anyhow::anyhow!("unknown platform {p:?}"))
        })
        .transpose()?;
    let mut conn = diesel::PgConnection::establish(&settings.database_url)?;
    let fail = |e: orderscope::error::AppError| anyhow::anyhow!("{}", e.public_message());
    let principal =
        orderscope::db::accounts::owner_principal_of_shop(&mut conn, shop).map_err(fail)?;
    let actor = principal.actor();
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    writeln!(out, "row,orderNo,outcome,orderId,reason")?;
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let each = |o: &orderscope::import::RowOutcome| {
        let _ = writeln!(
            out,
            "{},{},{},{},{}",
            o.row,
            quote(&o.order_no),
            o.outcome,
            o.order_id.as_deref().unwrap_or(""),
            quote(o.reason.as_deref().unwrap_or(""))
        );
    };
    let summary = match platform {
        Some(platform) => {
            orderscope::import::run(&mut conn, &principal, platform, shop, file, each)
        }
        None => orderscope::import::run_stock(&mut conn, &principal, shop, file, each),
    }
    .map_err(fail)?;
    out.flush()?;
    orderscope::db::audit::record(
        &mut conn,
        actor,
        if platform.is_some() { "importOrders" } else { "importStock" },
        &format!("shop:{shop}"),
        serde_json::json!({ "summary": summary, "filename": file.display().to_string(), "via": "cli" }),
    )
    .map_err(fail)?;
    eprintln!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
