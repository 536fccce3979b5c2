//! Sub-accounts and permissions: presets field by field, account management,
//! revocation, audit, and tokens of an external issuer.

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::{error_code, TestApp};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

const PROBE: &str = "query($id: ID!) {
  viewer { permissions shops { id } }
  order(id: $id) { id receiverName receiverPhone commissionAmount }
}";

/// Seeded accounts of tenant 1: 1 owner, 2 仅查看, 3 处理售后, 4 发货权限 (shop 1 only),
/// 5 数据分析, 6 订单同步.
#[tokio::test]
async fn every_preset_gets_exactly_its_permissions_field_by_field() {
    let app = TestApp::spawn(600).await;
    let order = app.sql_i64("SELECT min(id) FROM orders WHERE shop_id = 1 AND creator_id IS NOT NULL AND paid_at IS NOT NULL");
    let vars = json!({"id": order.to_string()});
    let ingest = "mutation { ingestOrders(orders: []) { created } }";
    /// Account, permissions, reads orders, reads PII, reads finance, writes orders.
    type Case = (i64, &'static [&'static str], bool, bool, bool, bool);
    let cases: [Case; 6] = [
        // account, permissions, reads orders, PII, finance, writes
        (
            1,
            &[
                "ANALYTICS_READ",
                "ORDERS_READ",
                "PII_READ",
                "FINANCE_READ",
                "ORDERS_SHIP",
                "AFTER_SALES_HANDLE",
                "EXPORT",
                "ORDERS_WRITE",
                "ACCOUNTS_MANAGE",
                "CACHE_BYPASS",
                "ORDERS_ANNOTATE",
            ],
            true,
            true,
            true,
            true,
        ),
        (
            2,
            &["ANALYTICS_READ", "ORDERS_READ"],
            true,
            false,
            false,
            false,
        ),
        (
            3,
            &["ORDERS_READ", "AFTER_SALES_HANDLE", "ORDERS_ANNOTATE"],
            true,
            false,
            false,
            false,
        ),
        (
            4,
            &["ORDERS_READ", "ORDERS_SHIP", "ORDERS_ANNOTATE"],
            true,
            false,
            false,
            false,
        ),
        (
            5,
            &["ANALYTICS_READ", "FINANCE_READ", "EXPORT"],
            false,
            false,
            true,
            false,
        ),
        (6, &["ORDERS_WRITE"], false, false, false, true),
    ];
    for (account, permissions, reads, pii, finance, writes) in cases {
        let token = app.token(account, 1);
        let body = app.gql(&token, PROBE, vars.clone()).await;
        assert_eq!(
            body["data"]["viewer"]["permissions"],
            json!(permissions),
            "account {account}"
        );
        let errors: Vec<(String, Value)> = body["errors"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|e| {
                (
                    e["extensions"]["code"].as_str().unwrap().to_string(),
                    e["path"].clone(),
                )
            })
            .collect();
        if reads {
            let o = &body["data"]["order"];
            assert_eq!(o["id"], order.to_string(), "account {account}");
            assert_eq!(
                o["receiverName"].as_str().unwrap().contains('*'),
                !pii,
                "account {account}"
            );
            assert_eq!(
                o["receiverPhone"].as_str().unwrap().contains("****"),
                !pii,
                "account {account}"
            );
            assert_eq!(
                o["commissionAmount"].is_number(),
                finance,
                "account {account}"
            );
            assert_eq!(
                errors
                    .iter()
                    .any(|(c, p)| c == "FORBIDDEN" && *p == json!(["order", "commissionAmount"])),
                !finance,
                "account {account}"
            );
        } else {
            assert!(
                errors
                    .iter()
                    .any(|(c, p)| c == "FORBIDDEN" && *p == json!(["order"])),
                "account {account}: {body}"
            );
        }
        let wrote = app.gql(&token, ingest, json!({})).await;
        assert_eq!(
            wrote.get("errors").is_none(),
            writes,
            "account {account}: {wrote}"
        );
        if !writes {
            assert_eq!(error_code(&wrote), "FORBIDDEN");
        }
        let managed = app.gql(&token, "{ accounts { id } }", json!({})).await;
        assert_eq!(
            managed.get("errors").is_none(),
            account == 1,
            "account {account}"
        );
    }
    // The shipping account is narrowed to shop 1: its lists hold shop 1's orders only.
    let shipping = app
        .data(
            &app.token(4, 1),
            "{ shops { id } orders(first: 200) { totalCount edges { node { shop { id } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(shipping["shops"], json!([{"id": "1"}]));
    assert_eq!(
        shipping["orders"]["totalCount"].as_i64().unwrap(),
        app.sql_i64("SELECT count(*) FROM orders WHERE shop_id = 1")
    );
    assert!(shipping["orders"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["node"]["shop"]["id"] == "1"));
    let other_shop = app.sql_i64("SELECT min(id) FROM orders WHERE shop_id = 2");
    let hidden = app
        .data(
            &app.token(4, 1),
            "query($id: ID!) { order(id: $id) { id } }",
            json!({"id": other_shop.to_string()}),
        )
        .await;
    assert!(hidden["order"].is_null());
}

const CREATE: &str = "mutation($input: CreateSubAccountInput!) { createSubAccount(input: $input) { id permissions shopIds disabled } }";
const UPDATE: &str = "mutation($id: ID!, $input: UpdateSubAccountInput!) { updateSubAccount(id: $id, input: $input) { id permissions shopIds disabled } }";
const ISSUE: &str = "mutation($id: ID!, $ttl: Int) { issueToken(accountId: $id, ttlSeconds: $ttl) { token jti expiresAt account { id } } }";

#[tokio::test]
async fn the_owner_manages_sub_accounts_and_changes_apply_on_the_next_request() {
    let app = TestApp::spawn(600).await;
    let owner = app.owner();
    let created = app
        .data(
            &owner,
            CREATE,
            json!({"input": {"name": "客服小王", "preset": "VIEWER", "shopIds": ["2"]}}),
        )
        .await;
    let id = created["createSubAccount"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        created["createSubAccount"]["permissions"],
        json!(["ANALYTICS_READ", "ORDERS_READ"])
    );
    assert_eq!(created["createSubAccount"]["shopIds"], json!(["2"]));
    let issued = app
        .data(&owner, ISSUE, json!({"id": id, "ttl": 3600}))
        .await;
    let token = issued["issueToken"]["token"].as_str().unwrap().to_string();

    let query = "query($id: ID!) { shops { id } orders(first: 1) { totalCount } order(id: $id) { receiverName } }";
    let shop2_order =
        app.sql_i64("SELECT min(id) FROM orders WHERE shop_id = 2 AND receiver_name IS NOT NULL");
    let vars = json!({"id": shop2_order.to_string()});
    let seen = app.data(&token, query, vars.clone()).await;
    assert_eq!(seen["shops"], json!([{"id": "2"}]));
    assert_eq!(
        seen["orders"]["totalCount"].as_i64().unwrap(),
        app.sql_i64("SELECT count(*) FROM orders WHERE shop_id = 2")
    );
    assert!(seen["order"]["receiverName"]
        .as_str()
        .unwrap()
        .contains('*'));

    // Granting PII_READ applies to the very next request with the same token.
    app.data(
        &owner,
        UPDATE,
        json!({"id": id, "input": {"permissions": ["ORDERS_READ", "PII_READ"]}}),
    )
    .await;
    let seen = app.data(&token, query, vars.clone()).await;
    assert!(!seen["order"]["receiverName"]
        .as_str()
        .unwrap()
        .contains('*'));
    // Disabled: rejected; enabled again: accepted.
    app.data(
        &owner,
        UPDATE,
        json!({"id": id, "input": {"disabled": true}}),
    )
    .await;
    assert_eq!(
        app.post_raw(Some(&token), json!({"query": "{ shops { id } }"}))
            .await
            .0,
        401
    );
    app.data(
        &owner,
        UPDATE,
        json!({"id": id, "input": {"disabled": false}}),
    )
    .await;
    assert_eq!(
        app.post_raw(Some(&token), json!({"query": "{ shops { id } }"}))
            .await
            .0,
        200
    );
    // Revocation: old tokens stop working, a new one works.
    app.data(
        &owner,
        "mutation($id: ID!) { revokeTokens(accountId: $id) { id } }",
        json!({"id": id}),
    )
    .await;
    let (status, body) = app
        .post_raw(Some(&token), json!({"query": "{ shops { id } }"}))
        .await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (401, "UNAUTHENTICATED")
    );
    let fresh = app.data(&owner, ISSUE, json!({"id": id})).await["issueToken"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        app.post_raw(Some(&fresh), json!({"query": "{ shops { id } }"}))
            .await
            .0,
        200
    );

    // The audit log tells who did what to which account, and which orders' PII was read.
    let audit = app
        .data(
            &owner,
            "{ auditLog(first: 50) { edges { node { accountId action target details } } } }",
            json!({}),
        )
        .await;
    let entries: Vec<(String, String)> = audit["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"]["action"].as_str().unwrap().to_string(),
                e["node"]["target"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let target = format!("account:{id}");
    for action in [
        "createSubAccount",
        "issueToken",
        "updateSubAccount",
        "revokeTokens",
    ] {
        assert!(
            entries.contains(&(action.to_string(), target.clone())),
            "{action}: {entries:?}"
        );
    }
    let pii = audit["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["action"] == "readPii")
        .unwrap_or_else(|| panic!("a PII read was logged: {audit}"));
    assert_eq!(pii["node"]["accountId"], id);
    assert_eq!(pii["node"]["details"]["orders"][0]["orderId"], shop2_order);
    assert!(
        !audit.to_string().contains(&token),
        "tokens are never logged"
    );
    let only = app
        .data(
            &owner,
            "query($a: ID) { auditLog(first: 50, accountId: $a) { edges { node { accountId } } } }",
            json!({"a": id}),
        )
        .await;
    assert!(only["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["node"]["accountId"] == id));
    // Masked reads are not PII reads.
    let before = app.sql_i64("SELECT count(*) FROM audit_log WHERE action = 'readPii'");
    app.data(&app.token(2, 1), query, vars).await;
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM audit_log WHERE action = 'readPii'"),
        before
    );
}

#[tokio::test]
async fn a_manager_cannot_grant_more_than_it_holds_or_reach_other_tenants() {
    let app = TestApp::spawn(300).await;
    let owner = app.owner();
    let made = app.data(&owner, CREATE, json!({"input": {"name": "店长", "permissions": ["ACCOUNTS_MANAGE", "ORDERS_READ"], "shopIds": ["1"]}})).await;
    let manager_id = made["createSubAccount"]["id"].as_str().unwrap().to_string();
    let manager = app.token(manager_id.parse().unwrap(), 1);
    let cases = [
        (
            CREATE,
            json!({"input": {"name": "x", "permissions": ["PII_READ"], "shopIds": ["1"]}}),
            "FORBIDDEN",
        ),
        (
            CREATE,
            json!({"input": {"name": "x", "permissions": ["ORDERS_READ"]}}),
            "FORBIDDEN",
        ),
        (
            CREATE,
            json!({"input": {"name": "x", "permissions": ["ORDERS_READ"], "shopIds": ["2"]}}),
            "BAD_USER_INPUT",
        ),
        (
            CREATE,
            json!({"input": {"name": "", "preset": "VIEWER"}}),
            "BAD_USER_INPUT",
        ),
        (
            UPDATE,
            json!({"id": "1", "input": {"disabled": true}}),
            "FORBIDDEN",
        ),
        (ISSUE, json!({"id": "1"}), "FORBIDDEN"),
        (ISSUE, json!({"id": "7"}), "NOT_FOUND"), // tenant 2's owner
        (
            UPDATE,
            json!({"id": "8", "input": {"disabled": true}}),
            "NOT_FOUND",
        ),
        (ISSUE, json!({"id": "2", "ttl": 10}), "BAD_USER_INPUT"),
    ];
    for (query, vars, code) in cases {
        let body = app.gql(&manager, query, vars.clone()).await;
        assert_eq!(error_code(&body), code, "{vars}: {body}");
    }
    let ok = app
        .data(
            &manager,
            CREATE,
            json!({"input": {"name": "拣货", "permissions": ["ORDERS_READ"], "shopIds": ["1"]}}),
        )
        .await;
    assert_eq!(ok["createSubAccount"]["shopIds"], json!(["1"]));
    // Tenant 2's data is unaffected, and tenant 2's owner does not see tenant 1's accounts.
    let other = app
        .data(&app.token(7, 2), "{ accounts { id } }", json!({}))
        .await;
    assert!(other["accounts"].as_array().unwrap().iter().all(|a| a["id"]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .unwrap()
        >= 7));
    assert_eq!(
        error_code(
            &app.gql(
                &app.token(2, 1),
                "{ auditLog { edges { cursor } } }",
                json!({})
            )
            .await
        ),
        "FORBIDDEN"
    );
}

fn external_claims(app: &TestApp) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": "2", "tid": "1", "iss": app.settings.jwt.issuer, "aud": app.settings.jwt.audience, "exp": now + 600, "iat": now, "jti": "x"})
}

fn sign_with(alg: Algorithm, kid: Option<&str>, pem: &str, claims: &Value) -> String {
    let pem = std::fs::read(format!("{FIXTURES}/{pem}")).unwrap();
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(String::from);
    encode(&header, claims, &key).unwrap()
}

#[tokio::test]
async fn external_rs256_and_es256_tokens_verify_by_kid_and_keys_rotate() {
    let dir = std::env::temp_dir().join(format!("orderscope-jwks-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let jwks = dir.join("jwks.json");
    std::fs::copy(format!("{FIXTURES}/jwks1.json"), &jwks).unwrap();
    let jwks_for_app = jwks.clone();
    let app = TestApp::spawn_with(0, move |s| {
        s.jwt.jwks_file = Some(jwks_for_app);
        s.jwt.public_key_file = Some(format!("{FIXTURES}/rsa2.public.pem").into());
        s.jwt.public_key_kid = "pem-rsa".into();
    })
    .await;
    let claims = external_claims(&app);
    let viewer = json!({"query": "{ viewer { account { id } } }"});
    let accepted = [
        sign_with(
            Algorithm::RS256,
            Some("idp-rsa-1"),
            "rsa1.private.pem",
            &claims,
        ),
        sign_with(
            Algorithm::ES256,
            Some("idp-ec-1"),
            "ec1.private.pem",
            &claims,
        ),
        sign_with(
            Algorithm::RS256,
            Some("pem-rsa"),
            "rsa2.private.pem",
            &claims,
        ),
    ];
    for token in &accepted {
        let (status, body) = app.post_raw(Some(token), viewer.clone()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["viewer"]["account"]["id"], "2");
    }
    let public_pem = std::fs::read(format!("{FIXTURES}/rsa1.public.pem")).unwrap();
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&public_pem),
    )
    .unwrap();
    let mut expired = claims.clone();
    expired["exp"] = json!(chrono::Utc::now().timestamp() - 3600);
    let rejected = [
        (
            "unknown kid",
            sign_with(
                Algorithm::RS256,
                Some("idp-rsa-9"),
                "rsa1.private.pem",
                &claims,
            ),
        ),
        (
            "no kid",
            sign_with(Algorithm::RS256, None, "rsa1.private.pem", &claims),
        ),
        (
            "kid of another key",
            sign_with(
                Algorithm::RS256,
                Some("idp-rsa-1"),
                "rsa2.private.pem",
                &claims,
            ),
        ),
        (
            "kid of another algorithm",
            sign_with(
                Algorithm::RS256,
                Some("idp-ec-1"),
                "rsa1.private.pem",
                &claims,
            ),
        ),
        ("HS256 with the RSA public key as secret", confused),
        (
            "expired",
            sign_with(
                Algorithm::ES256,
                Some("idp-ec-1"),
                "ec1.private.pem",
                &expired,
            ),
        ),
        ("HS256 with an unknown kid", {
            let mut h = Header::new(Algorithm::HS256);
            h.kid = Some("idp-rsa-1".into());
            encode(
                &h,
                &claims,
                &EncodingKey::from_secret(app.settings.jwt.secret.as_bytes()),
            )
            .unwrap()
        }),
    ];
    for (name, token) in &rejected {
        let (status, body) = app.post_raw(Some(token), viewer.clone()).await;
        assert_eq!(
            (status, error_code(&body).as_str()),
            (401, "UNAUTHENTICATED"),
            "{name}"
        );
    }
    // Rotation: a new key published in the JWKS file is picked up without a restart.
    let rotated = sign_with(
        Algorithm::RS256,
        Some("idp-rsa-2"),
        "rsa2.private.pem",
        &claims,
    );
    std::fs::copy(format!("{FIXTURES}/jwks2.json"), &jwks).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5_200)).await;
    let (status, body) = app.post_raw(Some(&rotated), viewer).await;
    assert_eq!(status, 200, "{body}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A JWKS endpoint like an OIDC provider's: serves whatever `body` holds now and
/// counts the fetches.
async fn jwks_server(
    body: std::sync::Arc<std::sync::Mutex<String>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/realms/shop/protocol/openid-connect/certs",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let body = body.lock().unwrap().clone();
            fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    url
}

const IDP: &str = "https://login.example.test/realms/shop";

/// Claims shaped like a real provider's access token: string `sub`, array `aud`,
/// `azp`, nested roles, a tenant claim, and no `tid` or `jti` of ours.
fn oidc_claims(subject: &str, roles: &[&str], tenant: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": IDP, "sub": subject, "aud": ["account", "orderscope-dashboard"],
        "azp": "orderscope-dashboard", "exp": now + 300, "iat": now, "auth_time": now,
        "typ": "Bearer", "scope": "openid profile email", "email": "li.lei@example.test",
        "preferred_username": "lilei", "realm_access": { "roles": roles },
        "orderscope_tenant": tenant,
    })
}

#[tokio::test]
async fn oidc_provider_tokens_map_to_linked_accounts_with_rotating_jwks() {
    let body = std::sync::Arc::new(std::sync::Mutex::new(
        std::fs::read_to_string(format!("{FIXTURES}/jwks1.json")).unwrap(),
    ));
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = jwks_server(body.clone(), fetches.clone()).await;
    let config = json!([{
        "issuer": IDP,
        "audience": "orderscope-dashboard",
        "jwksUrl": url,
        "tenantClaim": "orderscope_tenant",
        "rolesClaim": "realm_access.roles",
        "rolePermissions": {
            "shop-analyst": ["ANALYTICS_READ", "ORDERS_READ"],
            "shop-finance": ["FINANCE_READ"]
        }
    }])
    .to_string();
    let app = TestApp::spawn_with(0, move |s| {
        s.jwt.oidc = orderscope::auth::OidcIssuer::from_setting(Some(&config)).unwrap();
    })
    .await;
    let subject = "f3b1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
    let viewer = "{ viewer { account { id } tenant { id } permissions } }";
    let token = sign_with(
        Algorithm::RS256,
        Some("idp-rsa-1"),
        "rsa1.private.pem",
        &oidc_claims(subject, &["shop-analyst", "offline_access"], "1"),
    );
    // Not linked yet: refused like any bad token.
    let body_of = |token: String| {
        let app = &app;
        async move { app.post_raw(Some(&token), json!({ "query": viewer })).await }
    };
    let (status, body_json) = body_of(token.clone()).await;
    assert_eq!(
        (status, error_code(&body_json).as_str()),
        (401, "UNAUTHENTICATED")
    );

    // The owner links the person to the owner account; the roles narrow it.
    let owner = app.owner();
    let link = "mutation($a: ID!, $i: String!, $s: String!) { linkExternalIdentity(accountId: $a, issuer: $i, subject: $s) }";
    let linked = app
        .data(&owner, link, json!({ "a": "1", "i": IDP, "s": subject }))
        .await;
    assert_eq!(linked["linkExternalIdentity"], true);
    let (status, answer) = body_of(token.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["viewer"]["account"]["id"], "1");
    assert_eq!(answer["data"]["viewer"]["tenant"]["id"], "1");
    assert_eq!(
        answer["data"]["viewer"]["permissions"],
        json!(["ANALYTICS_READ", "ORDERS_READ"]),
        "the provider's roles narrow the owner to what they grant"
    );
    // Narrowed for real: no FINANCE_READ, no ACCOUNTS_MANAGE.
    let (_, answer) = body_of(sign_with(
        Algorithm::RS256,
        Some("idp-rsa-1"),
        "rsa1.private.pem",
        &oidc_claims(subject, &["shop-analyst"], "1"),
    ))
    .await;
    assert!(answer["errors"].is_null(), "{answer}");
    let token_analyst = token.clone();
    let (_, answer) = app
        .post_raw(
            Some(&token_analyst),
            json!({ "query": "{ accounts { id } }" }),
        )
        .await;
    assert_eq!(error_code(&answer), "FORBIDDEN");
    // With both roles, FINANCE_READ too (the union).
    let both = sign_with(
        Algorithm::RS256,
        Some("idp-rsa-1"),
        "rsa1.private.pem",
        &oidc_claims(subject, &["shop-analyst", "shop-finance"], "1"),
    );
    let (_, answer) = body_of(both).await;
    assert_eq!(
        answer["data"]["viewer"]["permissions"],
        json!(["ANALYTICS_READ", "ORDERS_READ", "FINANCE_READ"])
    );
    // ES256 from the same JWKS.
    let es = sign_with(
        Algorithm::ES256,
        Some("idp-ec-1"),
        "ec1.private.pem",
        &oidc_claims(subject, &["shop-analyst"], "1"),
    );
    assert_eq!(body_of(es).await.0, 200);
    assert_eq!(
        fetches.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "keys are cached"
    );

    // Refused: another tenant in the tenant claim, a wrong audience, another issuer's
    // keys under the provider's iss, an expired token.
    let wrong_tenant = oidc_claims(subject, &["shop-analyst"], "2");
    let mut wrong_aud = oidc_claims(subject, &["shop-analyst"], "1");
    wrong_aud["aud"] = json!(["account"]);
    let mut expired = oidc_claims(subject, &["shop-analyst"], "1");
    expired["exp"] = json!(chrono::Utc::now().timestamp() - 3600);
    for (name, token) in [
        (
            "tenant",
            sign_with(
                Algorithm::RS256,
                Some("idp-rsa-1"),
                "rsa1.private.pem",
                &wrong_tenant,
            ),
        ),
        (
            "aud",
            sign_with(
                Algorithm::RS256,
                Some("idp-rsa-1"),
                "rsa1.private.pem",
                &wrong_aud,
            ),
        ),
        (
            "key",
            sign_with(
                Algorithm::RS256,
                Some("idp-rsa-1"),
                "rsa2.private.pem",
                &oidc_claims(subject, &[], "1"),
            ),
        ),
        (
            "expired",
            sign_with(
                Algorithm::RS256,
                Some("idp-rsa-1"),
                "rsa1.private.pem",
                &expired,
            ),
        ),
    ] {
        let (status, answer) = body_of(token).await;
        assert_eq!(
            (status, error_code(&answer).as_str()),
            (401, "UNAUTHENTICATED"),
            "{name}"
        );
    }

    // Key rotation: the provider adds a key; a token under it fetches the JWKS again.
    *body.lock().unwrap() = std::fs::read_to_string(format!("{FIXTURES}/jwks2.json")).unwrap();
    let rotated = sign_with(
        Algorithm::RS256,
        Some("idp-rsa-2"),
        "rsa2.private.pem",
        &oidc_claims(subject, &["shop-analyst"], "1"),
    );
    // The first fetch happened moments ago: an unknown kid waits out the refetch
    // interval (10 s) rather than letting anyone make the server fetch at will.
    let started = std::time::Instant::now();
    loop {
        let (status, answer) = body_of(rotated.clone()).await;
        if status == 200 {
            break;
        }
        assert_eq!(error_code(&answer), "UNAUTHENTICATED");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "rotation not picked up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(
        fetches.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one refetch for the new kid"
    );

    // Unlinking stops the identity at once; the audit log has both.
    let unlink =
        "mutation($i: String!, $s: String!) { unlinkExternalIdentity(issuer: $i, subject: $s) }";
    let removed = app
        .data(&owner, unlink, json!({ "i": IDP, "s": subject }))
        .await;
    assert_eq!(removed["unlinkExternalIdentity"], true);
    assert_eq!(body_of(rotated).await.0, 401);
    assert_eq!(
        app.sql_i64("SELECT count(*) FROM audit_log WHERE action IN ('linkExternalIdentity', 'unlinkExternalIdentity')"),
        2
    );
    // Linking needs a configured issuer, and a viewer may not link at all.
    let body = app
        .gql(
            &owner,
            link,
            json!({ "a": "2", "i": "https://elsewhere.test", "s": "x" }),
        )
        .await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    let body = app
        .gql(
            &app.token(2, 1),
            link,
            json!({ "a": "2", "i": IDP, "s": "x" }),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
}
