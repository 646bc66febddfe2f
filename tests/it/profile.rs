//! The certificate profile (RFC 5280, RFC 8813, RFC 8410), judged by independent tools:
//! `openssl` always, and pkilint (`lint_pkix_cert`, `lint_crl`) when HOSTCA_PKILINT=1
//! (tests/pkilint.sh sets it; the lead's CI installs pkilint 0.13.3). Keys and CSRs are
//! made by the `openssl` command line, as a host would make them.

use crate::common;

use std::path::{Path, PathBuf};

use common::{openssl, spawn_app, spawn_app_with, TestApp};
use diesel::prelude::*;
use hostca::db::schema::{audit_events, certificates, hosts};
use hostca::services::pki::SERVER_HOST_ID;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

fn write(app: &TestApp, name: &str, data: &[u8]) -> String {
    let p = app.scratch().join(name);
    std::fs::write(&p, data).unwrap();
    p.display().to_string()
}

fn run(args: &[&str]) {
    let (ok, out) = openssl(args);
    assert!(ok, "openssl {}: {out}", args.join(" "));
}

/// A key of `kind` and a CSR for `cn` signed with it (`sign` is extra `openssl req`
/// arguments, e.g. the digest or PSS padding). Returns (key path, CSR PEM).
fn csr(dir: &Path, label: &str, kind: &str, cn: &str, sign: &[&str]) -> (PathBuf, String) {
    let key = dir.join(format!("{label}.key"));
    let csr = dir.join(format!("{label}.csr"));
    let k = key.to_str().unwrap();
    match kind {
        "P-256" | "P-384" | "P-521" => run(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            &format!("ec_paramgen_curve:{kind}"),
            "-out",
            k,
        ]),
        "Ed25519" | "Ed448" => run(&["genpkey", "-algorithm", kind, "-out", k]),
        "DSA" => {
            let params = dir.join(format!("{label}.params"));
            let params = params.to_str().unwrap();
            run(&[
                "genpkey",
                "-genparam",
                "-algorithm",
                "DSA",
                "-pkeyopt",
                "dsa_paramgen_bits:2048",
                "-out",
                params,
            ]);
            run(&["genpkey", "-paramfile", params, "-out", k]);
        }
        "RSA-PSS" => run(&[
            "genpkey",
            "-algorithm",
            "RSA-PSS",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            k,
        ]),
        rsa => {
            let bits = rsa.strip_prefix("RSA-").unwrap();
            run(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                &format!("rsa_keygen_bits:{bits}"),
                "-out",
                k,
            ])
        }
    }
    (key.clone(), csr_for_key(&key, &csr, cn, sign))
}

fn csr_for_key(key: &Path, out: &Path, cn: &str, sign: &[&str]) -> String {
    let mut args = vec![
        "req",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-out",
        out.to_str().unwrap(),
    ];
    let subj = format!("/CN={cn}");
    args.extend_from_slice(&["-subj", &subj]);
    args.extend_from_slice(sign);
    run(&args);
    std::fs::read_to_string(out).unwrap()
}

fn der_of(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents
}

/// What the profile checks read from a certificate.
#[derive(Debug)]
struct Profile {
    key_usage: Vec<&'static str>,
    key_usage_critical: bool,
    subject: String,
    subject_empty: bool,
    san_critical: bool,
    crl_dp: Vec<String>,
    ca_issuers: Vec<String>,
}

fn profile(pem: &str) -> Profile {
    let der = der_of(pem);
    let (_, x) = X509Certificate::from_der(&der).unwrap();
    let mut p = Profile {
        key_usage: Vec::new(),
        key_usage_critical: false,
        subject: x.subject().to_string(),
        subject_empty: x.subject().iter().next().is_none(),
        san_critical: false,
        crl_dp: Vec::new(),
        ca_issuers: Vec::new(),
    };
    for ext in x.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::KeyUsage(ku) => {
                p.key_usage_critical = ext.critical;
                for (on, name) in [
                    (ku.digital_signature(), "digitalSignature"),
                    (ku.non_repudiation(), "nonRepudiation"),
                    (ku.key_encipherment(), "keyEncipherment"),
                    (ku.data_encipherment(), "dataEncipherment"),
                    (ku.key_agreement(), "keyAgreement"),
                    (ku.key_cert_sign(), "keyCertSign"),
                    (ku.crl_sign(), "cRLSign"),
                ] {
                    if on {
                        p.key_usage.push(name);
                    }
                }
            }
            ParsedExtension::SubjectAlternativeName(_) => p.san_critical = ext.critical,
            ParsedExtension::CRLDistributionPoints(dps) => {
                for dp in dps.iter() {
                    if let Some(DistributionPointName::FullName(names)) = &dp.distribution_point {
                        for n in names {
                            if let GeneralName::URI(u) = n {
                                p.crl_dp.push(u.to_string());
                            }
                        }
                    }
                }
            }
            ParsedExtension::AuthorityInfoAccess(aia) => {
                for d in &aia.accessdescs {
                    if d.access_method.to_id_string() == "1.3.6.1.5.5.7.48.2" {
                        if let GeneralName::URI(u) = &d.access_location {
                            p.ca_issuers.push(u.to_string());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    p
}

fn pkilint_enabled() -> bool {
    std::env::var("HOSTCA_PKILINT").is_ok_and(|v| v == "1")
}

/// Runs a pkilint command on `file` and fails on every ERROR or FATAL finding, but one:
/// `pkix.invalid_uri_syntax` on a `urn:uuid:` URI in the subjectAltName. That finding is
/// a false positive of pkilint's URI checker, which wants an authority (a host) in every
/// URI; RFC 3986 allows URIs without one, and RFC 4122 defines `urn:uuid:` (the host ID).
fn pkilint(args: &[&str], file: &str) {
    if !pkilint_enabled() {
        return;
    }
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .args(["-s", "ERROR", "-f", "JSON", file])
        .output()
        .unwrap_or_else(|e| panic!("HOSTCA_PKILINT=1 but {} does not run: {e}", args[0]));
    let text = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| {
        panic!(
            "{} {file}: not JSON: {text}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut bad = Vec::new();
    for result in report["results"].as_array().unwrap() {
        let path = result["node_path"].as_str().unwrap_or_default();
        for f in result["finding_descriptions"].as_array().unwrap() {
            let code = f["code"].as_str().unwrap_or_default();
            let message = f["message"].as_str().unwrap_or_default();
            let known_false_positive = code == "pkix.invalid_uri_syntax"
                && path.contains("subjectAltName")
                && path.ends_with("uniformResourceIdentifier")
                && message.contains("\"urn:uuid:");
            if !known_false_positive {
                bad.push(format!("{path}: {code} ({}) {message}", f["severity"]));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} {file} reports:\n{}",
        args.join(" "),
        bad.join("\n")
    );
}

fn lint_cert(file: &str) {
    pkilint(&["lint_pkix_cert", "lint"], file);
}

fn lint_crl(file: &str) {
    pkilint(&["lint_crl", "lint", "-t", "CRL", "-p", "PKIX"], file);
}

async fn enroll_ok(app: &TestApp, name: &str, csr: &str, token: &str) -> serde_json::Value {
    let (status, body) = app.enroll(name, csr, Some(token)).await;
    assert_eq!(status, 201, "{name}: {body}");
    body
}

#[tokio::test]
async fn every_accepted_key_type_enrolls_with_the_key_usages_of_its_type() {
    let app = spawn_app().await;
    app.login().await;
    let token = app.token_value("profile", "10").await;
    let dir = app.scratch();
    let ca = write(&app, "ca.pem", app.ctx.pki.bundle_pem().as_bytes());
    let public = app.ctx.site.public_url.clone();
    assert!(public.starts_with("http://127.0.0.1:"), "{public}");

    let (_, p256) = csr(&dir, "p256", "P-256", "x", &["-sha256"]);
    let (_, p384) = csr(&dir, "p384", "P-384", "x", &["-sha384"]);
    let (_, ed) = csr(&dir, "ed", "Ed25519", "x", &[]);
    let (rsa_key, rsa) = csr(&dir, "rsa", "RSA-2048", "x", &["-sha256"]);
    // openssl's default PSS salt is as long as the key allows (222 bytes here); ring alone
    // only verifies a salt as long as the hash. Both must be accepted.
    let pss_max = csr_for_key(
        &rsa_key,
        &dir.join("pss-max.csr"),
        "x",
        &["-sha256", "-sigopt", "rsa_padding_mode:pss"],
    );
    let pss_digest = csr_for_key(
        &rsa_key,
        &dir.join("pss-digest.csr"),
        "x",
        &[
            "-sha384",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:digest",
        ],
    );
    let cases: [(&str, &str, &str, &[&str]); 6] = [
        (
            "p256.example.com",
            &p256,
            "ECDSA P-256",
            &["digitalSignature"],
        ),
        (
            "p384.example.com",
            &p384,
            "ECDSA P-384",
            &["digitalSignature"],
        ),
        ("ed25519.example.com", &ed, "Ed25519", &["digitalSignature"]),
        (
            "rsa.example.com",
            &rsa,
            "RSA-2048",
            &["digitalSignature", "keyEncipherment"],
        ),
        (
            "pss.example.com",
            &pss_max,
            "RSA-2048 PSS",
            &["digitalSignature", "keyEncipherment"],
        ),
        (
            "pss-digest.example.com",
            &pss_digest,
            "RSA-2048 PSS",
            &["digitalSignature", "keyEncipherment"],
        ),
    ];
    for (name, csr, what, usages) in cases {
        let body = enroll_ok(&app, name, csr, &token).await;
        let pem = body["certificate"].as_str().unwrap();
        let file = write(&app, &format!("{name}.pem"), pem.as_bytes());
        let (ok, out) = openssl(&["verify", "-CAfile", &ca, &file]);
        assert!(ok, "{what}: {out}");
        let p = profile(pem);
        assert_eq!(p.key_usage, usages, "{what}");
        assert!(p.key_usage_critical, "{what}");
        assert_eq!(p.subject, format!("CN={name}"), "{what}");
        assert!(!p.san_critical, "{what}: a subject is present");
        let id = app.ctx.pki.signing().id;
        assert_eq!(p.crl_dp, vec![format!("{public}/crl/{id}")], "{what}");
        assert_eq!(
            p.ca_issuers,
            vec![format!("{public}/ca/{id}.crt")],
            "{what}"
        );
        lint_cert(&file);
    }

    // The CA certificate: certificates and CRLs, nothing else.
    let ca_profile = profile(&app.ctx.pki.signing().cert_pem);
    assert_eq!(ca_profile.key_usage, ["keyCertSign", "cRLSign"]);
    assert!(ca_profile.key_usage_critical);
    // pkilint reads one certificate a file: the signing CA alone, not the whole bundle.
    lint_cert(&write(
        &app,
        "signing-ca.pem",
        app.ctx.pki.signing().cert_pem.as_bytes(),
    ));
}

#[tokio::test]
async fn every_refused_key_type_gets_a_400_that_names_it() {
    let app = spawn_app().await;
    app.login().await;
    let token = app.token_value("refused", "10").await;
    let dir = app.scratch();
    let (_, p521) = csr(&dir, "p521", "P-521", "x", &["-sha512"]);
    let (_, ed448) = csr(&dir, "ed448", "Ed448", "x", &[]);
    let (_, dsa) = csr(&dir, "dsa", "DSA", "x", &["-sha256"]);
    let (_, rsa1024) = csr(&dir, "rsa1024", "RSA-1024", "x", &["-sha256"]);
    let (rsa_key, sha1) = csr(&dir, "sha1", "RSA-2048", "x", &["-sha1"]);
    let (_, pss_only) = csr(&dir, "pssonly", "RSA-PSS", "x", &["-sha256"]);
    let (p256_key, ecdsa_sha512) = csr(&dir, "p256", "P-256", "x", &["-sha512"]);
    let pss_sha1 = csr_for_key(
        &rsa_key,
        &dir.join("pss-sha1.csr"),
        "x",
        &["-sha1", "-sigopt", "rsa_padding_mode:pss"],
    );
    let mut cases: Vec<(&str, String, &[&str])> = vec![
        ("P-521", p521, &["ECDSA P-521"]),
        ("Ed448", ed448, &["Ed448"]),
        ("DSA", dsa, &["DSA"]),
        ("RSA-1024", rsa1024, &["RSA-1024", "at least 2048 bits"]),
        ("SHA-1", sha1, &["RSA-2048", "SHA-1"]),
        ("PSS over SHA-1", pss_sha1, &["RSA-PSS", "SHA-1"]),
        (
            "RSA-PSS-only key",
            pss_only,
            &["RSA-PSS-only keys are not supported; use an rsaEncryption key signed with PSS"],
        ),
        ("ECDSA SHA-512", ecdsa_sha512, &["ECDSA P-256", "SHA-512"]),
    ];
    // MD5, if this openssl still signs with it.
    let md5_out = dir.join("md5.csr");
    let md5 = std::process::Command::new("openssl")
        .args(["req", "-new", "-md5", "-subj", "/CN=x", "-key"])
        .arg(&rsa_key)
        .arg("-out")
        .arg(&md5_out)
        .output()
        .unwrap();
    if md5.status.success() {
        cases.push(("MD5", std::fs::read_to_string(&md5_out).unwrap(), &["MD5"]));
    }
    // An attacker's CSR: a valid P-256 request whose signature was altered.
    let good = csr_for_key(&p256_key, &dir.join("good.csr"), "x", &["-sha256"]);
    let mut der = der_of(&good);
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let forged = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        base64_lines(&der)
    );
    cases.push(("forged", forged, &["does not verify"]));
    // And a PSS one: the PSS check is hostca's own code, so it gets its own forgery.
    let pss = csr_for_key(
        &rsa_key,
        &dir.join("pss.csr"),
        "x",
        &["-sha256", "-sigopt", "rsa_padding_mode:pss"],
    );
    let mut der = der_of(&pss);
    let at = der.len() - 40;
    der[at] ^= 0x80;
    let forged_pss = format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        base64_lines(&der)
    );
    cases.push(("forged PSS", forged_pss, &["does not verify"]));

    for (i, (what, csr, says)) in cases.iter().enumerate() {
        let name = format!("refused{i}.example.com");
        let (status, body) = app.enroll(&name, csr, Some(&token)).await;
        assert_eq!(status, 400, "{what}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        for s in *says {
            assert!(message.contains(s), "{what}: {message}");
        }
        if *what != "forged" && *what != "forged PSS" {
            assert!(
                message.contains("hostca accepts ECDSA P-256 or P-384, Ed25519"),
                "{what}: says what is accepted: {message}"
            );
        }
    }
    let issued: i64 = certificates::table
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    assert_eq!(issued, 0, "nothing was issued");
    // Refusals are aggregated per source and minute: count their occurrences.
    hostca::services::audit::flush_refusals(&app.ctx).unwrap();
    let refusals: Vec<i64> = audit_events::table
        .filter(audit_events::category.eq("CERT"))
        .filter(audit_events::outcome.eq("failure"))
        .select(audit_events::occurrences)
        .load(&mut *app.conn())
        .unwrap();
    assert_eq!(
        refusals.iter().sum::<i64>() as usize,
        cases.len(),
        "every refusal is audited"
    );
    // The token paid for nothing.
    let (_, ok) = csr(&dir, "after", "P-256", "x", &[]);
    enroll_ok(&app, "after.example.com", &ok, &token).await;
}

fn base64_lines(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    b64.as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_primary_name_over_64_characters_lives_only_in_a_critical_san() {
    let app = spawn_app().await;
    app.login().await;
    let token = app.token_value("long", "2").await;
    let dir = app.scratch();
    let long = format!("{}.{}.example.com", "a".repeat(40), "b".repeat(12));
    assert_eq!(long.len(), 65);
    let exact = format!("{}.{}.example.com", "c".repeat(40), "d".repeat(11));
    assert_eq!(exact.len(), 64);

    let (_, c) = csr(&dir, "long", "P-256", "x", &[]);
    let body = enroll_ok(&app, &long, &c, &token).await;
    let pem = body["certificate"].as_str().unwrap();
    let p = profile(pem);
    assert!(p.subject_empty, "no CN over 64 characters: {}", p.subject);
    assert!(p.san_critical, "an empty subject makes the SAN critical");
    let (_, text) = openssl(&[
        "x509",
        "-noout",
        "-ext",
        "subjectAltName",
        "-in",
        &write(&app, "long.pem", pem.as_bytes()),
    ]);
    assert!(text.contains(&format!("DNS:{long}")), "{text}");
    let stored: String = certificates::table
        .filter(certificates::serial.eq(body["serial"].as_str().unwrap()))
        .select(certificates::subject)
        .first(&mut *app.conn())
        .unwrap();
    assert_eq!(stored, "", "the stored subject is the certificate's: empty");
    lint_cert(&write(&app, "long.pem", pem.as_bytes()));

    let (_, c) = csr(&dir, "exact", "P-256", "x", &[]);
    let body = enroll_ok(&app, &exact, &c, &token).await;
    let p = profile(body["certificate"].as_str().unwrap());
    assert_eq!(p.subject, format!("CN={exact}"));
    assert!(!p.san_critical);
}

#[tokio::test]
async fn openssl_downloads_the_crl_from_the_distribution_point() {
    let app = spawn_app().await;
    app.login().await;
    let token = app.token_value("dp", "1").await;
    let (_, c) = csr(&app.scratch(), "dp", "P-256", "x", &[]);
    let body = enroll_ok(&app, "dp.example.com", &c, &token).await;
    let leaf = write(
        &app,
        "dp.pem",
        body["certificate"].as_str().unwrap().as_bytes(),
    );
    let ca = write(&app, "ca.pem", app.ctx.pki.bundle_pem().as_bytes());
    // openssl fetches the CRL from this server: off the runtime's threads.
    let verify = |ca: String, leaf: String| {
        tokio::task::spawn_blocking(move || {
            openssl(&[
                "verify",
                "-crl_download",
                "-crl_check",
                "-CAfile",
                &ca,
                &leaf,
            ])
        })
    };
    let (ok, out) = verify(ca.clone(), leaf.clone()).await.unwrap();
    assert!(ok && out.contains(": OK"), "{out}");

    // The caIssuers location serves the CA certificate as one DER certificate.
    let r = app.get("/ca.crt").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pkix-cert");
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        app.ctx.pki.signing().cert_der
    );

    let serial = body["serial"].as_str().unwrap();
    let r = app
        .post(
            &format!("/security/certificates/{serial}/revoke"),
            &[("reason", "key_compromise")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let (ok, out) = verify(ca, leaf).await.unwrap();
    assert!(!ok && out.contains("certificate revoked"), "{out}");
}

#[tokio::test]
async fn a_crl_with_every_reason_passes_the_profile() {
    let app = spawn_app().await;
    app.login().await;
    let reasons = [
        "unspecified",
        "key_compromise",
        "ca_compromise",
        "affiliation_changed",
        "superseded",
        "cessation_of_operation",
    ];
    let token = app.token_value("reasons", "6").await;
    for (i, reason) in reasons.iter().enumerate() {
        let (_, c) = csr(&app.scratch(), &format!("r{i}"), "P-256", "x", &[]);
        let body = enroll_ok(&app, &format!("r{i}.example.com"), &c, &token).await;
        let serial = body["serial"].as_str().unwrap();
        let r = app
            .post(
                &format!("/security/certificates/{serial}/revoke"),
                &[("reason", reason)],
            )
            .await;
        assert_eq!(r.status(), 303, "{reason}");
    }
    let der = app.get("/crl").await.bytes().await.unwrap();
    let file = write(&app, "crl.der", &der);
    let ca = write(&app, "ca.pem", app.ctx.pki.bundle_pem().as_bytes());
    let (ok, out) = openssl(&[
        "crl", "-inform", "DER", "-in", &file, "-CAfile", &ca, "-noout", "-text",
    ]);
    assert!(ok && out.contains("verify OK"), "{out}");
    for label in [
        "Key Compromise",
        "CA Compromise",
        "Affiliation Changed",
        "Superseded",
        "Cessation Of Operation",
    ] {
        assert!(out.contains(label), "{label}: {out}");
    }
    assert_eq!(out.matches("Serial Number:").count(), 6, "{out}");
    lint_crl(&file);
    // And an empty CRL (a fresh CA).
    let fresh = spawn_app().await;
    let der = fresh.get("/crl").await.bytes().await.unwrap();
    lint_crl(&write(&fresh, "empty.der", &der));
}

#[test]
fn a_country_is_two_letters_encoded_as_a_printable_string() {
    let now = hostca::db::now();
    for bad in [
        "CN=Test CA,C=USA",
        "CN=Test CA,C=U1",
        "CN=Test CA,C=",
        "CN=Test CA,C=Ü",
    ] {
        let e = hostca::pki::ca::Ca::create_legacy(bad, now)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("C=") && (e.contains("two-letter") || e.contains("empty")),
            "{bad}: {e}"
        );
    }
    let long_cn = format!("CN={}", "x".repeat(65));
    let e = hostca::pki::ca::Ca::create_legacy(&long_cn, now)
        .unwrap_err()
        .to_string();
    assert!(e.contains("64"), "{e}");

    let ca = hostca::pki::ca::Ca::create_legacy("CN=Test CA,O=Example,C=us", now).unwrap();
    let (_, x) = X509Certificate::from_der(&ca.cert_der).unwrap();
    let country = x.subject().iter_country().next().expect("a country");
    assert_eq!(
        country.attr_value().tag(),
        x509_parser::der_parser::asn1_rs::Tag::PrintableString
    );
    assert_eq!(country.as_str().unwrap(), "US");
    let (_, text) = openssl(&["x509", "-noout", "-subject", "-in", &{
        let p = std::env::temp_dir().join(format!("hostca-c-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&p, &ca.cert_pem).unwrap();
        p.display().to_string()
    }]);
    assert!(text.contains("C = US"), "{text}");
}

#[tokio::test]
async fn a_ca_name_with_a_three_letter_country_stops_the_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _pg) = common::fresh_database();
    let mut config = common::test_config(dir.path().join("data"), url.clone());
    config.ca.name = Some("CN=Test CA,C=USA".into());
    let e = hostca::startup::Application::build(&config)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("C=USA") && e.contains("two-letter"), "{e}");
    if let Some(base) = std::env::var("HOSTCA_TEST_DATABASE_URL")
        .ok()
        .filter(|b| !b.is_empty())
    {
        if let Some(name) = url.as_deref().and_then(|u| u.rsplit('/').next()) {
            use diesel::connection::SimpleConnection;
            if let Ok(mut c) = diesel::PgConnection::establish(&base) {
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        }
    }
}

/// The PEM of the certificate a TLS server presents.
fn presented_certificate(port: u16) -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let end = text.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    format!("{}\n", &text[start..end])
}

fn serial_of(pem: &str) -> String {
    let der = der_of(pem);
    let (_, x) = X509Certificate::from_der(&der).unwrap();
    hostca::pki::serial_hex(x.raw_serial())
}

#[tokio::test]
async fn the_server_tls_certificate_is_recorded_shown_revocable_and_audited() {
    let app = spawn_app_with(|c| c.tls = true).await;
    app.login().await;
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();
    let presented = tokio::task::spawn_blocking(move || presented_certificate(port))
        .await
        .unwrap();
    let serial = serial_of(&presented);

    let (host_id, pem, names): (String, String, String) = certificates::table
        .filter(certificates::serial.eq(&serial))
        .select((
            certificates::host_id,
            certificates::pem,
            certificates::names,
        ))
        .first(&mut *app.conn())
        .expect("the TLS certificate is in the certificates table");
    assert_eq!(host_id, SERVER_HOST_ID);
    assert_eq!(der_of(&pem), der_of(&presented));
    assert!(names.split(',').any(|n| n == "localhost"), "{names}");
    let p = profile(&pem);
    assert_eq!(p.key_usage, ["digitalSignature"], "a P-256 leaf");
    assert_eq!(
        p.crl_dp,
        vec![format!(
            "{}/crl/{}",
            app.ctx.site.public_url,
            app.ctx.pki.signing().id
        )]
    );
    let audited: Vec<String> = audit_events::table
        .filter(audit_events::action.eq("issue_tls"))
        .filter(audit_events::target.eq(&serial))
        .select(audit_events::description)
        .load(&mut *app.conn())
        .unwrap();
    assert_eq!(audited.len(), 1, "{audited:?}");

    let ca_page = app.get_html("/security/ca").await;
    assert!(ca_page.contains("Server TLS certificates") && ca_page.contains(&serial));
    let list = app.get_html("/security/certificates").await;
    assert!(
        list.contains(&serial),
        "listed with every other certificate"
    );
    let host = app
        .get_html(&format!("/security/hosts/{SERVER_HOST_ID}"))
        .await;
    assert!(host.contains("hostca server") && host.contains(&serial));

    let r = app
        .post(
            &format!("/security/certificates/{serial}/revoke"),
            &[("reason", "key_compromise")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let crl = app.get("/crl").await.bytes().await.unwrap();
    let crl_file = write(&app, "crl.der", &crl);
    let (_, text) = openssl(&["crl", "-inform", "DER", "-in", &crl_file, "-noout", "-text"]);
    assert!(text.contains(&format!("Serial Number: {serial}")), "{text}");
    let revoke_audited: i64 = audit_events::table
        .filter(audit_events::action.eq("revoke"))
        .filter(audit_events::target.eq(&serial))
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    assert_eq!(revoke_audited, 1);

    // Nobody gets a certificate as the server: its host name is no host name, and its
    // renewal needs the TLS key, which never leaves the server's memory.
    let (_, c) = csr(&app.scratch(), "imposter", "P-256", "x", &[]);
    let (status, body) = app.enroll("(hostca server)", &c, None).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = app
        .post_json(
            "/api/v1/certificates/renew",
            &serde_json::json!({"host_id": SERVER_HOST_ID, "csr": c}),
        )
        .await;
    // 400: no nonce in the CSR; with one it would be 403, not the TLS key.
    assert!(matches!(status, 400 | 403 | 409), "{status} {body}");
    // Nor through an administrator: no reissue token, mapping or auto-reissue window for it.
    let r = app
        .post(
            &format!("/security/hosts/{SERVER_HOST_ID}/reissue-token"),
            &[
                ("name", "server-reissue"),
                ("valid_for", "1d"),
                ("reason", "x"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422, "reissue token for the server");
    let r = app
        .post(
            &format!("/security/hosts/{SERVER_HOST_ID}/mappings"),
            &[("name", "alias.example.com")],
        )
        .await;
    assert_eq!(r.status(), 422, "mapping for the server");
    let r = app
        .post(
            &format!("/security/hosts/{SERVER_HOST_ID}/auto-reissue"),
            &[("action", "allow")],
        )
        .await;
    assert_eq!(r.status(), 422, "auto-reissue window for the server");

    // A restart issues a new certificate for the same reserved host.
    let app = app.restart().await;
    let server_rows: i64 = certificates::table
        .filter(certificates::host_id.eq(SERVER_HOST_ID))
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    assert_eq!(server_rows, 2);
    let host_rows: i64 = hosts::table
        .filter(hosts::host_id.eq(SERVER_HOST_ID))
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    assert_eq!(host_rows, 1);
}

#[tokio::test]
async fn the_server_tls_certificate_for_public_names_passes_the_profile() {
    // pkilint reads a single-label name (localhost, a bare host name) as an invalid
    // domain name; this server is named as it would be on a network.
    let app = spawn_app_with(|c| {
        c.tls = true;
        c.tls_names = vec!["hostca.example.com".into(), "127.0.0.1".into()];
    })
    .await;
    let pem: String = certificates::table
        .filter(certificates::host_id.eq(SERVER_HOST_ID))
        .select(certificates::pem)
        .first(&mut *app.conn())
        .unwrap();
    let p = profile(&pem);
    assert_eq!(p.subject, "CN=hostca.example.com");
    assert_eq!(
        p.ca_issuers,
        vec![format!(
            "{}/ca/{}.crt",
            app.ctx.site.public_url,
            app.ctx.pki.signing().id
        )]
    );
    lint_cert(&write(&app, "tls.pem", pem.as_bytes()));
}

#[tokio::test]
async fn the_root_the_issuing_cas_and_the_arl_pass_the_profile() {
    let app = spawn_app().await;
    app.login().await;
    let set = app.ctx.pki.issuers();
    let (root, issuing) = (&set.issuers[0], &set.issuers[1]);
    let root_file = write(&app, "root.pem", root.row.cert_pem.as_bytes());
    let issuing_file = write(&app, "issuing.pem", issuing.row.cert_pem.as_bytes());
    // The root: a CA of one level below it, certificates and CRLs only.
    let (_, text) = openssl(&["x509", "-in", &root_file, "-noout", "-text"]);
    assert!(text.contains("CA:TRUE, pathlen:1"), "{text}");
    assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
    lint_cert(&root_file);
    // The issuing CA: signed by the root, pathLen 0, naming the root's key.
    let (ok, out) = openssl(&["verify", "-CAfile", &root_file, &issuing_file]);
    assert!(ok, "{out}");
    let (_, text) = openssl(&["x509", "-in", &issuing_file, "-noout", "-text"]);
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    assert!(text.contains("Authority Key Identifier"), "{text}");
    lint_cert(&issuing_file);
    // The root's ARL: signed by the root, empty, a year long.
    let arl = app
        .get(&format!("/crl/{}", root.row.id))
        .await
        .bytes()
        .await
        .unwrap();
    let arl_file = write(&app, "root.arl", &arl);
    let (ok, out) = openssl(&[
        "crl", "-inform", "DER", "-in", &arl_file, "-CAfile", &root_file, "-noout", "-text",
    ]);
    assert!(
        ok && out.contains("verify OK") && out.contains("No Revoked Certificates"),
        "{out}"
    );
    pkilint(&["lint_crl", "lint", "-t", "ARL", "-p", "PKIX"], &arl_file);

    // A migration once allowed domains are set: the new issuing CA is name-constrained,
    // and still passes the profile.
    app.set_allowed_domains("example.com");
    let admin = hostca::services::Actor {
        username: "admin".into(),
        role: hostca::models::kinds::Role::Administrator,
    };
    let m = hostca::services::ca_migration::initiate(
        &app.ctx,
        &admin,
        &hostca::services::ca_migration::InitiateRequest {
            reason: "name constraints".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let set = app.ctx.pki.issuers();
    let constrained = set.get(m.to_issuer_id).unwrap();
    let file = write(&app, "constrained.pem", constrained.row.cert_pem.as_bytes());
    let (_, text) = openssl(&["x509", "-in", &file, "-noout", "-text"]);
    assert!(text.contains("X509v3 Name Constraints: critical"), "{text}");
    assert!(text.contains("DNS:example.com"), "{text}");
    assert_eq!(constrained.ca.permitted_dns, ["example.com"]);
    let (ok, out) = openssl(&["verify", "-CAfile", &root_file, &file]);
    assert!(ok, "{out}");
    lint_cert(&file);
}
