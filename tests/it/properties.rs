//! Property tests: the parsers that take hostile input never panic, and keep their
//! promises on whatever they accept. The same properties are fuzz targets in fuzz/.

use crate::common;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn token_values_parse_without_panicking(s in "\\PC{0,80}") {
        if let Some(c) = hostca::token_value::canonical(&s) {
            prop_assert_eq!(c.len(), 29);
            prop_assert_eq!(hostca::token_value::canonical(&c), Some(c.clone()));
        }
    }

    #[test]
    fn token_values_survive_case_and_separators(upper in proptest::bool::ANY, sep in "[ -]{0,2}") {
        let v = hostca::token_value::generate();
        let typed: String = v.split('-').collect::<Vec<_>>().join(&sep);
        let typed = if upper { typed } else { typed.to_lowercase() };
        prop_assert_eq!(hostca::token_value::canonical(&typed), Some(v));
    }

    #[test]
    fn durations_parse_without_panicking(s in "\\PC{0,40}") {
        if let Ok(d) = hostca::valid_for::parse(&s) {
            prop_assert!(d.num_minutes() >= 1 && d.num_minutes() <= 999 * 1440);
        }
    }

    #[test]
    fn durations_mean_what_they_say(d in 0i64..999, h in 0i64..24, m in 0i64..60) {
        let minutes = d * 1440 + h * 60 + m;
        let text = format!("{d}d{h}h{m}m");
        match hostca::valid_for::parse(&text) {
            Ok(x) => prop_assert_eq!(x.num_minutes(), minutes),
            Err(_) => prop_assert!(!(1..=999 * 1440).contains(&minutes)),
        }
    }

    #[test]
    fn csrs_never_panic(s in "\\PC{0,400}") {
        let _ = hostca::pki::csr::verify_pem(&s);
        let armored = format!("-----BEGIN CERTIFICATE REQUEST-----\n{s}\n-----END CERTIFICATE REQUEST-----\n");
        let _ = hostca::pki::csr::verify_pem(&armored);
    }

    #[test]
    fn der_csrs_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = hostca::pki::csr::verify_der(&bytes);
    }

    #[test]
    fn host_names_normalize_idempotently(s in "\\PC{0,80}") {
        if let Ok(n) = hostca::services::hosts::normalize_hostname(&s) {
            prop_assert_eq!(hostca::services::hosts::normalize_hostname(&n), Ok(n.clone()));
            prop_assert!(n.len() <= 253 && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'));
        }
    }
}

/// Random form bodies and JSON bodies against the running server: never a 500.
#[tokio::test]
async fn decoders_never_answer_500() {
    let app = common::spawn_app().await;
    app.login().await;
    let csrf = app.csrf().await;
    let mut runner = TestRunner::default();
    let fields = proptest::collection::vec(("\\PC{0,12}", "\\PC{0,40}"), 0..6);
    let raw = proptest::collection::vec(any::<u8>(), 0..200);
    let json_text = "\\PC{0,120}";
    for _ in 0..60 {
        let pairs = fields.new_tree(&mut runner).unwrap().current();
        let mut form: Vec<(String, String)> = vec![("csrf_token".into(), csrf.clone())];
        form.extend(pairs);
        for path in [
            "/security/tokens",
            "/security/settings",
            "/security/hosts",
            "/admin/users",
            "/security/tokens/delete",
        ] {
            let r = app
                .client
                .post(app.url(path))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert!(r.status().as_u16() < 500, "{path} {form:?}: {}", r.status());
        }
        let bytes = raw.new_tree(&mut runner).unwrap().current();
        let r = app
            .client
            .post(app.url("/security/tokens"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        assert!(r.status().as_u16() < 500);
        let text = json_text.new_tree(&mut runner).unwrap().current();
        for body in [text.clone().into_bytes(), bytes] {
            for path in ["/api/v1/certificates", "/api/v1/certificates/renew"] {
                let r = app
                    .client
                    .post(app.url(path))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().as_u16() < 500, "{path} {text:?}: {}", r.status());
            }
        }
        let v: serde_json::Value =
            serde_json::json!({"hostname": text, "csr": text, "token": text});
        let (s, _) = app.post_json("/api/v1/certificates", &v).await;
        assert!((400..500).contains(&s));
    }
}
