//! The certificate authority, checked with the `openssl` command line as the independent
//! client: enrollment, refusals, revocation and the CRL, reissue, renewal.

use crate::common;

use common::{element_text, openssl, openssl_csr, renew_csr, spawn_app, TestApp};
use diesel::prelude::*;
use hostca::db::schema::{audit_events, certificates, host_mappings, tokens};
use serde_json::Value;

fn write(app: &TestApp, name: &str, text: &str) -> String {
    let p = app.scratch().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// One description per refusal (refusals are aggregated per source and minute: written
/// now, and counted by their occurrences).
fn cert_failures(app: &TestApp) -> Vec<String> {
    hostca::services::audit::flush_refusals(&app.ctx).unwrap();
    let rows: Vec<(String, i64)> = audit_events::table
        .filter(audit_events::category.eq("CERT"))
        .filter(audit_events::outcome.eq("failure"))
        .select((audit_events::description, audit_events::occurrences))
        .load(&mut *app.conn())
        .unwrap();
    rows.into_iter()
        .flat_map(|(d, n)| std::iter::repeat_n(d, n as usize))
        .collect()
}

async fn token(app: &TestApp, name: &str, uses: &str) -> String {
    app.token_value(name, uses).await
}

#[tokio::test]
async fn openssl_accepts_what_the_api_issues() {
    let app = spawn_app().await;
    app.login().await;
    let value = token(&app, "web", "1").await;
    app.set_auto_map(false);
    let (_key, csr) = openssl_csr(
        &app.scratch(),
        "web01",
        "web01.example.com",
        &["evil.example.com"],
    );
    let (status, body) = app.enroll("Web01.Example.com", &csr, Some(&value)).await;
    assert_eq!(status, 201, "{body}");
    let host_id = body["host_id"].as_str().unwrap().to_string();
    let serial = body["serial"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&host_id).is_ok());
    assert_eq!(serial.len(), 32, "128-bit serial");
    let cert = write(&app, "web01.pem", body["certificate"].as_str().unwrap());
    let ca = write(&app, "ca.pem", body["ca_certificate"].as_str().unwrap());
    let ca_served = app.get_html("/ca.pem").await;
    assert_eq!(ca_served, body["ca_certificate"].as_str().unwrap());

    let (ok, out) = openssl(&["verify", "-CAfile", &ca, &cert]);
    assert!(ok && out.contains(": OK"), "{out}");
    let (_, text) = openssl(&["x509", "-in", &cert, "-noout", "-text", "-serial", "-dates"]);
    assert!(text.contains("DNS:web01.example.com"), "{text}");
    assert!(text.contains(&format!("URI:urn:uuid:{host_id}")), "{text}");
    assert!(
        !text.contains("evil.example.com"),
        "a pending name is never put in a certificate"
    );
    assert!(
        !text.contains("Requested Org"),
        "only the public key is taken from the CSR"
    );
    assert!(
        text.contains("CA:FALSE"),
        "a CSR asking for CA:TRUE gets CA:FALSE"
    );
    assert!(text.contains("TLS Web Server Authentication, TLS Web Client Authentication"));
    assert!(text.contains(&format!("serial={serial}")), "{text}");
    assert!(text.contains("Subject: CN = web01.example.com"));
    let not_after = body["not_after"].as_str().unwrap();
    let na = chrono::DateTime::parse_from_rfc3339(not_after).unwrap();
    let days = (na.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_days();
    assert!((364..=365).contains(&days), "valid 365 days, got {days}");
    let (_, ca_text) = openssl(&["x509", "-in", &ca, "-noout", "-text"]);
    assert!(ca_text.contains("CA:TRUE") && ca_text.contains("Certificate Sign, CRL Sign"));
    assert!(ca_text.contains("prime256v1"));
    assert!(ca_text.contains("CN = hostca Root CA "));

    // The token paid for exactly this certificate; the host and its mapping exist.
    let stored: (String, Option<String>) = certificates::table
        .filter(certificates::serial.eq(&serial))
        .select((certificates::host_id, certificates::token_name))
        .first(&mut *app.conn())
        .unwrap();
    assert_eq!(stored, (host_id.clone(), Some("web".to_string())));
    let mappings: Vec<(String, String)> = host_mappings::table
        .filter(host_mappings::host_id.eq(&host_id))
        .order(host_mappings::name.asc())
        .select((host_mappings::name, host_mappings::state))
        .load(&mut *app.conn())
        .unwrap();
    assert_eq!(
        mappings,
        vec![
            ("evil.example.com".into(), "pending".into()),
            ("web01.example.com".into(), "approved".into())
        ],
        "the primary name is approved; the extra name waits (automatic mapping is off)"
    );

    // The console shows it.
    let list = app.get_html("/security/certificates").await;
    assert!(
        list.contains(&serial)
            && list.contains("badge-active")
            && list.contains("web01.example.com")
    );
    let details = app
        .get_html(&format!("/security/certificates/{serial}"))
        .await;
    let (_, fp) = openssl(&["x509", "-in", &cert, "-noout", "-fingerprint", "-sha256"]);
    let fp = fp.trim().split('=').nth(1).unwrap().to_string();
    assert!(
        details.contains(&fp),
        "SHA-256 fingerprint as openssl prints it"
    );
    let (_, fp1) = openssl(&["x509", "-in", &cert, "-noout", "-fingerprint", "-sha1"]);
    assert!(details.contains(fp1.trim().split('=').nth(1).unwrap()));
    assert!(details.contains("ECDSA (256 bits)"));
    assert!(details.contains("BEGIN CERTIFICATE"));
    let pem = app
        .get(&format!("/security/certificates/{serial}/pem"))
        .await;
    assert!(pem.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let host_page = app.get_html(&format!("/security/hosts/{host_id}")).await;
    assert!(host_page.contains(&serial) && host_page.contains("Generate reissue token"));
    let ca_page = app.get_html("/security/ca").await;
    let (_, cafp) = openssl(&["x509", "-in", &ca, "-noout", "-fingerprint", "-sha256"]);
    assert!(ca_page.contains(cafp.trim().split('=').nth(1).unwrap()));
}

#[tokio::test]
async fn revocation_shows_in_a_crl_that_openssl_verifies() {
    let app = spawn_app().await;
    app.login().await;
    let value = token(&app, "two", "2").await;
    let (_k, csr) = openssl_csr(&app.scratch(), "a", "a.example.com", &[]);
    let (s, a) = app.enroll("a.example.com", &csr, Some(&value)).await;
    assert_eq!(s, 201);
    let (_k, csr) = openssl_csr(&app.scratch(), "b", "b.example.com", &[]);
    let (s, b) = app.enroll("b.example.com", &csr, Some(&value)).await;
    assert_eq!(s, 201);
    let ca = write(&app, "ca.pem", a["ca_certificate"].as_str().unwrap());
    let a_pem = write(&app, "a.pem", a["certificate"].as_str().unwrap());
    let b_pem = write(&app, "b.pem", b["certificate"].as_str().unwrap());
    let serial = a["serial"].as_str().unwrap();
    let before = app.get("/crl").await;
    assert_eq!(before.headers()["content-type"], "application/pkix-crl");
    let crl0 = write(&app, "crl0.der", "");
    std::fs::write(&crl0, before.bytes().await.unwrap()).unwrap();
    let (_, t0) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        &crl0,
        "-noout",
        "-crlnumber",
    ]);

    // Revoke needs CSRF, a known reason, and a session that may change things.
    let path = format!("/security/certificates/{serial}/revoke");
    assert_eq!(
        app.post_raw(&path, &[("reason", "key_compromise")])
            .await
            .status(),
        403
    );
    assert_eq!(
        app.post(&path, &[("reason", "because")]).await.status(),
        400
    );
    let r = app.post(&path, &[("reason", "key_compromise")]).await;
    assert_eq!(r.status(), 303);
    assert!(app
        .get_html("/security/certificates")
        .await
        .contains("revoked. The CRL has been republished."));
    assert_eq!(
        app.post(&path, &[("reason", "key_compromise")])
            .await
            .status(),
        409,
        "already revoked"
    );

    let crl = write(&app, "crl.pem", &app.get_html("/crl.pem").await);
    let (ok, out) = openssl(&["crl", "-in", &crl, "-CAfile", &ca, "-noout"]);
    assert!(ok && out.contains("verify OK"), "{out}");
    let (_, text) = openssl(&["crl", "-in", &crl, "-noout", "-text"]);
    assert!(text.contains(&format!("Serial Number: {serial}")), "{text}");
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(
        text.contains("Authority Key Identifier") && text.contains("CRL Number"),
        "{text}"
    );
    assert!(!text.contains(b["serial"].as_str().unwrap()));
    let (_, t1) = openssl(&[
        "crl",
        "-in",
        &crl,
        "-noout",
        "-crlnumber",
        "-nextupdate",
        "-lastupdate",
    ]);
    assert_ne!(
        t0.lines().next(),
        t1.lines().next(),
        "the CRL number grew: {t0} -> {t1}"
    );
    assert!(t1.contains("nextUpdate="));

    let (ok, out) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &ca,
        "-CRLfile",
        &crl,
        &a_pem,
    ]);
    assert!(!ok && out.contains("certificate revoked"), "{out}");
    let (ok, out) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &ca,
        "-CRLfile",
        &crl,
        &b_pem,
    ]);
    assert!(ok, "the other certificate still verifies: {out}");

    let details = app
        .get_html(&format!("/security/certificates/{serial}"))
        .await;
    assert!(
        details.contains("badge-revoked")
            && details.contains("Key compromise")
            && details.contains("by <strong>admin</strong>")
    );
    let html = app.get_html("/security/certificates?status=revoked").await;
    assert!(html.contains(serial) && !html.contains(b["serial"].as_str().unwrap()));
    let html = app.get_html("/security/certificates?status=active").await;
    assert!(!html.contains(serial) && html.contains(b["serial"].as_str().unwrap()));
    let html = app.get_html("/security/certificates?q=B.EXAMPLE").await;
    assert!(html.contains("1–1 of 1"));
    assert_eq!(
        app.get("/security/certificates?status=bogus")
            .await
            .status(),
        400
    );
    let ca_page = app.get_html("/security/ca").await;
    assert!(ca_page.contains("<dt>Revoked certificates listed</dt><dd>1</dd>"));

    // Revoking a host revokes all its active certificates.
    let host_b = b["host_id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/security/hosts/{host_b}/revoke"),
            &[("reason", "cessation_of_operation")],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert!(app
        .get_html(&format!("/security/hosts/{host_b}"))
        .await
        .contains("1 certificate revoked."));
    let crl = write(&app, "crl2.pem", &app.get_html("/crl.pem").await);
    let (_, text) = openssl(&["crl", "-in", &crl, "-noout", "-text"]);
    assert!(text.contains("Cessation Of Operation"), "{text}");
    let (ok, _) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &ca,
        "-CRLfile",
        &crl,
        &b_pem,
    ]);
    assert!(!ok);
}

#[tokio::test]
async fn every_refusal_is_clear_and_audited() {
    let app = spawn_app().await;
    app.login().await;
    let dir = app.scratch();
    let (_k, csr) = openssl_csr(&dir, "r", "r.example.com", &[]);
    let one = token(&app, "one", "1").await;

    // Malformed and badly signed CSRs: 400.
    let (s, b) = app.enroll("r.example.com", "not a csr", Some(&one)).await;
    assert_eq!((s, b["error"].as_str()), (400, Some("bad_request")));
    assert!(b["message"].as_str().unwrap().contains("not PEM"));
    let mut der = {
        let body: String = csr.lines().filter(|l| !l.starts_with("-----")).collect();
        base64_decode(&body)
    };
    let last = der.len() - 3;
    der[last] ^= 0x55;
    let tampered = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        base64_encode(&der)
    );
    let (s, b) = app.enroll("r.example.com", &tampered, Some(&one)).await;
    assert_eq!(s, 400, "{b}");
    let (s, _) = app.enroll("r.example.com", "", Some(&one)).await;
    assert_eq!(s, 400);
    let (s, b) = app.enroll("bad host!", &csr, Some(&one)).await;
    assert_eq!(s, 400);
    assert!(b["message"]
        .as_str()
        .unwrap()
        .contains("not a valid host name"));
    let (s, _) = app.enroll(&"a".repeat(300), &csr, Some(&one)).await;
    assert_eq!(s, 400);
    let (s, b) = app
        .post_json(
            "/api/v1/certificates",
            &serde_json::json!({"hostname": 5, "csr": []}),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(b["error"], "bad_request");
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/certificates"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415, "no JSON content type");
    let (s, _) = app
        .post_json("/api/v1/certificates", &serde_json::json!({"csr": csr}))
        .await;
    assert_eq!(s, 400, "hostname missing");

    // Tokens: unknown, malformed, expired, used up: 422.
    let (s, b) = app
        .enroll("r.example.com", &csr, Some("AAAA-BBBB-CCCC-DDDD-EEEE-FFFF"))
        .await;
    assert_eq!(s, 422);
    assert!(b["message"].as_str().unwrap().contains("unknown"));
    let (s, _) = app.enroll("r.example.com", &csr, Some("<script>")).await;
    assert_eq!(s, 422);
    let old = token(&app, "old", "5").await;
    diesel::update(tokens::table.filter(tokens::name.eq("old")))
        .set(tokens::valid_until.eq(hostca::db::now() - chrono::Duration::minutes(1)))
        .execute(&mut *app.conn())
        .unwrap();
    let (s, b) = app.enroll("r.example.com", &csr, Some(&old)).await;
    assert_eq!(s, 422);
    assert!(b["message"].as_str().unwrap().contains("expired"));
    let (s, _) = app.enroll("r.example.com", &csr, Some(&one)).await;
    assert_eq!(s, 201);
    let (_k, csr2) = openssl_csr(&dir, "r2", "r2.example.com", &[]);
    let (s, b) = app.enroll("r2.example.com", &csr2, Some(&one)).await;
    assert_eq!(s, 422);
    assert!(b["message"].as_str().unwrap().contains("used up"));

    // No token for an unknown host at level high: 401. At very high even a known one: 401.
    let (s, b) = app.enroll("r2.example.com", &csr2, None).await;
    assert_eq!((s, b["error"].as_str()), (401, Some("unauthorized")));
    assert_eq!(
        app.post("/security/hosts", &[("name", "known.example.com")])
            .await
            .status(),
        303
    );
    app.set_security_level("very_high");
    let (_k, csr3) = openssl_csr(&dir, "k", "known.example.com", &[]);
    let (s, b) = app.enroll("known.example.com", &csr3, None).await;
    assert_eq!(s, 401);
    assert!(b["message"].as_str().unwrap().contains("very high"));
    app.set_security_level("high");
    let (s, _) = app.enroll("known.example.com", &csr3, None).await;
    assert_eq!(s, 201, "a known host needs no token at level high");

    // A host that has had a certificate never gets another through a token or the level.
    let more = token(&app, "more", "5").await;
    let (s, b) = app.enroll("r.example.com", &csr, Some(&more)).await;
    assert_eq!(s, 409);
    assert!(b["message"].as_str().unwrap().contains("reissue token"));
    let (s, _) = app.enroll("known.example.com", &csr3, None).await;
    assert_eq!(s, 409);
    let uses: i32 = tokens::table
        .filter(tokens::name.eq("more"))
        .select(tokens::uses)
        .first(&mut *app.conn())
        .unwrap();
    assert_eq!(uses, 0, "a refused request consumes nothing");

    // A reissue token of another host: 422.
    let r_host: String = certificates::table
        .filter(certificates::names.eq("known.example.com"))
        .select(certificates::host_id)
        .first(&mut *app.conn())
        .unwrap();
    let r = app
        .post(
            &format!("/security/hosts/{r_host}/reissue-token"),
            &[("name", "for-known"), ("valid_for", "1h")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let html = app
        .post("/security/tokens/for-known/show", &[])
        .await
        .text()
        .await
        .unwrap();
    let reissue = element_text(&html, "token-value").unwrap();
    let (s, b) = app.enroll("r.example.com", &csr, Some(&reissue)).await;
    assert_eq!(s, 422);
    assert!(b["message"]
        .as_str()
        .unwrap()
        .contains("belongs to another host"));

    let failures = cert_failures(&app);
    assert!(failures.len() >= 15, "{failures:?}");
    assert!(
        failures.iter().any(|d| d.contains("(409)"))
            && failures.iter().any(|d| d.contains("(401)"))
    );
    assert!(
        !failures
            .iter()
            .any(|d| d.contains(&one) || d.contains(&reissue)),
        "no token value in the audit trail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_enrollments_on_three_uses_issue_exactly_three() {
    let app = spawn_app().await;
    app.login().await;
    let value = token(&app, "three", "3").await;
    let dir = app.scratch();
    let csrs: Vec<(String, String)> = (0..32)
        .map(|i| {
            let name = format!("race{i}.example.com");
            let (_k, csr) = openssl_csr(&dir, &format!("race{i}"), &name, &[]);
            (name, csr)
        })
        .collect();
    let url = app.url("/api/v1/certificates");
    let tasks: Vec<_> = csrs
        .into_iter()
        .map(|(name, csr)| {
            let url = url.clone();
            let value = value.clone();
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .json(&serde_json::json!({"hostname": name, "csr": csr, "token": value}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        3,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 422),
        "{statuses:?}"
    );
    let issued: i64 = certificates::table
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    assert_eq!(issued, 3);
}

#[tokio::test]
async fn a_reissue_keeps_the_host_id_and_supersedes_the_old_certificate() {
    let app = spawn_app().await;
    // The renamed host's new name is approved at once only inside the allowed domains.
    app.set_allowed_domains("example.com");
    app.login().await;
    let dir = app.scratch();
    let value = token(&app, "first", "1").await;
    let (_k, csr) = openssl_csr(&dir, "db", "db.example.com", &[]);
    let (s, first) = app.enroll("db.example.com", &csr, Some(&value)).await;
    assert_eq!(s, 201);
    let host_id = first["host_id"].as_str().unwrap().to_string();
    let old_serial = first["serial"].as_str().unwrap().to_string();
    let ca = write(&app, "ca.pem", first["ca_certificate"].as_str().unwrap());

    // An alias is refused, naming the primary name; the host ID and primary name work.
    hostca::models::host_mapping::HostMapping::insert(
        &mut app.conn(),
        &hostca::models::host_mapping::NewHostMapping {
            host_id: &host_id,
            name: "db-new.example.com",
            state: hostca::models::kinds::MappingState::Approved,
            source: hostca::models::kinds::MappingSource::Manual,
            created_at: hostca::db::now(),
        },
    )
    .unwrap();
    let r = app
        .post(
            "/security/hosts/db-new.example.com/reissue-token",
            &[("name", "x")],
        )
        .await;
    assert_eq!(r.status(), 422);
    let msg = r.text().await.unwrap();
    assert!(msg.contains("primary name db.example.com"), "{msg}");
    let r = app
        .post(
            "/security/hosts/db.example.com/reissue-token",
            &[("name", "by-name"), ("valid_until", "2001-01-01")],
        )
        .await;
    assert_eq!(r.status(), 422, "a date in the past");
    let r = app
        .post(
            &format!("/security/hosts/{host_id}/reissue-token"),
            &[("name", "bad name")],
        )
        .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("only letters"));
    let r = app
        .post(
            &format!("/security/hosts/{host_id}/reissue-token"),
            &[
                ("name", "db-reissue"),
                ("valid_for", "2h"),
                ("reason", "disk replaced"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/security/tokens/db-reissue");
    let details = app.get_html("/security/tokens/db-reissue").await;
    assert!(details.contains("Reissue") && details.contains(&host_id) && details.contains("0 / 1"));
    let html = app
        .post("/security/tokens/db-reissue/show", &[])
        .await
        .text()
        .await
        .unwrap();
    let reissue = element_text(&html, "token-value").unwrap();

    // The host, renamed, presents the token under its new (approved) name with a new key.
    let (_k2, csr2) = openssl_csr(&dir, "db2", "db-new.example.com", &[]);
    let (s, second) = app
        .enroll("db-new.example.com", &csr2, Some(&reissue))
        .await;
    assert_eq!(s, 201, "{second}");
    assert_eq!(second["host_id"].as_str().unwrap(), host_id, "same host ID");
    let cert2 = write(&app, "db2.pem", second["certificate"].as_str().unwrap());
    let (_, text) = openssl(&["x509", "-in", &cert2, "-noout", "-text"]);
    assert!(
        text.contains("DNS:db-new.example.com") && text.contains(&format!("urn:uuid:{host_id}"))
    );
    let reason: Option<String> = certificates::table
        .filter(certificates::serial.eq(&old_serial))
        .select(certificates::revocation_reason)
        .first(&mut *app.conn())
        .unwrap();
    assert_eq!(reason.as_deref(), Some("superseded"));
    let crl = write(&app, "crl.pem", &app.get_html("/crl.pem").await);
    let (_, crl_text) = openssl(&["crl", "-in", &crl, "-noout", "-text"]);
    assert!(crl_text.contains(&old_serial) && crl_text.contains("Superseded"));
    let (ok, _) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &ca,
        "-CRLfile",
        &crl,
        &cert2,
    ]);
    assert!(ok);
    let html = app
        .get_html("/security/certificates?status=superseded")
        .await;
    assert!(html.contains(&old_serial));

    // Single use.
    let (_k3, csr3) = openssl_csr(&dir, "db3", "db.example.com", &[]);
    let (s, b) = app.enroll("db.example.com", &csr3, Some(&reissue)).await;
    assert_eq!(s, 422, "{b}");
}

#[tokio::test]
async fn renewal_needs_the_same_key() {
    let app = spawn_app().await;
    app.login().await;
    let dir = app.scratch();
    let value = token(&app, "r", "1").await;
    let (key, csr) = openssl_csr(&dir, "app", "app.example.com", &[]);
    let (s, first) = app.enroll("app.example.com", &csr, Some(&value)).await;
    assert_eq!(s, 201);
    let host_id = first["host_id"].as_str().unwrap().to_string();

    // Renewal CSRs carry a fresh nonce (see tests/renewal.rs for the nonce's own rules).
    let (other_key, _) = openssl_csr(&dir, "other", "app.example.com", &[]);
    let nonce = app.renewal_nonce(&host_id).await;
    let other = renew_csr(&dir, &other_key, "app.example.com", Some(&nonce), &[]);
    let (s, b) = app.renew(&host_id, &other).await;
    assert_eq!(s, 403, "{b}");
    assert!(b["message"].as_str().unwrap().contains("same key"));
    let csr = renew_csr(&dir, &key, "app.example.com", Some(&nonce), &[]);
    let (s, _) = app.renew("nope", &csr).await;
    assert_eq!(s, 400);
    let (s, _) = app.renew(&uuid::Uuid::new_v4().to_string(), &csr).await;
    assert_eq!(s, 404);

    let (s, renewed) = app.renew(&host_id, &csr).await;
    assert_eq!(s, 201, "{renewed}");
    assert_eq!(renewed["host_id"], Value::String(host_id.clone()));
    assert_ne!(renewed["serial"], first["serial"]);
    let ca = write(&app, "ca.pem", renewed["ca_certificate"].as_str().unwrap());
    let cert = write(
        &app,
        "renewed.pem",
        renewed["certificate"].as_str().unwrap(),
    );
    assert!(openssl(&["verify", "-CAfile", &ca, &cert]).0);
    let old: Option<String> = certificates::table
        .filter(certificates::serial.eq(first["serial"].as_str().unwrap()))
        .select(certificates::revocation_reason)
        .first(&mut *app.conn())
        .unwrap();
    assert_eq!(old.as_deref(), Some("superseded"));

    // After revocation there is nothing to renew: 409, ask for a reissue token.
    let serial = renewed["serial"].as_str().unwrap();
    app.post(
        &format!("/security/certificates/{serial}/revoke"),
        &[("reason", "unspecified")],
    )
    .await;
    let nonce = app.renewal_nonce(&host_id).await;
    let again = renew_csr(&dir, &key, "app.example.com", Some(&nonce), &[]);
    let (s, b) = app.renew(&host_id, &again).await;
    assert_eq!(s, 409);
    assert!(b["message"].as_str().unwrap().contains("reissue token"));
}

#[tokio::test]
async fn medium_level_trusts_a_name_that_resolves_to_the_caller() {
    let app = spawn_app().await;
    app.set_security_level("medium");
    // localhost resolves to the caller but is one of the server's own names: never certified.
    let (_k, csr) = openssl_csr(&app.scratch(), "lh", "localhost", &[]);
    let (s, b) = app.enroll("localhost", &csr, None).await;
    assert_eq!(s, 422, "{b}");
    // No other name resolves to 127.0.0.1 here: the test resolver stands in for DNS.
    app.ctx.site.resolver.set_lookup(|name| match name {
        "near.example.com" => vec![std::net::IpAddr::from([127, 0, 0, 1])],
        _ => Vec::new(),
    });
    let (_k, csr) = openssl_csr(&app.scratch(), "near", "near.example.com", &[]);
    let (s, b) = app.enroll("near.example.com", &csr, None).await;
    assert_eq!(s, 201, "{b}");
    let (_k, csr) = openssl_csr(&app.scratch(), "far", "far.example.invalid", &[]);
    let (s, _) = app.enroll("far.example.invalid", &csr, None).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn the_ca_survives_restarts_and_is_never_silently_replaced() {
    let app = spawn_app().await;
    let first = app.get_html("/ca.pem").await;
    let data = app.data_dir();
    use std::os::unix::fs::PermissionsExt;
    for f in super::auth::ca_key_files(&data) {
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Sealed under token.key: the key file alone gives nothing away.
    for f in super::auth::ca_key_files(&data) {
        let key = std::fs::read(&f).unwrap();
        assert!(key.starts_with(b"HOSTCA-CA-KEY-1\n"), "{}", f.display());
        assert!(!String::from_utf8_lossy(&key).contains("PRIVATE KEY"));
    }
    let app = app.restart().await;
    assert_eq!(
        app.get_html("/ca.pem").await,
        first,
        "the same CA after a restart"
    );

    if common::issuing_key_in_token() {
        // The issuing key is in the token: no key file to lose (tests/it/pkcs11.rs).
        return;
    }
    let config = app.config.clone();
    let issuing = super::auth::ca_key_files(&data)
        .into_iter()
        .find(|f| f.to_string_lossy().contains("ca-issuing-"))
        .unwrap();
    let name = issuing.file_name().unwrap().to_string_lossy().to_string();
    std::fs::rename(&issuing, data.join("issuing.bak")).unwrap();
    let err = hostca::startup::Application::build(&config)
        .err()
        .expect("no second CA");
    let msg = err.to_string();
    assert!(msg.contains("restore") && msg.contains(&name), "{msg}");
    assert!(!issuing.exists(), "nothing was created in its place");
    assert_eq!(
        super::auth::ca_key_files_unchecked(&data).len(),
        1,
        "no new key either"
    );
    std::fs::write(&issuing, "garbage").unwrap();
    assert!(hostca::startup::Application::build(&config).is_err());
    std::fs::remove_file(&issuing).unwrap();
    std::fs::rename(data.join("issuing.bak"), &issuing).unwrap();
}

fn base64_decode(s: &str) -> Vec<u8> {
    let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()) {
        buf = (buf << 6) | table.iter().position(|t| *t == c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

fn base64_encode(data: &[u8]) -> String {
    let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(table[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn a_huge_body_is_a_json_413() {
    let app = spawn_app().await;
    let big = "A".repeat(100 * 1024);
    let (s, b) = app.enroll("big.example.com", &big, None).await;
    assert_eq!(s, 413);
    assert_eq!(b["error"], "payload_too_large");
}

#[tokio::test]
async fn a_second_process_on_the_same_database_adopts_the_newer_crl() {
    let app = spawn_app().await;
    app.login().await;
    // A second server on the same data directory and database.
    let mut config = app.config.clone();
    config.listen = "127.0.0.1:0".into();
    let other = hostca::startup::Application::build(&config).unwrap();
    let value = token(&app, "two-procs", "1").await;
    let (_k, csr) = openssl_csr(&app.scratch(), "tp", "tp.example.com", &[]);
    let (s, b) = app.enroll("tp.example.com", &csr, Some(&value)).await;
    assert_eq!(s, 201);
    let serial = b["serial"].as_str().unwrap();
    let r = app
        .post(
            &format!("/security/certificates/{serial}/revoke"),
            &[("reason", "key_compromise")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let ours = app.ctx.pki.crl();
    let before = other.ctx.pki.crl();
    assert!(
        before.number < ours.number,
        "the other process still serves its older CRL"
    );
    assert!(hostca::services::pki::refresh_crl_if_stale(&other.ctx).unwrap());
    let after = other.ctx.pki.crl();
    assert_eq!(
        after.number, ours.number,
        "it adopts the number without taking a new one"
    );
    assert_eq!(after.entries, 1);
    assert!(
        !hostca::services::pki::refresh_crl_if_stale(&other.ctx).unwrap(),
        "nothing to do twice"
    );
    assert_eq!(
        app.ctx.pki.crl().number,
        ours.number,
        "no ping-pong of CRL numbers"
    );
}
