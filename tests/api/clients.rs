//! Clients nobody here wrote, against a running server: the GraphQL-over-HTTP audit
//! (graphql-http), graphql-js's standard introspection query, GraphQL Code Generator,
//! Apollo Client with persisted queries over GET (Node, tests/clients/), and headless
//! Chromium (a dashboard page on another origin, and GraphiQL with no network beyond
//! loopback). `scripts/test` installs what they need (`npm ci`, Debian's chromium).

use std::path::PathBuf;
use std::process::Output;

use serde_json::{json, Value};

use crate::helpers::{client_scripts, TestApp};

/// Runs a Node script of tests/clients with arguments, off the async workers.
async fn node(script: &str, args: Vec<String>) -> Output {
    let dir = client_scripts();
    let script = script.to_string();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(&script)
            .args(&args)
            .current_dir(&dir)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn the_graphql_over_http_audit_passes_every_must_and_should() {
    let app = TestApp::spawn(0).await;
    let url = format!("{}/graphql", app.address);
    let out = node("audit.mjs", vec![url, app.owner()]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("0 warn, 0 error"), "{}", text(&out));
}

#[tokio::test]
async fn graphql_js_introspection_and_code_generator_load_the_schema_from_the_url() {
    let app = TestApp::spawn(0).await;
    let url = format!("{}/graphql", app.address);
    let out = node("introspect.mjs", vec![url.clone(), app.owner()]).await;
    assert!(out.status.success(), "{}", text(&out));
    let generated = std::env::temp_dir().join(format!("orderscope-{}.ts", uuid::Uuid::new_v4()));
    let out = node(
        "codegen.mjs",
        vec![url, app.owner(), generated.display().to_string()],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let ts = std::fs::read_to_string(&generated).unwrap();
    let _ = std::fs::remove_file(&generated);
    assert!(ts.contains("export type DashboardKpisQuery"), "{ts}");
}

#[tokio::test]
async fn apollo_client_uses_persisted_queries_over_get() {
    let app = TestApp::spawn(50).await;
    let url = format!("{}/graphql", app.address);
    let out = node("apollo.mjs", vec![url, app.owner()]).await;
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON from apollo.mjs");
    let wire = report["wire"].as_array().unwrap();
    // First run: the hash alone over GET (unknown), then the text with the hash (POST,
    // which registers it). Second run: the hash alone over GET, answered.
    assert_eq!(wire.len(), 3, "{report}");
    assert_eq!(
        (wire[0]["method"].as_str(), wire[0]["hashOnly"].as_bool()),
        (Some("GET"), Some(true))
    );
    assert_eq!(wire[1]["hasQueryText"], true);
    assert_eq!(
        (wire[2]["method"].as_str(), wire[2]["hashOnly"].as_bool()),
        (Some("GET"), Some(true))
    );
    // Both runs got the data a plain POST gets.
    let direct = app
        .data(
            &app.owner(),
            "query ShopsAndOrders($first: Int!) { shops { id name platform currency } orders(first: $first) { totalCount edges { node { id orderNo status } } } }",
            json!({ "first": 3 }),
        )
        .await;
    let names = |v: &Value| -> Vec<(Value, Value)> {
        v["shops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["id"].clone(), s["name"].clone()))
            .collect()
    };
    for run in report["data"].as_array().unwrap() {
        assert_eq!(names(run), names(&direct));
        assert_eq!(run["orders"]["totalCount"], direct["orders"]["totalCount"]);
        let ids = |v: &Value| -> Vec<Value> {
            v["orders"]["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["id"].clone())
                .collect()
        };
        assert_eq!(ids(run), ids(&direct));
    }
}

fn chromium() -> &'static str {
    for path in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(path).exists() {
            return path;
        }
    }
    panic!("Debian's chromium is not installed (scripts/test installs it)");
}

/// Headless Chromium that can reach loopback only: every other host fails to resolve.
async fn chromium_run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let profile =
            std::env::temp_dir().join(format!("orderscope-chromium-{}", uuid::Uuid::new_v4()));
        let out = std::process::Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--virtual-time-budget=20000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(&args)
            .output()
            .expect("chromium runs");
        let _ = std::fs::remove_dir_all(&profile);
        out
    })
    .await
    .unwrap()
}

/// Serves one HTML page on its own port: another origin than the API's.
async fn page_server(html: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let html = html.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
                    html.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    origin
}

#[tokio::test]
async fn a_dashboard_page_on_another_origin_queries_the_api_in_chromium() {
    let app = TestApp::spawn(0).await;
    let html = format!(
        r#"<!doctype html><html><body><pre id="out">pending</pre><script>
fetch({api:?} + '/graphql', {{
  method: 'POST',
  headers: {{ 'Content-Type': 'application/json', 'Authorization': 'Bearer ' + {token:?} }},
  body: JSON.stringify({{ query: '{{ shops {{ id name }} }}' }})
}}).then(r => r.json()).then(body => {{
  document.getElementById('out').textContent = 'OK ' + JSON.stringify(body.data);
}}).catch(e => {{ document.getElementById('out').textContent = 'FAILED ' + e; }});
</script></body></html>"#,
        api = app.address,
        token = app.owner(),
    );
    let origin = page_server(html).await;
    assert_ne!(origin, app.address);
    let out = chromium_run(vec!["--dump-dom".into(), format!("{origin}/")]).await;
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains(r#"OK {"shops":[{"id":"1","name":"抖音店"}"#),
        "the cross-origin call did not succeed: {dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn graphiql_loads_the_schema_with_no_network_beyond_loopback() {
    let app = TestApp::spawn(0).await;
    // `#run` runs the editor's query (viewer and shops) once GraphiQL has loaded.
    let url = format!("{}/graphql#token={}&run", app.address, app.owner());
    let out = chromium_run(vec!["--dump-dom".into(), url.clone()]).await;
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("graphiql-container"),
        "GraphiQL did not render: {dom}"
    );
    assert!(!dom.contains("token refused"), "{dom}");
    // The answer is in the result pane (the lines in view): the query ran through
    // GraphiQL's fetcher with the token.
    let result = &dom[dom.find("result-window").expect("a result pane")..];
    assert!(
        result.contains(r#""viewer""#) && result.contains(r#""T1""#),
        "no result in GraphiQL: {result}"
    );
    // A picture of it, for people (README); kept beside the test binary's output.
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("graphiql.png");
    let out = chromium_run(vec![
        "--window-size=1400,900".into(),
        format!("--screenshot={}", shot.display()),
        url,
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");
    assert!(png.len() > 20_000, "a real page, not a blank one");
}
