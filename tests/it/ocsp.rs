//! OCSP (RFC 6960, RFC 5019) against a real server, judged by `openssl ocsp`.

use std::time::{Duration, Instant};

use base64::Engine;

use crate::common::*;

fn write(app: &TestApp, name: &str, bytes: &[u8]) -> String {
    let p = app.scratch().join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

struct Setup {
    app: TestApp,
    ca: String,
    issuer: String,
    leaf: String,
    serial: String,
    url: String,
}

async fn setup() -> Setup {
    let app = spawn_app().await;
    app.login().await;
    let value = app.token_value("ocsp", "2").await;
    let (_k, csr) = openssl_csr(&app.scratch(), "a", "a.example.com", &[]);
    let (s, a) = app.enroll("a.example.com", &csr, Some(&value)).await;
    assert_eq!(s, 201, "{a}");
    let ca = write(&app, "ca.pem", app.ctx.pki.bundle_pem().as_bytes());
    let issuer = write(
        &app,
        "issuer.pem",
        app.ctx.pki.signing().cert_pem.as_bytes(),
    );
    let leaf = write(&app, "a.pem", a["certificate"].as_str().unwrap().as_bytes());
    let serial = a["serial"].as_str().unwrap().to_string();
    let url = app.browser.url("/ocsp");
    Setup {
        app,
        ca,
        issuer,
        leaf,
        serial,
        url,
    }
}

impl Setup {
    fn query(&self, extra: &[&str]) -> (bool, String) {
        let mut args = vec![
            "ocsp",
            "-issuer",
            &self.issuer,
            "-url",
            &self.url,
            "-CAfile",
            &self.ca,
            "-resp_text",
        ];
        // openssl wants the digest before -cert or -serial.
        args.extend(extra);
        if !extra.contains(&"-serial") {
            args.extend(["-cert", &self.leaf]);
        }
        openssl(&args)
    }

    fn request(&self, name: &str, extra: &[&str]) -> Vec<u8> {
        let out = self.app.scratch().join(name).display().to_string();
        let mut args = vec![
            "ocsp",
            "-issuer",
            &self.issuer,
            "-cert",
            &self.leaf,
            "-reqout",
            &out,
        ];
        args.extend(extra);
        let (ok, text) = openssl(&args);
        assert!(ok, "{text}");
        std::fs::read(&out).unwrap()
    }

    async fn post(&self, body: Vec<u8>) -> reqwest::Response {
        ocsp_post(&self.url, body).await
    }

    /// The `Cert Status:` line openssl reads from a response.
    fn status_in(&self, der: &[u8]) -> String {
        let p = write(&self.app, "resp.der", der);
        let (_, text) = openssl(&["ocsp", "-respin", &p, "-resp_text", "-noverify"]);
        text.lines()
            .find(|l| l.contains("Cert Status:"))
            .unwrap_or("")
            .trim()
            .to_string()
    }
}

#[tokio::test]
async fn openssl_verifies_good_revoked_and_unknown_with_both_hashes_and_nonces() {
    let s = setup().await;
    // Leaves name the responder beside caIssuers.
    let (_, uri) = openssl(&["x509", "-in", &s.leaf, "-noout", "-ocsp_uri"]);
    assert_eq!(uri.trim(), s.url);

    // With a nonce (openssl's default): signed live, the nonce echoed and checked.
    let (ok, out) = s.query(&[]);
    assert!(ok, "{out}");
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains(": good"), "{out}");
    assert!(out.contains("OCSP Nonce"), "{out}");
    assert!(!out.contains("WARNING"), "{out}");
    // The delegated responder: OCSP signing only, no-check, in the response.
    assert!(out.contains("OCSP Signing"), "{out}");
    assert!(out.contains("OCSP No Check"), "{out}");
    assert!(out.contains("Responder Id:"), "{out}");
    assert!(out.contains("Next Update:"), "{out}");
    // Pre-produced (no nonce), SHA-1 and SHA-256 CertIDs.
    for extra in [&["-no_nonce"][..], &["-no_nonce", "-sha256"], &["-sha256"]] {
        let (ok, out) = s.query(extra);
        assert!(
            ok && out.contains("Response verify OK") && out.contains(": good"),
            "{extra:?} {out}"
        );
    }
    let (ok, out) = s.query(&["-no_nonce", "-sha256"]);
    assert!(ok && out.contains("Hash Algorithm: sha256"), "{out}");

    // Unknown: a serial under our CA that it never issued.
    let (ok, out) = s.query(&["-serial", "0x40DEADBEEF0000000000000000000001"]);
    assert!(ok && out.contains("Response verify OK"), "{out}");
    assert!(out.contains(": unknown"), "{out}");

    // Revoked with its reason and time, visible within a second of the revocation even
    // though the good answer was cached.
    let request = s.request("req.der", &["-no_nonce"]);
    let before = s.post(request.clone()).await.bytes().await.unwrap();
    assert_eq!(s.status_in(&before), "Cert Status: good");
    let path = format!("/security/certificates/{}/revoke", s.serial);
    let r = s.app.post(&path, &[("reason", "key_compromise")]).await;
    assert_eq!(r.status(), 303);
    let revoked = Instant::now();
    loop {
        let der = s.post(request.clone()).await.bytes().await.unwrap();
        if s.status_in(&der) == "Cert Status: revoked" {
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "the revocation is not answered within a second"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for extra in [&[][..], &["-no_nonce", "-sha256"]] {
        let (ok, out) = s.query(extra);
        assert!(ok && out.contains("Response verify OK"), "{out}");
        assert!(out.contains(": revoked"), "{out}");
        assert!(out.contains("Reason: keyCompromise"), "{out}");
        assert!(out.contains("Revocation Time:"), "{out}");
    }
}

#[tokio::test]
async fn get_is_cacheable_and_bad_requests_are_answered_not_failed() {
    let s = setup().await;
    let request = s.request("get.der", &["-no_nonce"]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&request);
    let encoded =
        percent_encoding::utf8_percent_encode(&b64, percent_encoding::NON_ALPHANUMERIC).to_string();
    let r = client()
        .get(s.app.browser.url(&format!("/ocsp/{encoded}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/ocsp-response");
    let cc = r.headers()["cache-control"].to_str().unwrap().to_string();
    assert!(
        cc.starts_with("max-age=") && cc.contains("public, no-transform, must-revalidate"),
        "{cc}"
    );
    let age: i64 = cc["max-age=".len()..]
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(age > 3600 && age <= 86400, "{cc}");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert!(r.headers().contains_key("last-modified"));
    let body = r.bytes().await.unwrap();
    assert_eq!(s.status_in(&body), "Cert Status: good");
    // URL-safe base64 without padding, unencoded: the same answer.
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&request);
    let r = client()
        .get(s.app.browser.url(&format!("/ocsp/{url_safe}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(r.bytes().await.unwrap(), body);
    let r = client()
        .get(s.app.browser.url(&format!("/ocsp/{encoded}")))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);

    // A nonce: signed live, never cached.
    let with_nonce = s.request("nonce.der", &[]);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&with_nonce);
    let r = client()
        .get(s.app.browser.url(&format!("/ocsp/{b64}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(!r.headers().contains_key("etag"));

    // Malformed: HTTP 200 with malformedRequest (RFC 6960, 2.3), never a 500.
    let malformed = [0x30, 0x03, 0x0a, 0x01, 0x01];
    for bad in [
        b"garbage".to_vec(),
        Vec::new(),
        vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
        request[..request.len() - 3].to_vec(),
        [request.clone(), vec![0]].concat(),
    ] {
        let r = s.post(bad).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap().as_ref(), malformed);
    }
    for path in ["/ocsp/!!!", "/ocsp/", "/ocsp/%ZZ", "/ocsp/AAAA"] {
        let r = client().get(s.app.browser.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.bytes().await.unwrap().as_ref(), malformed, "{path}");
    }
    // Oversized and mistyped bodies.
    assert_eq!(s.post(vec![0x30; 5000]).await.status(), 413);
    assert_eq!(s.post(vec![0x30; 2_000_000]).await.status(), 413);
    let r = client()
        .post(&s.url)
        .header("Content-Type", "application/json")
        .body(request.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // A foreign CA's certificate: unauthorized (RFC 5019, 2.2.3), even with our serial.
    let dir = s.app.scratch();
    let foreign = dir.join("foreign.pem").display().to_string();
    let foreign_key = dir.join("foreign.key").display().to_string();
    let (ok, out) = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=Foreign CA",
        "-days",
        "1",
        "-keyout",
        &foreign_key,
        "-out",
        &foreign,
    ]);
    assert!(ok, "{out}");
    let serial = format!("0x{}", s.serial);
    let (_, out) = openssl(&[
        "ocsp", "-issuer", &foreign, "-serial", &serial, "-url", &s.url, "-CAfile", &s.ca,
    ]);
    assert!(out.contains("unauthorized (6)"), "{out}");
    // The CA's own certificate is not a leaf it answers for: the root is not served.
    let (_, out) = openssl(&[
        "ocsp", "-issuer", &s.ca, "-serial", "0x01", "-url", &s.url, "-CAfile", &s.ca,
    ]);
    assert!(out.contains("unauthorized (6)"), "{out}");
}

/// The stored responses of `serial` once both CertIDs say `status` (a prefix), made by
/// the producer before anyone asked: (hash, status, DER) by hash.
async fn stored_once(app: &TestApp, serial: &str, status: &str) -> Vec<(String, String, Vec<u8>)> {
    use diesel::prelude::*;
    use hostca::db::schema::ocsp_responses as o;
    let start = Instant::now();
    loop {
        let rows: Vec<(String, String, Vec<u8>)> = o::table
            .filter(o::serial.eq(serial))
            .order(o::hash_alg.asc())
            .select((o::hash_alg, o::status, o::der))
            .load(&mut app.conn())
            .unwrap();
        if rows.len() == 2 && rows.iter().all(|r| r.1.starts_with(status)) {
            return rows;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no stored {status} responses for {serial} within 5 s: {:?}",
            rows.iter().map(|r| (&r.0, &r.1)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn responses_are_made_at_issue_and_revocation_and_an_edited_row_is_never_sent() {
    use diesel::prelude::*;
    use hostca::db::schema::{audit_events, ocsp_responses as o};
    let s = setup().await;
    // Made at issue, for both CertID hashes, before any request.
    let good = stored_once(&s.app, &s.serial, "good").await;
    assert_eq!(good[0].0, "sha1");
    assert_eq!(good[1].0, "sha256");
    // A GET without a nonce is those very bytes.
    let sha1 = s.request("req1.der", &["-no_nonce"]);
    let served = s.post(sha1.clone()).await.bytes().await.unwrap();
    assert_eq!(served.as_ref(), &good[0].2[..]);

    // Another certificate's (good, genuinely signed) response.
    let value = s.app.token_value("ocsp-b", "1").await;
    let (_k, csr) = openssl_csr(&s.app.scratch(), "b", "b.example.com", &[]);
    let (st, b) = s.app.enroll("b.example.com", &csr, Some(&value)).await;
    assert_eq!(st, 201, "{b}");
    let other = stored_once(&s.app, b["serial"].as_str().unwrap(), "good").await;

    // Made at revocation.
    let path = format!("/security/certificates/{}/revoke", s.serial);
    let r = s.app.post(&path, &[("reason", "key_compromise")]).await;
    assert_eq!(r.status(), 303);
    let revoked = stored_once(&s.app, &s.serial, "revoked").await;
    assert!(revoked[0].1.ends_with("key_compromise"), "{}", revoked[0].1);

    // Someone with the database but not the data directory puts the other certificate's
    // "good" into this one's row. A process that has nothing in memory (a restart, or the
    // second server) must refuse it, say so, and answer the truth.
    diesel::update(
        o::table
            .filter(o::serial.eq(&s.serial))
            .filter(o::hash_alg.eq("sha1")),
    )
    .set(o::der.eq(&other[0].2))
    .execute(&mut s.app.conn())
    .unwrap();
    let Setup {
        app,
        ca,
        issuer,
        leaf,
        serial,
        ..
    } = s;
    let app = app.restart().await;
    let url = app.browser.url("/ocsp");
    let der = ocsp_post(&url, sha1).await.bytes().await.unwrap();
    assert_ne!(der.as_ref(), &other[0].2[..], "the edited row was sent");
    let out = openssl_ocsp_verified(&app.scratch(), &der, &issuer, &leaf, &ca);
    assert!(
        out.contains(": revoked") && out.contains("Reason: keyCompromise"),
        "{out}"
    );
    let said: Vec<String> = audit_events::table
        .filter(audit_events::action.eq("ocsp_response_rejected"))
        .filter(audit_events::target.eq(&serial))
        .select(audit_events::description)
        .load(&mut app.conn())
        .unwrap();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].contains("MAC"), "{}", said[0]);
    // The row is whole again: what is stored is what was sent.
    let fixed = stored_once(&app, &serial, "revoked").await;
    assert_eq!(fixed[0].2, der.to_vec());
}
