//! Generated hostile requests thrown at the request path for a bounded time
//! (`FUZZ_SECONDS`, 15 by default; `FUZZ_SEED` repeats a run; `scripts/test` runs it
//! after the rest of the suite, so that its load does not slow other tests): deep nesting of every
//! bracket, huge lists and strings, odd Unicode, invalid UTF-8, broken JSON, deep JSON
//! variables, random tokens and headers, and garbled export URLs. Asserts that no
//! answer is a 500 or leaks internals, that every GraphQL error carries a known code,
//! and that the server still answers `/healthz` and a real query afterwards.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::TestApp;

/// xorshift64*: deterministic for a seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const WORDS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ":",
    ",",
    "...",
    "$v",
    "@skip(if: true)",
    "query",
    "mutation",
    "subscription",
    "fragment F on Query",
    "kpis",
    "trend",
    "breakdown",
    "orders",
    "order",
    "shops",
    "viewer",
    "__schema",
    "__type(name: \"Order\")",
    "ingestOrders",
    "dailyReport",
    "abnormalOrders",
    "range:",
    "filter:",
    "metrics:",
    "[GMV]",
    "first: 200",
    "first: -1",
    "first: 99999999999",
    "\"2026-11-01\"",
    "\"-4800-01-01\"",
    "\"9999-12-31\"",
    "id",
    "edges",
    "node",
    "values",
    "value",
    "\"\u{0}\"",
    "\"\\u0000\"",
    "\"\u{202e}\"",
    "\"🧨\"",
    "1e400",
    "-0",
    "null",
    "true",
    "\"\"\"block\"\"\"",
    "# comment\n",
    "\u{feff}",
    "\u{fffd}",
];

const ODD: &[&str] = &[
    "\u{0}", "\u{7}", "\u{202e}", "\u{fffd}", "🧨", "é", "\u{301}", "𝕏", "\\", "\"",
];

fn document(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => {
            let open = *rng.pick(&["{", "[", "(", "{a:", "[{", "(x:"]);
            let depth = 1 + rng.below(8_000);
            format!("{{ kpis(filter: {}) {{ x }} }}", open.repeat(depth))
        }
        1 => {
            let n = rng.below(400);
            (0..n)
                .map(|_| *rng.pick(WORDS))
                .collect::<Vec<_>>()
                .join(" ")
        }
        2 => {
            let len = rng.below(400_000);
            format!(
                "{{ orders(filter: {{orderNo: \"{}\"}}) {{ totalCount }} }}",
                rng.pick(ODD).repeat(len / 4 + 1)
            )
        }
        3 => {
            let items = rng.below(50_000);
            format!("{{ shops(ids: [{}]) {{ id }} }}", "1,".repeat(items))
        }
        4 => {
            let aliases = rng.below(3_000);
            (0..aliases)
                .map(|i| format!("a{i}: viewer {{ account {{ name }} }}"))
                .collect::<Vec<_>>()
                .join(" ")
        }
        _ => format!("{{ viewer {{ {} }} }}", rng.pick(WORDS)),
    }
}

fn deep_json(rng: &mut Rng) -> String {
    let depth = 1 + rng.below(5_000);
    let (open, close) = *rng.pick(&[("[", "]"), ("{\"a\":", "}")]);
    format!("{}1{}", open.repeat(depth), close.repeat(depth))
}

fn body(rng: &mut Rng) -> Vec<u8> {
    match rng.below(7) {
        0..=2 => json!({ "query": document(rng) }).to_string().into_bytes(),
        3 => format!(
            "{{\"query\":\"{{ viewer {{ account {{ name }} }} }}\",\"variables\":{}}}",
            deep_json(rng)
        )
        .into_bytes(),
        4 => {
            // Invalid UTF-8 inside an otherwise plausible body.
            let mut b = br#"{"query":"{ viewer { account { name } } }", "x":""#.to_vec();
            b.extend((0..rng.below(64)).map(|_| 0x80 | (rng.next() as u8 & 0x7f)));
            b.extend(br#""}"#);
            b
        }
        5 => (0..rng.below(4_096)).map(|_| rng.next() as u8).collect(),
        _ => {
            let doc = document(rng);
            let cut = rng.below(doc.len() + 1);
            let cut = (0..=cut)
                .rev()
                .find(|i| doc.is_char_boundary(*i))
                .unwrap_or(0);
            json!({ "query": &doc[..cut], "operationName": rng.pick(ODD) })
                .to_string()
                .into_bytes()
        }
    }
}

fn export_path(rng: &mut Rng) -> String {
    let path = *rng.pick(&[
        "/export/orders.csv",
        "/export/trend.csv",
        "/export/breakdown.csv",
    ]);
    let keys = [
        "placedFrom",
        "placedTo",
        "from",
        "to",
        "fields",
        "shopIds",
        "metrics",
        "dimension",
        "granularity",
        "timezone",
        "bom",
        "limit",
        "orderNo",
        "zzz",
    ];
    let values = [
        "2026-11-01",
        "-4800-01-01",
        "9999-12-31T00:00:00Z",
        "GMV,GMV,GMV",
        "%00",
        "%FF%FE",
        "orderNo,orderNo",
        "Asia/Nowhere",
        "DAY",
        "PROVINCE",
        "1,2,3,-1",
        "99999999999999999999",
        "%E2%80%AE",
        "true",
    ];
    let query: Vec<String> = (0..rng.below(12))
        .map(|_| {
            format!(
                "{}={}",
                rng.pick(&keys),
                rng.pick(&values).repeat(1 + rng.below(3))
            )
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

const CODES: &[&str] = &[
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "BAD_USER_INPUT",
    "TIMEOUT",
    "RATE_LIMITED",
    "UNAVAILABLE",
];

fn check(label: &str, status: u16, text: &str) {
    assert!(
        status != 500,
        "{label}: 500 {}",
        &text[..text.len().min(300)]
    );
    let lower = text.to_lowercase();
    for word in [
        "panicked",
        "diesel",
        "syntax error at",
        "stack backtrace",
        "pq:",
    ] {
        assert!(!lower.contains(word), "{label}: leaks {word:?}");
    }
    if let Ok(Value::Object(body)) = serde_json::from_str::<Value>(text) {
        if let Some(Value::Array(errors)) = body.get("errors") {
            for e in errors {
                let code = e["extensions"]["code"].as_str().unwrap_or("<none>");
                assert!(CODES.contains(&code), "{label}: code {code} in {e}");
            }
        }
    }
}

#[tokio::test]
async fn hostile_requests_never_crash_or_leak() {
    let seconds: u64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    // A fixed seed by default, so `scripts/test` throws the same sequence every run;
    // `FUZZ_SEED=$RANDOM` hunts with a fresh one.
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_130);
    eprintln!("fuzz: FUZZ_SEED={seed} FUZZ_SECONDS={seconds}");
    let app = TestApp::spawn(200).await;
    let owner = app.owner();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for worker in 0..4u64 {
        let client = app.client.clone();
        let address = app.address.clone();
        let owner = owner.clone();
        workers.push(tokio::spawn(async move {
            let mut rng =
                Rng(seed ^ worker.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let (mut sent, mut refused) = (0u64, 0u64);
            while Instant::now() < deadline {
                let auth = match rng.below(4) {
                    0 => None,
                    1 => Some(format!("Bearer {}", rng.pick(ODD).repeat(rng.below(9_000)))),
                    2 => Some("Bearer a.b.c".to_string()),
                    _ => Some(format!("Bearer {owner}")),
                };
                let mut req = if rng.below(5) == 0 {
                    client.get(format!("{address}{}", export_path(&mut rng)))
                } else {
                    let ct =
                        *rng.pick(&["application/json", "text/plain", "application/graphql", ""]);
                    client
                        .post(format!("{address}/graphql"))
                        .header("content-type", ct)
                        .body(body(&mut rng))
                };
                if let Some(auth) = auth {
                    if let Ok(value) = reqwest::header::HeaderValue::from_str(&auth) {
                        req = req.header("authorization", value);
                    }
                }
                let label = format!("worker {worker} request {sent}");
                let resp = match req.timeout(Duration::from_secs(30)).send().await {
                    Ok(resp) => resp,
                    Err(e) => {
                        // The HTTP layer may refuse a request at the connection (a header
                        // over its size limit): fine, if the server is still there.
                        let health = client.get(format!("{address}/healthz")).send().await;
                        assert!(
                            health.is_ok_and(|h| h.status() == 200),
                            "{label}: no answer ({e}) and /healthz is down"
                        );
                        refused += 1;
                        continue;
                    }
                };
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                check(&label, status, &text);
                sent += 1;
            }
            (sent, refused)
        }));
    }
    let (mut total, mut refused) = (0, 0);
    for w in workers {
        let (sent, closed) = w.await.unwrap();
        total += sent;
        refused += closed;
    }
    eprintln!("fuzz: {total} requests answered, {refused} refused at the connection");
    assert!(total > refused, "most requests reach the server");
    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let shops = app.data(&owner, "{ shops { id } }", json!({})).await;
    assert!(!shops["shops"].as_array().unwrap().is_empty());
}
