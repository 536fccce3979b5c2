//! Scheduled reports against a local receiver: delivered at the scheduled time with a
//! valid signature, retried after the receiver fails, once with two nodes running,
//! exports with rolling dates, and who may manage which schedules.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::TestApp;

#[derive(Clone)]
struct Received {
    at: chrono::DateTime<Utc>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP receiver on a free port answering the statuses of `script` in turn (then
/// 200), recording every request.
async fn receiver(script: Vec<u16>) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut n = 0usize;
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let (head_end, length) = loop {
                let k = socket.read(&mut chunk).await.unwrap_or(0);
                if k == 0 {
                    break (0, 0);
                }
                buf.extend_from_slice(&chunk[..k]);
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map(|v| v.trim().parse::<usize>().unwrap())
                        .unwrap_or(0);
                    break (end + 4, length);
                }
            };
            if head_end == 0 {
                continue;
            }
            while buf.len() < head_end + length {
                let k = socket.read(&mut chunk).await.unwrap_or(0);
                if k == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..k]);
            }
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let headers = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            log.lock().unwrap().push(Received {
                at: Utc::now(),
                headers,
                body: buf[head_end..].to_vec(),
            });
            let status = script.get(n).copied().unwrap_or(200);
            n += 1;
            let reply =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    (url, seen)
}

fn valid_signature(secret: &str, r: &Received) -> bool {
    let header = r.header("X-Orderscope-Signature").unwrap_or("");
    let (t, v1) = match header.split_once(",v1=") {
        Some((t, v1)) => (t.trim_start_matches("t="), v1),
        None => return false,
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(&r.body);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    want == v1
}

const CREATE: &str = "mutation($i: ReportScheduleInput!) { createReportSchedule(input: $i) { secret schedule { id nextRunAt timeOfDay } } }";

async fn wait_for(seen: &Arc<Mutex<Vec<Received>>>, n: usize, within: Duration) {
    let start = Instant::now();
    while seen.lock().unwrap().len() < n {
        assert!(
            start.elapsed() < within,
            "{} of {n} deliveries arrived",
            seen.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_daily_report_arrives_on_time_signed_retried_and_once_across_two_nodes() {
    let app = TestApp::spawn(300).await;
    let _second = app.second_node();
    let owner = app.owner();
    // The receiver fails the first attempt.
    let (url, seen) = receiver(vec![503]).await;
    let at = (Utc::now() + chrono::Duration::seconds(3))
        .with_nanosecond(0)
        .unwrap();
    let created = app
        .data(&owner, CREATE, json!({ "i": { "report": "DAILY_REPORT", "timeOfDay": at.format("%H:%M:%S").to_string(), "timezone": "UTC", "url": url } }))
        .await;
    let secret = created["createReportSchedule"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let next: chrono::DateTime<Utc> = created["createReportSchedule"]["schedule"]["nextRunAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(next, at);
    wait_for(&seen, 2, Duration::from_secs(30)).await;
    // No third request: the retry succeeded and neither node sends it again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got: Vec<Received> = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "two attempts in all");
    // On time: the first attempt within two seconds of the scheduled second.
    let late = (got[0].at - at).num_milliseconds();
    assert!(
        (0..2_000).contains(&late),
        "first attempt {late} ms after the scheduled time"
    );
    assert!(
        got[1].at > got[0].at + chrono::Duration::milliseconds(400),
        "the retry waits its backoff"
    );
    for r in got.iter() {
        assert!(valid_signature(&secret, r), "signature of {:?}", r.headers);
        assert_eq!(
            r.header("X-Orderscope-Delivery"),
            got[0].header("X-Orderscope-Delivery")
        );
        assert_eq!(r.header("Content-Type"), Some("application/json"));
    }
    assert!(!valid_signature("whsec_other", &got[1]));
    let report: Value = serde_json::from_slice(&got[1].body).unwrap();
    let yesterday = (at - chrono::Duration::days(1)).date_naive().to_string();
    assert_eq!(report["date"], yesterday.as_str(), "{report}");
    assert_eq!(report["timezone"], "UTC");
    assert!(report["metrics"].as_array().unwrap().len() >= 5);
    // The delivery log.
    let data = app
        .data(&owner, "{ reportSchedules { report deliveries { status attempts lastStatus lastError deliveredAt } } }", json!({}))
        .await;
    let d = &data["reportSchedules"][0]["deliveries"][0];
    assert_eq!(
        (
            d["status"].as_str(),
            d["attempts"].as_i64(),
            d["lastStatus"].as_i64()
        ),
        (Some("DELIVERED"), Some(2), Some(200)),
        "{data}"
    );
    assert!(d["lastError"].is_null());
    assert_eq!(app.sql_i64("SELECT count(*) FROM report_deliveries"), 1);
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM audit_log WHERE action = 'createReportSchedule'"),
        1
    );
}

#[tokio::test]
async fn exports_roll_their_dates_and_schedules_are_checked_and_scoped() {
    let app = TestApp::spawn(300).await;
    let owner = app.owner();
    let (url, seen) = receiver(vec![]).await;
    let at = (Utc::now() + chrono::Duration::seconds(2))
        .with_nanosecond(0)
        .unwrap();
    let export = "/export/breakdown.csv?from={date-7}&to={date-1}&dimension=PROVINCE&metrics=GMV,ORDERS&timezone=Asia/Shanghai";
    let created = app
        .data(&owner, CREATE, json!({ "i": { "report": export, "timeOfDay": at.with_timezone(&chrono_tz::Asia::Shanghai).format("%H:%M:%S").to_string(), "timezone": "Asia/Shanghai", "url": url } }))
        .await;
    let secret = created["createReportSchedule"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(&seen, 1, Duration::from_secs(30)).await;
    {
        let got = seen.lock().unwrap();
        assert!(valid_signature(&secret, &got[0]));
        assert_eq!(
            got[0].header("Content-Type"),
            Some("text/csv; charset=utf-8")
        );
        let csv = String::from_utf8_lossy(&got[0].body);
        assert!(csv.contains("rowType") && csv.contains("GMV_CNY"), "{csv}");
    }

    // Bad schedules are refused with the input's fault.
    for (input, says) in [
        (
            json!({ "report": "/graphql?query={}", "timeOfDay": "08:00", "url": url }),
            "report must be",
        ),
        (
            json!({ "report": "DAILY_REPORT", "timeOfDay": "25:00", "url": url }),
            "timeOfDay",
        ),
        (
            json!({ "report": "DAILY_REPORT", "timeOfDay": "08:00", "url": "ftp://x" }),
            "url must be",
        ),
        (
            json!({ "report": "DAILY_REPORT", "timeOfDay": "08:00", "timezone": "Mars/Base", "url": url }),
            "zone",
        ),
        (
            json!({ "report": "/export/trend.csv?from={date+1}", "timeOfDay": "08:00", "url": url }),
            "date",
        ),
    ] {
        let body = app.gql(&owner, CREATE, json!({ "i": input })).await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{body}"
        );
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(says),
            "{body}"
        );
    }
    // A viewer may schedule the daily report but not an export, and sees only its own.
    let viewer = app.token(2, 1);
    let body = app
        .gql(
            &viewer,
            CREATE,
            json!({ "i": { "report": export, "timeOfDay": "08:00", "url": url } }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    let mine = app
        .data(
            &viewer,
            CREATE,
            json!({ "i": { "report": "DAILY_REPORT", "timeOfDay": "08:00", "url": url } }),
        )
        .await;
    let mine_id = mine["createReportSchedule"]["schedule"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let listed = app
        .data(&viewer, "{ reportSchedules { id } }", json!({}))
        .await;
    assert_eq!(listed["reportSchedules"].as_array().unwrap().len(), 1);
    let owners_id = created["createReportSchedule"]["schedule"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let gone = app
        .data(
            &viewer,
            "mutation($id: ID!) { deleteReportSchedule(id: $id) }",
            json!({ "id": owners_id }),
        )
        .await;
    assert_eq!(
        gone["deleteReportSchedule"], false,
        "a viewer cannot delete the owner's schedule"
    );
    let all = app
        .data(&owner, "{ reportSchedules { id } }", json!({}))
        .await;
    assert_eq!(all["reportSchedules"].as_array().unwrap().len(), 2);
    let gone = app
        .data(
            &owner,
            "mutation($id: ID!) { deleteReportSchedule(id: $id) }",
            json!({ "id": mine_id }),
        )
        .await;
    assert_eq!(gone["deleteReportSchedule"], true);
}
