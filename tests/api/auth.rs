//! Authentication: every GraphQL request needs a valid token for an enabled account,
//! and every failure looks the same to the client.

use diesel::connection::SimpleConnection;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::helpers::{error_code, TestApp};

const VIEWER: &str = "{ viewer { account { id } tenant { id } } }";

fn sign(app: &TestApp, claims: serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(app.settings.jwt.secret.as_bytes()),
    )
    .unwrap()
}

fn claims(app: &TestApp) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": "1", "tid": "1", "iss": app.settings.jwt.issuer, "aud": app.settings.jwt.audience,
           "exp": now + 600, "iat": now, "nbf": now, "jti": "t"})
}

#[tokio::test]
async fn a_valid_token_identifies_account_and_tenant() {
    let app = TestApp::spawn(0).await;
    let data = app.data(&app.owner(), VIEWER, json!({})).await;
    assert_eq!(data["viewer"]["account"]["id"], "1");
    assert_eq!(data["viewer"]["tenant"]["id"], "1");
}

#[tokio::test]
async fn bad_credentials_are_all_unauthenticated_and_alike() {
    let app = TestApp::spawn(0).await;
    let base = claims(&app);
    let with = |key: &str, value: serde_json::Value| {
        let mut c = base.clone();
        c[key] = value;
        c
    };
    let without = |key: &str| {
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove(key);
        c
    };
    let now = chrono::Utc::now().timestamp();
    let mut tampered = sign(&app, base.clone());
    let payload = base64_url(&serde_json::to_vec(&with("sub", json!("3"))).unwrap());
    let parts: Vec<&str> = tampered.split('.').collect();
    tampered = format!("{}.{}.{}", parts[0], payload, parts[2]);
    let unsigned = format!(
        "{}.{}.",
        base64_url(br#"{"alg":"none","typ":"JWT"}"#),
        base64_url(&serde_json::to_vec(&base).unwrap())
    );
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        ("garbage", Some("not-a-jwt".into())),
        ("alg none", Some(unsigned)),
        (
            "wrong secret",
            Some(
                encode(
                    &Header::new(Algorithm::HS256),
                    &base,
                    &EncodingKey::from_secret(b"another-secret-another-secret-0000"),
                )
                .unwrap(),
            ),
        ),
        ("expired", Some(sign(&app, with("exp", json!(now - 3600))))),
        ("no exp", Some(sign(&app, without("exp")))),
        (
            "exp as string",
            Some(sign(&app, with("exp", json!((now + 600).to_string())))),
        ),
        (
            "nbf in the future",
            Some(sign(&app, with("nbf", json!(now + 3600)))),
        ),
        (
            "wrong aud",
            Some(sign(&app, with("aud", json!("someone-else")))),
        ),
        ("no aud", Some(sign(&app, without("aud")))),
        ("wrong iss", Some(sign(&app, with("iss", json!("evil"))))),
        ("no iss", Some(sign(&app, without("iss")))),
        ("tampered payload", Some(tampered)),
        (
            "unknown account",
            Some(sign(&app, with("sub", json!("999")))),
        ),
        (
            "account of another tenant",
            Some(sign(&app, with("tid", json!("2")))),
        ),
    ];
    for (name, token) in cases {
        let (status, body) = app
            .post_raw(token.as_deref(), json!({ "query": VIEWER }))
            .await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{name}: {body}");
        assert_eq!(
            body["errors"][0]["message"], "missing or invalid credentials",
            "{name}"
        );
        assert!(body["data"].is_null(), "{name}");
    }
}

#[tokio::test]
async fn disabling_an_account_takes_effect_on_its_next_request() {
    let app = TestApp::spawn(0).await;
    let token = app.token(2, 1);
    app.data(&token, VIEWER, json!({})).await;
    app.conn()
        .batch_execute("UPDATE accounts SET disabled_at = now() WHERE id = 2")
        .unwrap();
    let (status, body) = app.post_raw(Some(&token), json!({ "query": VIEWER })).await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
}

#[tokio::test]
async fn an_account_sees_only_its_tenant_and_scoped_shops() {
    let app = TestApp::spawn(0).await;
    let shops = "{ shops { id } viewer { permissions shops { id } } }";
    let owner = app.data(&app.owner(), shops, json!({})).await;
    assert_eq!(owner["shops"], json!([{"id": "1"}, {"id": "2"}]));
    assert_eq!(owner["viewer"]["permissions"].as_array().unwrap().len(), 11);
    let other = app.data(&app.token(3, 2), shops, json!({})).await;
    assert_eq!(other["shops"], json!([{"id": "3"}]));
    let scoped = app.data(&app.token(5, 1), shops, json!({})).await;
    assert_eq!(scoped["shops"], json!([{"id": "1"}]));
    assert_eq!(
        scoped["viewer"]["permissions"],
        json!(["ORDERS_READ", "ORDERS_WRITE"])
    );
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
