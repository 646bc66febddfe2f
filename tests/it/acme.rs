//! ACME (RFC 8555) against the running server: tokens as External Account Binding, accounts
//! as hosts, and every refusal a real client never provokes (bad nonce, wrong url, replay,
//! unknown kid, bad MAC, expired and used-up tokens, foreign names, wrong CSRs).

use crate::acme_client::{self, b64, csr_der, jwk_of, sign, Acme};
use crate::common::{self, spawn_app, TestApp};
use diesel::prelude::*;
use hostca::db::schema::{audit_events, certificates, tokens};
use serde_json::json;

async fn client(app: &TestApp) -> Acme {
    Acme::at(&app.address, app.client.clone()).await
}

/// A token (name, value) of `max_uses`, made in the console.
async fn token(app: &TestApp, name: &str, max_uses: &str) -> (String, String) {
    (name.to_string(), app.token_value(name, max_uses).await)
}

async fn admin_app() -> TestApp {
    let app = spawn_app().await;
    app.login().await;
    app
}

fn audit_has(app: &TestApp, action: &str, needle: &str) -> bool {
    let mut conn = app.conn();
    audit_events::table
        .filter(audit_events::action.eq(action))
        .select(audit_events::description)
        .load::<String>(&mut conn)
        .unwrap()
        .iter()
        .any(|d| d.contains(needle))
}

fn chain_verifies(app: &TestApp, chain: &str) -> bool {
    let dir = app.scratch();
    let ca = dir.join("ca.pem");
    let leaf = dir.join(format!("leaf-{}.pem", rand_suffix()));
    std::fs::write(&ca, app.ctx.pki.bundle_pem()).unwrap();
    std::fs::write(&leaf, chain).unwrap();
    let (ok, out) = common::openssl(&[
        "verify",
        "-CAfile",
        ca.to_str().unwrap(),
        leaf.to_str().unwrap(),
    ]);
    ok && out.contains("OK")
}

fn rand_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn cert_row(app: &TestApp, names: &str) -> hostca::models::certificate::Certificate {
    let mut conn = app.conn();
    certificates::table
        .filter(certificates::names.eq(names))
        .order(certificates::id.desc())
        .first(&mut conn)
        .unwrap()
}

#[tokio::test]
async fn directory_and_nonces() {
    let app = admin_app().await;
    let dir: serde_json::Value = app.get("/acme/directory").await.json().await.unwrap();
    for k in [
        "newNonce",
        "newAccount",
        "newOrder",
        "revokeCert",
        "keyChange",
        "renewalInfo",
    ] {
        assert!(
            dir[k]
                .as_str()
                .unwrap()
                .starts_with(&format!("{}/acme/", app.address)),
            "{k}: {dir}"
        );
    }
    assert_eq!(dir["meta"]["externalAccountRequired"], true);
    let head = app
        .client
        .head(app.url("/acme/new-nonce"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert!(head.headers().contains_key("replay-nonce"));
    assert_eq!(head.headers()["cache-control"], "no-store");
    let get = app.get("/acme/new-nonce").await;
    assert_eq!(get.status().as_u16(), 204);
    // Medium: accounts without a token (names proved by challenges).
    app.set_security_level("medium");
    let dir: serde_json::Value = app.get("/acme/directory").await.json().await.unwrap();
    assert_eq!(dir["meta"]["externalAccountRequired"], false);
    // Unknown ACME paths and methods answer problem documents.
    let r = app.get("/acme/nothing").await;
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = app.get("/acme/new-order").await;
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers()["allow"], "POST");
}

#[tokio::test]
async fn a_token_of_two_uses_binds_two_accounts_and_refuses_a_third() {
    let app = admin_app().await;
    let (name, value) = token(&app, "acme-two", "2").await;
    let mut first = client(&app).await;
    let r = first.register(Some((&name, &value))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let account_url = r.location.clone().unwrap();
    // The same key again: its account, not a second one, and no token use.
    let again = first.register(Some((&name, &value))).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.location.as_deref(), Some(account_url.as_str()));
    let chain = first
        .issue(&["web1.example.com"])
        .await
        .expect("a certificate");
    assert!(chain_verifies(&app, &chain), "openssl verifies the chain");
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2, "leaf and CA");
    let row = cert_row(&app, "web1.example.com");
    assert_eq!(row.issued_via.key(), "acme");
    assert_eq!(row.token_name.as_deref(), Some("acme-two"));

    let mut second = client(&app).await;
    assert_eq!(second.register(Some((&name, &value))).await.status, 201);
    second
        .issue(&["web2.example.com"])
        .await
        .expect("a certificate");
    let other = cert_row(&app, "web2.example.com");
    assert_ne!(other.host_id, row.host_id, "each account is its own host");

    let mut third = client(&app).await;
    let refused = third.register(Some((&name, &value))).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.problem(), "unauthorized");
    assert!(refused.detail().contains("used up"), "{}", refused.detail());
    assert!(refused.nonce.is_some(), "every answer carries a nonce");
    let ctx = app.ctx.clone();
    tokio::task::spawn_blocking(move || hostca::services::audit::flush_refusals(&ctx))
        .await
        .unwrap()
        .unwrap();
    assert!(audit_has(&app, "acme-account", "used up"));
    // onlyReturnExisting finds the first account without EAB, and no account for a new key.
    let url = first.url("newAccount");
    let header = first.header(&url, true).await;
    let jws = sign(
        &first.key,
        &header,
        Some(&json!({"onlyReturnExisting": true})),
    );
    let r = first.send_jws(&url, jws).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.location.as_deref(), Some(account_url.as_str()));
    let header = third.header(&url, true).await;
    let jws = sign(
        &third.key,
        &header,
        Some(&json!({"onlyReturnExisting": true})),
    );
    let r = third.send_jws(&url, jws).await;
    assert_eq!(r.problem(), "accountDoesNotExist", "{}", r.body);
}

#[tokio::test]
async fn refusals_real_clients_never_provoke() {
    let app = admin_app().await;
    let (name, value) = token(&app, "acme-err", "5").await;
    let mut c = client(&app).await;
    let new_account = c.url("newAccount");

    // A nonce this server never gave.
    let mut h = c.header(&new_account, true).await;
    h["nonce"] = json!("AAAAAAAAAAAAAAAAAAAAAA");
    let r = c
        .send_jws(&new_account, sign(&c.key, &h, Some(&json!({}))))
        .await;
    assert_eq!(
        (r.status, r.problem().as_str()),
        (400, "badNonce"),
        "{}",
        r.body
    );
    assert!(
        r.nonce.is_some(),
        "a bad nonce is answered with a fresh one"
    );
    // A real nonce with one character changed (its MAC no longer holds).
    let mut h = c.header(&new_account, true).await;
    let real = h["nonce"].as_str().unwrap().to_string();
    let flipped = if real.starts_with('A') { "B" } else { "A" };
    h["nonce"] = json!(format!("{flipped}{}", &real[1..]));
    let r = c
        .send_jws(&new_account, sign(&c.key, &h, Some(&json!({}))))
        .await;
    assert_eq!(r.problem(), "badNonce", "{}", r.body);

    // A nonce used twice: the replay is refused.
    let h = c.header(&new_account, true).await;
    let mac = hostca::acme::eab_mac_key(&value).unwrap();
    let payload =
        json!({"externalAccountBinding": acme_client::eab(&c.key, &name, &mac, &new_account)});
    let jws = sign(&c.key, &h, Some(&payload)).to_string().into_bytes();
    let created = c
        .send(&new_account, jws.clone(), "application/jose+json")
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    c.kid = created.location.clone();
    let replay = c.send(&new_account, jws, "application/jose+json").await;
    assert_eq!(replay.problem(), "badNonce", "{}", replay.body);

    // The url header is not where the request went.
    let mut h = c.header(&new_account, true).await;
    h["url"] = json!("https://elsewhere.example/acme/new-account");
    let r = c
        .send_jws(&new_account, sign(&c.key, &h, Some(&json!({}))))
        .await;
    assert_eq!(
        (r.status, r.problem().as_str()),
        (403, "unauthorized"),
        "{}",
        r.body
    );

    // An account URL this server never made.
    let order_url = c.url("newOrder");
    let mut h = c.header(&order_url, false).await;
    h["kid"] = json!(format!("{}/acme/account/nobody", app.address));
    let r = c
        .send_jws(
            &order_url,
            sign(&c.key, &h, Some(&json!({"identifiers": []}))),
        )
        .await;
    assert_eq!(r.problem(), "accountDoesNotExist", "{}", r.body);

    // A signature by another key than the account's.
    let (other, _) = acme_client::new_key();
    let h = c.header(&order_url, false).await;
    let r = c
        .send_jws(
            &order_url,
            sign(&other, &h, Some(&json!({"identifiers": []}))),
        )
        .await;
    assert_eq!(r.problem(), "unauthorized", "{}", r.body);

    // Wrong algorithm, bad base64url, not JSON, wrong media type, too large.
    let mut h = c.header(&order_url, false).await;
    h["alg"] = json!("HS256");
    let r = c.send_jws(&order_url, sign(&c.key, &h, None)).await;
    assert_eq!(r.problem(), "badSignatureAlgorithm", "{}", r.body);
    let r = c
        .send(
            &order_url,
            br#"{"protected":"***","payload":"","signature":""}"#.to_vec(),
            "application/jose+json",
        )
        .await;
    assert_eq!(
        (r.status, r.problem().as_str()),
        (400, "malformed"),
        "{}",
        r.body
    );
    let r = c
        .send(&order_url, b"not json".to_vec(), "application/jose+json")
        .await;
    assert_eq!(r.problem(), "malformed");
    let r = c.send(&order_url, b"{}".to_vec(), "application/json").await;
    assert_eq!(
        (r.status, r.problem().as_str()),
        (415, "malformed"),
        "{}",
        r.body
    );
    let r = c
        .send(&order_url, vec![b' '; 70 * 1024], "application/jose+json")
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.content_type, "application/problem+json");

    // EAB: a MAC made with another key; a token that does not exist.
    let mut d = client(&app).await;
    let h = d.header(&new_account, true).await;
    let payload = json!({"externalAccountBinding": acme_client::eab(&d.key, &name, b"not-the-token-key", &new_account)});
    let r = d
        .send_jws(&new_account, sign(&d.key, &h, Some(&payload)))
        .await;
    assert_eq!(r.problem(), "unauthorized", "{}", r.body);
    assert!(r.detail().contains("HMAC"), "{}", r.detail());
    let h = d.header(&new_account, true).await;
    let payload = json!({"externalAccountBinding": acme_client::eab(&d.key, "no-such-token", &mac, &new_account)});
    let r = d
        .send_jws(&new_account, sign(&d.key, &h, Some(&payload)))
        .await;
    assert_eq!(r.problem(), "unauthorized", "{}", r.body);
    // No EAB at security level high.
    let r = d.register(None).await;
    assert_eq!(
        (r.status, r.problem().as_str()),
        (403, "externalAccountRequired"),
        "{}",
        r.body
    );

    // An expired token binds nothing.
    {
        let mut conn = app.conn();
        diesel::update(tokens::table.filter(tokens::name.eq(&name)))
            .set(tokens::valid_until.eq(hostca::db::now() - chrono::Duration::minutes(1)))
            .execute(&mut conn)
            .unwrap();
    }
    let r = d.register(Some((&name, &value))).await;
    assert_eq!(r.problem(), "unauthorized", "{}", r.body);
    assert!(r.detail().contains("expired"), "{}", r.detail());
    // None of these was a 500.
}

#[tokio::test]
async fn names_follow_the_hosts_rules() {
    let app = admin_app().await;
    let (a_name, a_value) = token(&app, "acme-a", "1").await;
    let (b_name, b_value) = token(&app, "acme-b", "1").await;
    let mut a = client(&app).await;
    a.register(Some((&a_name, &a_value))).await;
    a.issue(&["alpha.example.com"])
        .await
        .expect("alpha's certificate");
    let mut b = client(&app).await;
    b.register(Some((&b_name, &b_value))).await;
    b.issue(&["beta.example.com"])
        .await
        .expect("beta's certificate");

    // B asks for A's name: rejected, nothing issued.
    let r = b.new_order(&["alpha.example.com"]).await;
    assert_eq!(r.problem(), "rejectedIdentifier", "{}", r.body);
    assert!(r.detail().contains("another host"), "{}", r.detail());
    // A new name outside the allowed domains waits for an administrator.
    let r = a
        .new_order(&["alpha.example.com", "alias.elsewhere.org"])
        .await;
    assert_eq!(r.problem(), "rejectedIdentifier", "{}", r.body);
    assert!(
        r.detail().contains("waiting for approval"),
        "{}",
        r.detail()
    );
    assert_eq!(
        r.json()["subproblems"][0]["identifier"]["value"],
        "alias.elsewhere.org"
    );
    // Reserved and malformed names, IP addresses and wildcards.
    for bad in ["localhost", "*.example.com", "10.0.0.1", "bad_name!"] {
        let r = a.new_order(&[bad]).await;
        assert!(
            ["rejectedIdentifier", "unsupportedIdentifier"].contains(&r.problem().as_str()),
            "{bad}: {}",
            r.body
        );
    }
    // A CSR for other names than the order's.
    let order = a.new_order(&["alpha.example.com"]).await;
    assert_eq!(
        order.json()["status"],
        "ready",
        "token-bound names need no challenge"
    );
    let authz_url = order.json()["authorizations"][0]
        .as_str()
        .unwrap()
        .to_string();
    let authz = a.post(&authz_url, None).await;
    assert_eq!(authz.json()["status"], "valid");
    let (csr, _) = csr_der(&["beta.example.com"]);
    let r = a.finalize(&order.json(), &csr).await.unwrap_err();
    assert_eq!(r.problem(), "badCSR", "{}", r.body);
    // Another account cannot read A's order.
    let order_url = order.location.clone().unwrap();
    let r = b.post(&order_url, None).await;
    assert_eq!(r.status, 404, "{}", r.body);
}

#[tokio::test]
async fn renewal_supersedes_and_a_reissue_token_keeps_the_host_id() {
    let app = admin_app().await;
    let (name, value) = token(&app, "acme-r", "1").await;
    let mut a = client(&app).await;
    a.register(Some((&name, &value))).await;
    a.issue(&["renew.example.com"]).await.unwrap();
    let first = cert_row(&app, "renew.example.com");
    // Renewal information: the last third of the lifetime.
    let aki = app.ctx.pki.signing().key_id.clone().unwrap();
    let cert_id = format!(
        "{}.{}",
        b64(&aki),
        b64(&hex::decode(&first.serial).unwrap())
    );
    let info = app.get(&format!("/acme/renewal-info/{cert_id}")).await;
    assert_eq!(info.status().as_u16(), 200);
    assert!(info.headers().contains_key("retry-after"));
    let info: serde_json::Value = info.json().await.unwrap();
    let start =
        chrono::DateTime::parse_from_rfc3339(info["suggestedWindow"]["start"].as_str().unwrap())
            .unwrap();
    let life = first.not_after - first.not_before;
    let expect = first.not_before + life * 2 / 3;
    assert!(
        (start.naive_utc() - expect).num_seconds().abs() < 2,
        "{info}"
    );

    // A renewal by the same account, naming the certificate it replaces.
    let url = a.url("newOrder");
    let order = a
        .post(&url, Some(json!({"identifiers": [{"type": "dns", "value": "renew.example.com"}], "replaces": cert_id})))
        .await;
    assert_eq!(order.status, 201, "{}", order.body);
    let (csr, _) = csr_der(&["renew.example.com"]);
    a.finalize(&order.json(), &csr).await.unwrap();
    let second = cert_row(&app, "renew.example.com");
    assert_ne!(second.serial, first.serial);
    assert_eq!(second.host_id, first.host_id);
    assert_eq!(second.replaces.as_deref(), Some(first.serial.as_str()));
    let mut conn = app.conn();
    let old = hostca::models::certificate::Certificate::find_by_serial(&mut conn, &first.serial)
        .unwrap()
        .unwrap();
    assert_eq!(old.revocation_reason.map(|r| r.key()), Some("superseded"));
    // The revoked certificate's window is now.
    let info: serde_json::Value = app
        .get(&format!("/acme/renewal-info/{cert_id}"))
        .await
        .json()
        .await
        .unwrap();
    let start =
        chrono::DateTime::parse_from_rfc3339(info["suggestedWindow"]["start"].as_str().unwrap())
            .unwrap();
    assert!(start.naive_utc() <= hostca::db::now());

    // The host's certificate is revoked; a reissue token bound as EAB gets the same host ID.
    let r = app
        .post(
            &format!("/security/certificates/{}/revoke", second.serial),
            &[("reason", "key_compromise")],
        )
        .await;
    assert!(r.status().is_redirection() || r.status().is_success());
    let r = app
        .post(
            &format!("/security/hosts/{}/reissue-token", first.host_id),
            &[
                ("name", "acme-reissue"),
                ("valid_for", "1d"),
                ("reason", "lost key"),
            ],
        )
        .await;
    assert!(r.status().is_redirection(), "{}", r.status());
    let html = app
        .post("/security/tokens/acme-reissue/show", &[])
        .await
        .text()
        .await
        .unwrap();
    let reissue = common::element_text(&html, "token-value").unwrap();
    let mut fresh = client(&app).await;
    assert_eq!(
        fresh
            .register(Some(("acme-reissue", &reissue)))
            .await
            .status,
        201
    );
    fresh
        .issue(&["renew.example.com"])
        .await
        .expect("a reissued certificate");
    let third = cert_row(&app, "renew.example.com");
    assert_eq!(third.host_id, first.host_id, "the same host ID");
    drop(conn);
}

/// One account (one host) may hold certificates for different names side by side: only a
/// certificate for the same names renews (supersedes) an earlier one.
#[tokio::test]
async fn certificates_for_other_names_of_the_host_stand_side_by_side() {
    let app = admin_app().await;
    app.set_allowed_domains("example.com");
    app.set_auto_map(true);
    let (name, value) = token(&app, "acme-two-names", "1").await;
    let mut a = client(&app).await;
    a.register(Some((&name, &value))).await;
    a.issue(&["main.example.com"]).await.unwrap();
    a.issue(&["mail.example.com", "main.example.com"])
        .await
        .unwrap();
    a.issue(&["main.example.com"]).await.unwrap();
    let mut conn = app.conn();
    let rows: Vec<(String, Option<String>)> = certificates::table
        .filter(certificates::acme_account_id.is_not_null())
        .order(certificates::id.asc())
        .select((
            certificates::names,
            certificates::revocation_reason.nullable(),
        ))
        .load::<(
            String,
            Option<hostca::models::certificate::RevocationReason>,
        )>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|(n, r)| (n, r.map(|r| r.key().to_string())))
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                "main.example.com".to_string(),
                Some("superseded".to_string())
            ),
            ("mail.example.com,main.example.com".to_string(), None),
            ("main.example.com".to_string(), None),
        ]
    );
}

#[tokio::test]
async fn revocation_key_change_and_deactivation() {
    let app = admin_app().await;
    let (name, value) = token(&app, "acme-rev", "1").await;
    let mut a = client(&app).await;
    a.register(Some((&name, &value))).await;
    let chain = a.issue(&["rev.example.com"]).await.unwrap();
    let der = pem_der(&chain);
    let revoke = a.url("revokeCert");
    // A reason the console does not offer.
    let r = a
        .post(
            &revoke,
            Some(json!({"certificate": b64(&der), "reason": 7})),
        )
        .await;
    assert_eq!(r.problem(), "badRevocationReason", "{}", r.body);
    let r = a
        .post(
            &revoke,
            Some(json!({"certificate": b64(&der), "reason": 1})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let row = cert_row(&app, "rev.example.com");
    assert_eq!(
        row.revocation_reason.map(|r| r.key()),
        Some("key_compromise")
    );
    let r = a
        .post(
            &revoke,
            Some(json!({"certificate": b64(&der), "reason": 1})),
        )
        .await;
    assert_eq!(r.problem(), "alreadyRevoked", "{}", r.body);
    // The CRL lists it with the reason.
    let crl = app.get("/crl.pem").await.text().await.unwrap();
    let path = app.scratch().join("acme-crl.pem");
    std::fs::write(&path, crl).unwrap();
    let (_, text) = common::openssl(&["crl", "-in", path.to_str().unwrap(), "-noout", "-text"]);
    assert!(text.contains(&row.serial), "{text}");
    assert!(text.contains("Key Compromise"), "{text}");

    // Revocation signed by the certificate's own key (jwk), by someone with no account.
    let (csr_key, key_pem) = {
        let key = rcgen::KeyPair::generate().unwrap();
        (key.serialize_der(), key.serialize_pem())
    };
    let _ = key_pem;
    let rng = ring::rand::SystemRandom::new();
    let cert_key = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &csr_key,
        &rng,
    )
    .unwrap();
    let rc_key = rcgen::KeyPair::try_from(csr_key.as_slice()).unwrap();
    let csr = rcgen::CertificateParams::new(vec!["rev.example.com".to_string()])
        .unwrap()
        .serialize_request(&rc_key)
        .unwrap();
    let order = a.new_order(&["rev.example.com"]).await;
    let chain = a.finalize(&order.json(), csr.der()).await.unwrap();
    let der = pem_der(&chain);
    let mut stranger = client(&app).await;
    let h = json!({"alg": "ES256", "nonce": stranger.fresh_nonce().await, "url": revoke, "jwk": jwk_of(&cert_key)});
    let jws = sign(
        &cert_key,
        &h,
        Some(&json!({"certificate": b64(&der), "reason": 5})),
    );
    let r = stranger.send_jws(&revoke, jws).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A stranger's own key cannot revoke it.
    let chain = a.issue(&["rev.example.com"]).await.unwrap();
    let der = pem_der(&chain);
    let h = stranger.header(&revoke, true).await;
    let jws = sign(&stranger.key, &h, Some(&json!({"certificate": b64(&der)})));
    let r = stranger.send_jws(&revoke, jws).await;
    assert_eq!(r.problem(), "unauthorized", "{}", r.body);

    // Key rollover: the new key signs from now on; the old one is refused.
    let key_change = a.url("keyChange");
    let (new_key, _) = acme_client::new_key();
    let inner = sign(
        &new_key,
        &json!({"alg": "ES256", "jwk": jwk_of(&new_key), "url": key_change}),
        Some(&json!({"account": a.kid.clone().unwrap(), "oldKey": jwk_of(&a.key)})),
    );
    let r = a.post(&key_change, Some(inner)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let order = a.new_order(&["rev.example.com"]).await;
    assert_eq!(
        order.problem(),
        "unauthorized",
        "the old key no longer signs: {}",
        order.body
    );
    a.key = new_key;
    let order = a.new_order(&["rev.example.com"]).await;
    assert_eq!(order.status, 201, "{}", order.body);
    assert!(audit_has(&app, "acme-key-change", "changed its key"));

    // Deactivation ends the account.
    let account = a.kid.clone().unwrap();
    let r = a
        .post(&account, Some(json!({"status": "deactivated"})))
        .await;
    assert_eq!(r.json()["status"], "deactivated", "{}", r.body);
    let r = a.new_order(&["rev.example.com"]).await;
    assert_eq!(r.problem(), "unauthorized", "{}", r.body);
}

/// At security level medium an account needs no token; its names are proved by http-01,
/// which the server checks by fetching the key authorization from the name's port 80
/// (here: a port of this test, through the test-only address override).
#[tokio::test]
async fn http01_proves_names_at_security_level_medium() {
    let app = admin_app().await;
    app.set_security_level("medium");
    let mut c = client(&app).await;
    let r = c.register(None).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let order = c.new_order(&["h01.example.com"]).await;
    assert_eq!(order.status, 201, "{}", order.body);
    assert_eq!(order.json()["status"], "pending");
    let authz_url = order.json()["authorizations"][0]
        .as_str()
        .unwrap()
        .to_string();
    let authz = c.post(&authz_url, None).await.json();
    let challenge = authz["challenges"][0].clone();
    assert_eq!(challenge["type"], "http-01");
    let token = challenge["token"].as_str().unwrap().to_string();
    let key_auth = format!("{token}.{}", acme_client::thumbprint_of(&c.key));

    // Finalizing before the challenge is refused.
    let (csr, _) = csr_der(&["h01.example.com"]);
    let r = c.finalize(&order.json(), &csr).await.unwrap_err();
    assert_eq!(r.problem(), "orderNotReady", "{}", r.body);

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::env::set_var("HOSTCA_ACME_HTTP_PORT", port.to_string());
    std::env::set_var("HOSTCA_ACME_CHALLENGE_ADDRESS", "127.0.0.1");
    let served = key_auth.clone();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 2048];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let body = if req.contains(&format!("/.well-known/acme-challenge/{token}")) {
                served
            } else {
                "wrong".into()
            };
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let ch_url = challenge["url"].as_str().unwrap().to_string();
    let r = c.post(&ch_url, Some(json!({}))).await;
    assert_eq!(r.json()["status"], "valid", "{}", r.body);
    let order = c.post(order.location.as_deref().unwrap(), None).await;
    assert_eq!(order.json()["status"], "ready", "{}", order.body);
    let chain = c
        .finalize(&order.json(), &csr)
        .await
        .expect("a certificate");
    assert!(chain_verifies(&app, &chain));
    assert!(audit_has(&app, "acme-challenge", "passed"));
}

fn pem_der(chain: &str) -> Vec<u8> {
    let first = chain.split("-----END CERTIFICATE-----").next().unwrap();
    let b64: String = first.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap()
}

/// Serves one TLS-ALPN-01 handshake on a fresh port (returned) with a self-signed
/// certificate for `name` whose acmeIdentifier holds SHA-256 of `key_authorization`.
fn tls_alpn_responder(name: &str, key_authorization: &str) -> u16 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key_authorization.as_bytes());
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(&digest)];
    let cert = params.self_signed(&key).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    // with_single_cert would refuse the critical acmeIdentifier; a resolver takes it as is.
    let signing = provider
        .key_provider
        .load_private_key(rustls::pki_types::PrivateKeyDer::Pkcs8(
            key.serialize_der().into(),
        ))
        .unwrap();
    let certified = std::sync::Arc::new(rustls::sign::CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    ));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(std::sync::Arc::new(OneCertificate(certified)));
    config.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    let config = std::sync::Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut sock, _)) = listener.accept() {
            let mut conn = rustls::ServerConnection::new(config).unwrap();
            while conn.is_handshaking() {
                if conn.complete_io(&mut sock).is_err() {
                    return;
                }
            }
            let _ = conn.complete_io(&mut sock);
        }
    });
    port
}

/// tls-alpn-01 (RFC 8737): the server connects with ALPN acme-tls/1 and checks the
/// certificate's one name and acmeIdentifier; a wrong digest fails the authorization and
/// the order, the right one lets it finalize.
#[tokio::test]
async fn tls_alpn01_proves_names_at_security_level_medium() {
    let app = admin_app().await;
    app.set_security_level("medium");
    let mut c = client(&app).await;
    assert_eq!(c.register(None).await.status, 201);
    std::env::set_var("HOSTCA_ACME_CHALLENGE_ADDRESS", "127.0.0.1");
    let thumbprint = acme_client::thumbprint_of(&c.key);
    for (name, right) in [("alpn-bad.example.com", false), ("alpn.example.com", true)] {
        let order = c.new_order(&[name]).await;
        assert_eq!(order.status, 201, "{}", order.body);
        let authz_url = order.json()["authorizations"][0]
            .as_str()
            .unwrap()
            .to_string();
        let authz = c.post(&authz_url, None).await.json();
        let challenge = authz["challenges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|ch| ch["type"] == "tls-alpn-01")
            .expect("tls-alpn-01 is offered")
            .clone();
        let token = challenge["token"].as_str().unwrap();
        let key_auth = if right {
            format!("{token}.{thumbprint}")
        } else {
            format!("{token}.someone-else")
        };
        let port = tls_alpn_responder(name, &key_auth);
        std::env::set_var("HOSTCA_ACME_TLS_PORT", port.to_string());
        let r = c
            .post(challenge["url"].as_str().unwrap(), Some(json!({})))
            .await;
        let order_now = c
            .post(order.location.as_deref().unwrap(), None)
            .await
            .json();
        let (csr, _) = csr_der(&[name]);
        if right {
            assert_eq!(r.json()["status"], "valid", "{}", r.body);
            assert_eq!(order_now["status"], "ready");
            let chain = c
                .finalize(&order.json(), &csr)
                .await
                .expect("a certificate");
            assert!(chain_verifies(&app, &chain));
        } else {
            assert_eq!(r.json()["status"], "invalid", "{}", r.body);
            assert!(
                r.json()["error"]["detail"]
                    .as_str()
                    .unwrap()
                    .contains("acmeIdentifier"),
                "{}",
                r.body
            );
            assert_eq!(order_now["status"], "invalid");
            let r = c.finalize(&order.json(), &csr).await.unwrap_err();
            assert_eq!(r.problem(), "orderNotReady", "{}", r.body);
        }
    }
    assert!(audit_has(
        &app,
        "acme-challenge",
        "tls-alpn-01 challenge for alpn.example.com passed"
    ));
}

#[derive(Debug)]
struct OneCertificate(std::sync::Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for OneCertificate {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<std::sync::Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The token page shows the token as an External Account Binding after Show, and only then;
/// the HMAC key it shows is the one the server checks (a registration with it succeeds).
#[tokio::test]
async fn the_token_page_shows_the_eab_after_show() {
    let app = admin_app().await;
    let (name, value) = token(&app, "page-eab", "1").await;
    let before = app.get_html(&format!("/security/tokens/{name}")).await;
    assert!(!before.contains("eab-hmac-key"), "not before Show");
    let html = app
        .post(&format!("/security/tokens/{name}/show"), &[])
        .await
        .text()
        .await
        .unwrap();
    let kid = common::element_text(&html, "eab-kid").unwrap();
    let key = common::element_text(&html, "eab-hmac-key").unwrap();
    let directory = common::element_text(&html, "eab-directory").unwrap();
    assert_eq!(kid, name);
    assert_eq!(Some(key.clone()), hostca::acme::eab_mac_key_text(&value));
    assert_eq!(directory, format!("{}/acme/directory", app.address));
    let certbot = common::element_text(&html, "eab-certbot").unwrap();
    assert!(
        certbot.contains(&format!("--eab-hmac-key {key}")),
        "{certbot}"
    );
    assert!(common::element_text(&html, "eab-lego")
        .unwrap()
        .contains(&format!("--hmac {key}")));
    let mut c = client(&app).await;
    assert_eq!(c.register(Some((&kid, &value))).await.status, 201);
}

/// What administrators see of ACME: the CA page's directory, the host's accounts with
/// Deactivate (a viewer's forged form refused and audited), how each certificate was issued.
#[tokio::test]
async fn the_console_shows_and_ends_acme_accounts() {
    let app = admin_app().await;
    let ca = app.get_html("/security/ca").await;
    assert_eq!(
        common::element_text(&ca, "acme-directory").unwrap(),
        format!("{}/acme/directory", app.address)
    );
    let (name, value) = token(&app, "console-acme", "1").await;
    let mut a = client(&app).await;
    a.register(Some((&name, &value))).await;
    a.issue(&["console.example.com"]).await.unwrap();
    let row = cert_row(&app, "console.example.com");
    let account_id = a
        .kid
        .clone()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();

    let host = app
        .get_html(&format!("/security/hosts/{}", row.host_id))
        .await;
    assert!(
        host.contains(&account_id),
        "the host page lists the account"
    );
    assert!(host.contains(&acme_client::thumbprint_of(&a.key)));
    assert!(host.contains("Authorization token console-acme"));
    let list = app.get_html("/security/certificates").await;
    assert!(list.contains("via ACME"), "the certificates list says how");
    let details = app
        .get_html(&format!("/security/certificates/{}", row.serial))
        .await;
    assert!(details.contains(&account_id));

    let action = format!(
        "/security/hosts/{}/acme-accounts/{account_id}/deactivate",
        row.host_id
    );
    let viewer = app
        .user(hostca::models::user::Role::Viewer, "acme-viewer")
        .await;
    let r = viewer.post(&action, &[]).await;
    assert_eq!(r.status().as_u16(), 403);
    assert!(audit_has(&app, "acme-deactivate", "permission denied"));
    let r = app.post(&action, &[]).await;
    assert!(r.status().is_redirection(), "{}", r.status());
    assert!(audit_has(&app, "acme-deactivate", "deactivated"));
    let refused = a.new_order(&["console.example.com"]).await;
    assert_eq!(refused.problem(), "unauthorized", "{}", refused.body);
    let again = app.post(&action, &[]).await;
    assert_eq!(again.status().as_u16(), 409);
}

/// The admin API and the command line see and end ACME accounts too.
#[tokio::test]
async fn the_admin_api_and_the_cli_show_and_end_acme_accounts() {
    let app = admin_app().await;
    let key = common::api_key(&app.browser, "acme-admin").await;
    let (name, value) = token(&app, "api-acme", "2").await;
    let mut a = client(&app).await;
    a.register(Some((&name, &value))).await;
    a.issue(&["api-acme.example.com"]).await.unwrap();
    let mut b = client(&app).await;
    b.register(Some((&name, &value))).await;
    b.issue(&["api-acme2.example.com"]).await.unwrap();
    let host: serde_json::Value = app
        .client
        .get(app.url("/api/v1/hosts/api-acme.example.com"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let account = &host["acme_accounts"][0];
    assert_eq!(account["status"], "valid", "{host}");
    assert_eq!(account["binding"], "authorization");
    assert_eq!(account["token_name"], "api-acme");
    assert_eq!(account["thumbprint"], acme_client::thumbprint_of(&a.key));
    assert_eq!(host["certificates"][0]["issued_via"], "acme");
    let id = account["account_id"].as_str().unwrap().to_string();
    let (s, v) = app
        .post_json_with_key(
            &key,
            &format!("/api/v1/hosts/api-acme.example.com/acme-accounts/{id}/deactivate"),
            &serde_json::Value::Null,
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (200, Some("deactivated")), "{v}");
    // Another host's account cannot be ended through this host.
    let other = b
        .kid
        .clone()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let (s, _) = app
        .post_json_with_key(
            &key,
            &format!("/api/v1/hosts/api-acme.example.com/acme-accounts/{other}/deactivate"),
            &serde_json::Value::Null,
        )
        .await;
    assert_eq!(s, 404);
    let r = common::hostca(
        &[
            "host",
            "deactivate-acme-account",
            "api-acme2.example.com",
            &other,
            "--server",
            &app.address,
        ],
        &[("HOSTCA_API_KEY", &key)],
    );
    assert!(r.ok, "{}", r.stderr);
    assert!(r.stdout.contains("deactivated"), "{}", r.stdout);
    let refused = b.new_order(&["api-acme2.example.com"]).await;
    assert_eq!(refused.problem(), "unauthorized");
}

/// Signs a JWS's signing input with some account key.
type Signer = Box<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// An account key of each accepted kind registers and orders: ES384 (P-384), EdDSA
/// (Ed25519) and RS256 (a 2048-bit key made by openssl); a 1024-bit RSA key is refused.
#[tokio::test]
async fn every_accepted_account_key_kind_registers_and_orders() {
    use ring::rand::SystemRandom;
    use ring::signature::{self as sig, KeyPair};
    let app = admin_app().await;
    let rng = SystemRandom::new();
    let p384 =
        sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
    let p384 =
        sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P384_SHA384_FIXED_SIGNING, p384.as_ref(), &rng)
            .unwrap();
    let point = p384.public_key().as_ref().to_vec();
    let ed = sig::Ed25519KeyPair::from_pkcs8(
        sig::Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref(),
    )
    .unwrap();
    // openssl genpkey writes an RSA key as DER RSAPrivateKey (PKCS#1), which ring reads.
    let rsa_key = |bits: &str| {
        let path = app.scratch().join(format!("rsa-{bits}.der"));
        let (ok, out) = common::openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            &format!("rsa_keygen_bits:{bits}"),
            "-outform",
            "DER",
            "-out",
            path.to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
        std::fs::read(path).unwrap()
    };
    let rsa = sig::RsaKeyPair::from_der(&rsa_key("2048")).unwrap();
    let parts = sig::RsaPublicKeyComponents::<Vec<u8>>::from(rsa.public());
    let rsa_jwk = json!({"kty": "RSA", "n": b64(&parts.n), "e": b64(&parts.e)});
    let keys: Vec<(&str, serde_json::Value, Signer)> = vec![
        (
            "ES384",
            json!({"kty": "EC", "crv": "P-384", "x": b64(&point[1..49]), "y": b64(&point[49..97])}),
            Box::new(move |m: &[u8]| {
                p384.sign(&SystemRandom::new(), m)
                    .unwrap()
                    .as_ref()
                    .to_vec()
            }),
        ),
        (
            "EdDSA",
            json!({"kty": "OKP", "crv": "Ed25519", "x": b64(ed.public_key().as_ref())}),
            Box::new(move |m: &[u8]| ed.sign(m).as_ref().to_vec()),
        ),
        (
            "RS256",
            rsa_jwk,
            Box::new(move |m: &[u8]| {
                let mut out = vec![0; rsa.public().modulus_len()];
                rsa.sign(&sig::RSA_PKCS1_SHA256, &SystemRandom::new(), m, &mut out)
                    .unwrap();
                out
            }),
        ),
    ];
    for (i, (alg, jwk, signer)) in keys.iter().enumerate() {
        let (name, value) = token(&app, &format!("alg-{i}"), "1").await;
        let mut c = client(&app).await;
        let url = c.url("newAccount");
        let mac = hostca::acme::eab_mac_key(&value).unwrap();
        let header = json!({"alg": alg, "nonce": c.fresh_nonce().await, "url": url, "jwk": jwk});
        let payload =
            json!({"externalAccountBinding": acme_client::eab_for(jwk, &name, &mac, &url)});
        let r = c
            .send_jws(
                &url,
                acme_client::sign_with(&header, Some(&payload), signer),
            )
            .await;
        assert_eq!(r.status, 201, "{alg}: {}", r.body);
        let kid = r.location.unwrap();
        let url = c.url("newOrder");
        let header = json!({"alg": alg, "nonce": c.fresh_nonce().await, "url": url, "kid": kid});
        let payload =
            json!({"identifiers": [{"type": "dns", "value": format!("alg{i}.example.com")}]});
        let r = c
            .send_jws(
                &url,
                acme_client::sign_with(&header, Some(&payload), signer),
            )
            .await;
        assert_eq!(r.status, 201, "{alg}: {}", r.body);
    }
    // A 1024-bit RSA key is refused before anything is used.
    let weak = sig::RsaKeyPair::from_der(&rsa_key("1024"));
    let parts = match &weak {
        Ok(k) => sig::RsaPublicKeyComponents::<Vec<u8>>::from(k.public()),
        // ring itself may refuse to load so small a key: make the JWK by hand then.
        Err(_) => sig::RsaPublicKeyComponents {
            n: vec![0xC5; 128],
            e: vec![1, 0, 1],
        },
    };
    let mut c = client(&app).await;
    let url = c.url("newAccount");
    let header = json!({"alg": "RS256", "nonce": c.fresh_nonce().await, "url": url,
        "jwk": {"kty": "RSA", "n": b64(&parts.n), "e": b64(&parts.e)}});
    let r = c
        .send_jws(
            &url,
            acme_client::sign_with(&header, Some(&json!({})), |_| vec![0; 128]),
        )
        .await;
    assert_eq!(r.problem(), "badSignatureAlgorithm", "{}", r.body);
}
