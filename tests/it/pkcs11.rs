//! The issuing CA's key in a PKCS#11 token (SoftHSMv2): the first start generates it in
//! the token, non-extractable; enrollment, the CRL and a CA migration sign through it, and
//! openssl judges every certificate and CRL. Skipped when SoftHSMv2 is not installed,
//! unless HOSTCA_TEST_PKCS11=1 (CI), where its absence fails the test.

use serde_json::json;

use crate::common::{self, openssl, spawn_app_with};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

fn softhsm() -> Option<std::path::PathBuf> {
    if common::issuing_key_in_token() {
        // Every installation of this run already keeps its issuing key in CI's token;
        // this test's own token would need a second SOFTHSM2_CONF in one process.
        eprintln!(
            "the suites run with the issuing key in a token: this test's own token is skipped"
        );
        return None;
    }
    if !std::path::Path::new(MODULE).exists() {
        assert!(
            std::env::var("HOSTCA_TEST_PKCS11").is_err(),
            "HOSTCA_TEST_PKCS11 is set but SoftHSMv2 ({MODULE}) is missing"
        );
        eprintln!("SoftHSMv2 is not installed: skipping the PKCS#11 test");
        return None;
    }
    let dir = tempfile::tempdir().unwrap().keep();
    let out = std::process::Command::new("sh")
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/softhsm-token.sh"),
            dir.to_str().unwrap(),
            "hostca-it",
            "2468",
            "13579",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // This test binary's one PKCS#11 user: the variable only tells SoftHSM where its tokens are.
    std::env::set_var("SOFTHSM2_CONF", dir.join("softhsm2.conf"));
    let pin = dir.join("pin");
    std::fs::write(&pin, "2468\n").unwrap();
    Some(pin)
}

#[tokio::test]
async fn the_issuing_key_lives_in_a_pkcs11_token_and_signs_everything() {
    let Some(pin) = softhsm() else { return };
    let app = spawn_app_with(|c| {
        c.ca.issuing_key = Some("pkcs11:token=hostca-it;object=issuing-1".into());
        c.ca.pkcs11_module = Some(MODULE.into());
        c.ca.pkcs11_pin_file = Some(pin.clone());
    })
    .await;
    app.login().await;
    let set = app.ctx.pki.issuers();
    let signing = set.signing_row().clone();
    assert!(
        signing.key_location.starts_with("pkcs11:"),
        "{}",
        signing.key_location
    );
    assert!(signing.key_location.contains("object=issuing-1"));
    assert!(app
        .ctx
        .pki
        .signing()
        .signer()
        .unwrap()
        .describe()
        .contains("PKCS#11"));
    // /readyz asks the token.
    let health: serde_json::Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["signer"]["reachable"], true);
    assert!(
        health["signer"]["key"]
            .as_str()
            .unwrap()
            .contains("PKCS#11"),
        "{health}"
    );
    // No key file for the issuing CA: only the root's.
    assert_eq!(
        super::auth::ca_key_files_unchecked(&app.data_dir()).len(),
        1
    );

    let scratch = app.scratch();
    let bundle = scratch.join("bundle.pem");
    std::fs::write(&bundle, app.get_html("/ca.pem").await).unwrap();
    let token = app.token_value("hsm", "2").await;
    let (s, b) = app
        .enroll(
            "hsm.example.com",
            &common::quick_csr("hsm.example.com"),
            Some(&token),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let leaf = scratch.join("leaf.pem");
    std::fs::write(&leaf, b["certificate"].as_str().unwrap()).unwrap();
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        bundle.to_str().unwrap(),
        leaf.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");

    // A revocation: the CRL the token signed lists it, and openssl verifies it.
    let key = common::api_key(&app, "hsm").await;
    let serial = b["serial"].as_str().unwrap();
    let (s, r) = app
        .post_json_with_key(
            &key,
            &format!("/api/v1/certificates/{serial}/revoke"),
            &json!({"reason": "key_compromise"}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let crl = scratch.join("crl.pem");
    std::fs::write(
        &crl,
        app.get_html(&format!("/crl/{}.pem", signing.id)).await,
    )
    .unwrap();
    let (ok, out) = openssl(&[
        "crl",
        "-in",
        crl.to_str().unwrap(),
        "-CAfile",
        bundle.to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(ok && out.contains(serial), "{out}");
    let (ok, out) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        bundle.to_str().unwrap(),
        "-CRLfile",
        crl.to_str().unwrap(),
        leaf.to_str().unwrap(),
    ]);
    assert!(!ok && out.contains("revoked"), "{out}");

    // A restart opens the same key in the token.
    let app = app.restart().await;
    assert_eq!(app.ctx.pki.signing().sha256, signing.fingerprint_sha256);
    let (s, b) = app
        .enroll(
            "hsm2.example.com",
            &common::quick_csr("hsm2.example.com"),
            Some(&token),
        )
        .await;
    assert_eq!(s, 201, "{b}");
}
