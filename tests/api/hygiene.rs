//! Request hygiene: limits, malformed requests, operational endpoints, production mode,
//! and the committed schema.

use serde_json::json;

use crate::helpers::{error_code, TestApp};

#[tokio::test]
async fn malformed_and_oversized_requests_are_bad_user_input() {
    let app = TestApp::spawn(0).await;
    let url = format!("{}/graphql", app.address);
    let token = app.owner();
    let post = |body: Vec<u8>| {
        app.client
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (body, status, needle) in [
        (b"{not json".to_vec(), 400, "not a GraphQL request"),
        (
            br#"[{"query":"{ shops { id } }"}]"#.to_vec(),
            400,
            "batched requests are not supported",
        ),
        (vec![b' '; 5 * 1024 * 1024], 413, "larger than"),
    ] {
        let resp = post(body).await.unwrap();
        assert_eq!(resp.status(), status);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(error_code(&body), "BAD_USER_INPUT");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{body}"
        );
    }
    // Syntax errors, unknown fields, too-deep and too-complex queries.
    // Thirteen levels of data fields (introspection is not counted).
    let deep = format!("{}{}", "{ orders ".repeat(13), "}".repeat(13));
    let fields = "id orderNo status rawStatus placedAt paidAt shippedAt deliveredAt completedAt cancelledAt paymentMethod currency \
                  goodsAmount shippingFee discountAmount paidAmount city channel contentId buyerId buyerNickname buyerNote \
                  sourceUpdatedAt updatedAt receiverName receiverPhone";
    let complex = format!("{{ orders(first: 200) {{ edges {{ node {{ {fields} }} }} }} }}");
    for (query, needle) in [
        ("{ shops { id }", "expected"),
        ("{ nope }", "Unknown field"),
        (deep.as_str(), "nested too deep"),
        (complex.as_str(), "too complex"),
    ] {
        let body = app.gql(&token, query, json!({})).await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{query}: {body}");
        let message = body["errors"][0]["message"].as_str().unwrap().to_string();
        assert!(message.contains(needle), "{query}: {message}");
    }
    // The same fields on a smaller page are fine.
    let page = format!("{{ orders(first: 50) {{ edges {{ node {{ {fields} }} }} }} }}");
    let body = app.gql(&token, &page, json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
}

#[tokio::test]
async fn errors_never_leak_sql_or_internals() {
    let app = TestApp::spawn(0).await;
    let token = app.owner();
    for query in [
        "{ order(id: \"1' OR 1=1 --\") { id } }",
        "{ orders(filter: {orderNo: \"'; DROP TABLE orders; --\"}) { totalCount } }",
    ] {
        let body = app.gql(&token, query, json!({})).await;
        let text = body.to_string().to_lowercase();
        for word in ["select ", "syntax error", "diesel", "postgres", "panicked"] {
            assert!(!text.contains(word), "{query}: {text}");
        }
    }
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM pg_tables WHERE tablename = 'orders'"),
        1
    );
}

#[tokio::test]
async fn a_request_over_its_time_limit_is_cancelled_with_timeout() {
    let app = TestApp::spawn_with(300, |s| {
        s.request_timeout = std::time::Duration::from_millis(1)
    })
    .await;
    let body = app.gql(&app.owner(), "{ orders(first: 200) { totalCount edges { node { items { sku } timeline { at } } } } }", json!({})).await;
    assert_eq!(error_code(&body), "TIMEOUT", "{body}");
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = TestApp::spawn(0).await;
    let get = |path: &str| app.client.get(format!("{}{path}", app.address)).send();
    let health = get("/healthz").await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value = get("/readyz").await.unwrap().json().await.unwrap();
    assert_eq!(ready["postgres"], "up");
    assert_eq!(ready["redis"], "up");
    app.gql(&app.owner(), "{ shops { id } }", json!({})).await;
    app.gql(&app.owner(), "query ShopList { shops { id } }", json!({}))
        .await;
    app.post_raw(None, json!({"query": "{ shops { id } }"}))
        .await;
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    // Latency per GraphQL operation name, anonymous ones together.
    for operation in ["ShopList", "anonymous"] {
        assert!(
            metrics.contains(&format!(
                "orderscope_graphql_operation_duration_seconds_count{{operation=\"{operation}\"}}"
            )),
            "{metrics}"
        );
    }
    assert!(
        metrics.contains("orderscope_cache_breaker_open 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("orderscope_http_requests_total{route=\"/graphql\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("orderscope_http_requests_total{route=\"/graphql\",status=\"401\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("orderscope_graphql_errors_total{code=\"UNAUTHENTICATED\"} 1"));
    assert!(metrics.contains(
        "orderscope_http_request_duration_seconds_bucket{route=\"/graphql\",le=\"+Inf\"}"
    ));
    let graphiql = get("/graphql").await.unwrap();
    assert_eq!(graphiql.status(), 200);
    assert!(graphiql
        .text()
        .await
        .unwrap()
        .to_lowercase()
        .contains("graphiql"));
}

#[tokio::test]
async fn readiness_fails_when_postgres_is_unreachable() {
    let app = TestApp::spawn_with(0, |s| {
        s.database_url = "postgres://postgres@127.0.0.1:1/none".into();
        s.db_checkout_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let resp = app
        .client
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let (status, body) = app
        .post_raw(Some(&app.owner()), json!({"query": "{ shops { id } }"}))
        .await;
    assert_eq!(status, 503);
    assert_eq!(error_code(&body), "UNAVAILABLE");
}

#[tokio::test]
async fn production_turns_off_graphiql_and_introspection() {
    let app = TestApp::spawn_with(0, |s| {
        s.environment = orderscope::settings::Environment::Production
    })
    .await;
    let graphiql = app
        .client
        .get(format!("{}/graphql", app.address))
        .send()
        .await
        .unwrap();
    // No GraphiQL in production: a GET without a query is a client error, not a page.
    assert_eq!(graphiql.status(), 400);
    assert!(!graphiql
        .text()
        .await
        .unwrap()
        .to_lowercase()
        .contains("graphiql"));
    let body = app
        .gql(&app.owner(), "{ __schema { types { name } } }", json!({}))
        .await;
    assert!(
        body["data"]["__schema"].is_null(),
        "introspection answers nothing: {body}"
    );
    assert!(app
        .gql(&app.owner(), "{ shops { id } }", json!({}))
        .await
        .get("errors")
        .is_none());
}

#[test]
fn committed_schema_matches_the_code() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert!(
        committed == orderscope::graphql::sdl(),
        "schema.graphql is out of date: run `cargo run -- export-schema --out schema.graphql`"
    );
}

#[tokio::test]
async fn browsers_on_allowed_origins_may_call_the_api_and_others_may_not() {
    let app = TestApp::spawn(0).await;
    let preflight = |path: &'static str, origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, format!("{}{path}", app.address))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type, x-cache-bypass",
            )
            .send()
    };
    // A dashboard in development on another loopback port.
    for path in ["/graphql", "/export/orders.csv"] {
        let resp = preflight(path, "http://localhost:5173").await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], "http://localhost:5173");
        let allowed = h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_lowercase();
        for header in ["authorization", "content-type", "x-cache-bypass"] {
            assert!(allowed.contains(header), "{allowed}");
        }
    }
    let resp = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("Origin", "http://localhost:5173")
        .bearer_auth(app.owner())
        .json(&json!({ "query": "{ shops { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    // Another site gets no CORS headers, so its page cannot read the answer.
    let resp = preflight("/graphql", "https://evil.example").await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    // Production allows only the configured origins.
    let prod = TestApp::spawn_with(0, |s| {
        s.environment = orderscope::settings::Environment::Production;
        s.cors = orderscope::http::cors::AllowedOrigins::from_setting(
            Some("https://dash.example.com"),
            true,
        );
    })
    .await;
    for (origin, allowed) in [
        ("https://dash.example.com", true),
        ("http://localhost:5173", false),
    ] {
        let resp = prod
            .client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/graphql", prod.address),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers().get("access-control-allow-origin").is_some(),
            allowed,
            "{origin}"
        );
    }
}

#[tokio::test]
async fn the_standard_introspection_query_loads_the_schema() {
    // graphql-js's getIntrospectionQuery() with every option on, as GraphiQL, GraphQL
    // Code Generator, Postman and Insomnia send it (its ofType chains nest 15 deep).
    let query = include_str!("../fixtures/introspection.graphql");
    let app = TestApp::spawn(0).await;
    let body = app.gql(&app.owner(), query, json!({})).await;
    assert!(body.get("errors").is_none(), "{body}");
    let types = body["data"]["__schema"]["types"].as_array().unwrap();
    assert!(
        types.iter().any(|t| t["name"] == "Order"),
        "the schema's types are listed"
    );
    // Production still answers it with nothing.
    let prod = TestApp::spawn_with(0, |s| {
        s.environment = orderscope::settings::Environment::Production
    })
    .await;
    let body = prod.gql(&prod.owner(), query, json!({})).await;
    assert!(body["data"]["__schema"].is_null(), "{body}");
}

#[tokio::test]
async fn queries_run_over_get_and_mutations_do_not() {
    let app = TestApp::spawn(0).await;
    let token = app.owner();
    let get = |query: &str, variables: Option<&str>| {
        let mut params = vec![("query", query.to_string())];
        if let Some(v) = variables {
            params.push(("variables", v.to_string()));
        }
        app.client
            .get(format!("{}/graphql", app.address))
            .query(&params)
            .bearer_auth(&token)
            .send()
    };
    let query = "query($first: Int!) { orders(first: $first) { totalCount } shops { id name } }";
    let resp = get(query, Some(r#"{"first": 1}"#)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let over_get: serde_json::Value = resp.json().await.unwrap();
    let over_post = app.gql(&token, query, json!({ "first": 1 })).await;
    assert!(over_get.get("errors").is_none(), "{over_get}");
    assert_eq!(over_get, over_post);
    // A mutation over GET is refused without running.
    let resp = get("mutation { revokeTokens(accountId: \"2\") { id } }", None)
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    assert_eq!(
        app.sql_i64("SELECT token_generation FROM accounts WHERE id = 2"),
        0,
        "nothing was revoked"
    );
    // Bad variables are the client's to fix.
    let resp = get(query, Some("[1, 2]")).await.unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn responses_follow_the_accept_header_and_compress_when_asked() {
    let app = TestApp::spawn(0).await;
    let post = |query: &str, accept: &str| {
        app.client
            .post(format!("{}/graphql", app.address))
            .bearer_auth(app.owner())
            .header("Accept", accept)
            .json(&json!({ "query": query }))
            .send()
    };
    let spec = "application/graphql-response+json, application/json;q=0.9";
    // A document that does not parse: 400 with the spec's media type, 200 with JSON.
    let resp = post("{ shops { id }", spec).await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/graphql-response+json"));
    let resp = post("{ shops { id }", "application/json").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    // A field error beside its data stays 200 with either type.
    let resp = post("{ shops { id } order(id: \"x\") { id } }", spec)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ok = post("{ shops { id name platform currency timezone } }", spec)
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // gzip when the client accepts it.
    let resp = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(app.owner())
        .header("Accept-Encoding", "gzip")
        .json(&json!({ "query": "{ shops { id name platform currency timezone } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "a gzip stream");
    // Brotli when the client prefers it (browsers do), on JSON and on CSV.
    for path in [
        "/graphql?query=%7Bshops%7Bid%20name%7D%7D",
        "/export/orders.csv?placedFrom=2026-11-01&placedTo=2026-11-20",
    ] {
        let resp = app
            .client
            .get(format!("{}{path}", app.address))
            .bearer_auth(app.owner())
            .header("Accept-Encoding", "br;q=1.0, gzip;q=0.5")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["content-encoding"], "br", "{path}");
    }
}

#[tokio::test]
async fn automatic_persisted_queries_register_on_retry_and_serve_every_node() {
    use sha2::{Digest, Sha256};
    let app = TestApp::spawn(0).await;
    let token = app.owner();
    let query = "query Shops { shops { id name } }";
    let hash = orderscope::cache::hex(&Sha256::digest(query.as_bytes()));
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let post = |body: serde_json::Value| {
        app.client
            .post(format!("{}/graphql", app.address))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    // Unknown hash: PERSISTED_QUERY_NOT_FOUND, as Apollo's link expects.
    let body: serde_json::Value = post(json!({ "extensions": ext }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(error_code(&body), "PERSISTED_QUERY_NOT_FOUND", "{body}");
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");
    // The retry with the text registers it and answers.
    let body: serde_json::Value = post(json!({ "query": query, "extensions": ext }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    let expected = body["data"].clone();
    // From then on the hash alone works, over POST and over GET, on another node too.
    let body: serde_json::Value = post(json!({ "extensions": ext }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"], expected, "{body}");
    let other = app.second_node();
    other.wait_until_ready().await;
    let resp = other
        .client
        .get(format!("{}/graphql", other.address))
        .query(&[
            ("operationName", "Shops".to_string()),
            ("extensions", ext.to_string()),
        ])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["data"], expected, "{body}");
    // A text whose hash differs is refused, and a wrong version too.
    let body: serde_json::Value = post(json!({ "query": "{ shops { id } }", "extensions": ext }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    let body: serde_json::Value =
        post(json!({ "extensions": { "persistedQuery": { "version": 2, "sha256Hash": hash } } }))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(error_code(&body), "BAD_USER_INPUT", "{body}");
    // A persisted mutation still needs POST.
    let mutation = "mutation { revokeTokens(accountId: \"2\") { id } }";
    let mhash = orderscope::cache::hex(&Sha256::digest(mutation.as_bytes()));
    let mext = json!({ "persistedQuery": { "version": 1, "sha256Hash": mhash } });
    let body: serde_json::Value = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(&token)
        .json(&json!({ "query": mutation, "extensions": mext }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    let resp = app
        .client
        .get(format!("{}/graphql", app.address))
        .query(&[("extensions", mext.to_string())])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}

#[test]
fn a_tls_redis_url_is_refused_at_start_up_with_a_clear_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orderscope"))
        .arg("export-schema")
        .env("REDIS_URL", "rediss://cache.example:6380")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rediss://"), "{stderr}");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::spawn(0).await;
    let resp = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(app.owner())
        .header("X-Request-Id", "dash-42.a_b")
        .json(&json!({ "query": "{ shops { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["x-request-id"],
        "dash-42.a_b",
        "a client's id is kept"
    );
    let resp = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("X-Request-Id", "not a sane id")
        .send()
        .await
        .unwrap();
    let made = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(made.len(), 32, "an unusable id is replaced: {made}");
}

#[tokio::test]
async fn the_sdl_is_served_to_authenticated_callers_in_production() {
    let app = TestApp::spawn_with(0, |s| {
        s.environment = orderscope::settings::Environment::Production
    })
    .await;
    let url = format!("{}/schema.graphql", app.address);
    let anonymous = app.client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let resp = app
        .client
        .get(&url)
        .bearer_auth(app.token(2, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert_eq!(resp.text().await.unwrap(), committed);
}

#[tokio::test]
async fn the_image_healthcheck_asks_healthz_over_http() {
    let app = TestApp::spawn(0).await;
    let port = app.address.rsplit(':').next().unwrap().to_string();
    let check = |bind: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_orderscope"))
            .arg("healthcheck")
            .env("BIND", bind)
            .output()
            .unwrap()
    };
    let out = tokio::task::spawn_blocking(move || check(format!("0.0.0.0:{port}")))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Something else listening on the port (not our server) is not healthy.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = other.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok((mut s, _)) = other.accept() {
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
        }
    });
    let out = tokio::task::spawn_blocking(move || check(format!("127.0.0.1:{port}")))
        .await
        .unwrap();
    assert!(!out.status.success());
}

/// A stand-in OpenTelemetry collector: records each OTLP/HTTP request's path,
/// content type and body.
async fn otlp_collector() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(String, String, Vec<u8>)>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 8192];
                loop {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    data.extend_from_slice(&buf[..n]);
                    let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&data[..end]).to_string();
                    let header = |name: &str| {
                        head.lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                            })
                            .unwrap_or_default()
                    };
                    let length: usize = header("content-length").parse().unwrap_or(0);
                    if data.len() < end + 4 + length {
                        continue;
                    }
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    let body = data[end + 4..end + 4 + length].to_vec();
                    let _ = tx.send((path, header("content-type"), body));
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
            });
        }
    });
    (endpoint, rx)
}

#[tokio::test]
async fn traces_are_exported_over_otlp_when_an_endpoint_is_set() {
    let (endpoint, mut received) = otlp_collector().await;
    let database = tokio::task::spawn_blocking(crate::helpers::fresh_database)
        .await
        .unwrap();
    let server = crate::helpers::ServerProcess::start(
        &database.url,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SERVICE_NAME", "orderscope-under-test"),
            ("RUST_LOG", "info"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let _ = client
        .post(format!("{}/graphql", server.address))
        .json(&json!({ "query": "{ shops { id } }" }))
        .send()
        .await
        .unwrap();
    // The batch exporter sends within its schedule (5 s by default).
    let got = tokio::time::timeout(std::time::Duration::from_secs(20), received.recv()).await;
    drop(server);
    let (path, content_type, body) = got.expect("no OTLP export within 20 s").unwrap();
    assert_eq!(path, "/v1/traces");
    assert_eq!(content_type, "application/x-protobuf");
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(b"orderscope-under-test"),
        "the service name is in the resource"
    );
    assert!(
        contains(b"/graphql") || contains(b"/healthz"),
        "request spans are exported"
    );
}

/// Every PL/pgSQL function of a migrated database has its one current definition in
/// src/db/functions.sql, and `migrate` puts that definition back over any other.
#[tokio::test]
async fn migrate_reapplies_each_functions_one_current_definition() {
    use diesel::{Connection, PgConnection, RunQueryDsl};
    #[derive(diesel::QueryableByName)]
    struct Function {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        definition: String,
    }
    let database = tokio::task::spawn_blocking(crate::helpers::fresh_database)
        .await
        .unwrap();
    let mut conn = PgConnection::establish(&database.url).unwrap();
    let functions = |conn: &mut PgConnection| -> Vec<Function> {
        diesel::sql_query(
            "SELECT p.proname::text AS name, pg_get_functiondef(p.oid) AS definition
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'public' AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql')
             ORDER BY 1",
        )
        .load(conn)
        .unwrap()
    };
    let current = include_str!("../../src/db/functions.sql");
    let before = functions(&mut conn);
    assert!(!before.is_empty());
    for f in &before {
        assert!(
            current.contains(&format!("CREATE OR REPLACE FUNCTION {}()", f.name)),
            "{} is not defined in src/db/functions.sql",
            f.name
        );
    }
    diesel::sql_query(
        "CREATE OR REPLACE FUNCTION change_log_shop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
    )
    .execute(&mut conn)
    .unwrap();
    orderscope::db::migrate(&mut conn).unwrap();
    let after = functions(&mut conn);
    let shop = after.iter().find(|f| f.name == "change_log_shop").unwrap();
    assert!(
        shop.definition
            .contains("INSERT INTO change_log (kind, id) VALUES ('s', NEW.id)"),
        "{}",
        shop.definition
    );
}
