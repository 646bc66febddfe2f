//! The name policy: only names an administrator allowed ever go into a certificate.
//! Allowed domains, reserved names (the server's own included), addresses and
//! single-label names, the reissue-token ordering, and the medium level's name lookup.

use crate::common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::{element_text, openssl, openssl_csr, spawn_app, spawn_app_with, status, TestApp};
use diesel::prelude::*;
use hostca::db::schema::{audit_events, host_mappings, hosts, settings, tokens};

fn set_policy(app: &TestApp, allowed: &str, reserved: &str) {
    app.change_settings(|s| {
        s.allowed_domains = allowed.into();
        s.reserved_names = reserved.into();
    });
}

fn mapping_state(app: &TestApp, name: &str) -> Option<String> {
    host_mappings::table
        .filter(host_mappings::name.eq(name))
        .select(host_mappings::state)
        .first(&mut *app.conn())
        .optional()
        .unwrap()
}

fn host_count(app: &TestApp) -> i64 {
    hosts::table.count().get_result(&mut *app.conn()).unwrap()
}

fn token_uses(app: &TestApp, name: &str) -> i32 {
    tokens::table
        .filter(tokens::name.eq(name))
        .select(tokens::uses)
        .first(&mut *app.conn())
        .unwrap()
}

/// Failed audit events whose description contains `text`.
/// Refusals of unauthenticated requests are aggregated per source and minute: the open
/// minute is written first.
fn failed_events(app: &TestApp, category: &str, text: &str) -> i64 {
    hostca::services::audit::flush_refusals(&app.ctx).unwrap();
    audit_events::table
        .filter(audit_events::category.eq(category))
        .filter(audit_events::outcome.ne("success"))
        .filter(audit_events::description.like(format!("%{text}%")))
        .count()
        .get_result(&mut *app.conn())
        .unwrap()
}

/// A one-use token for `name`, and the enrollment's (status, body).
async fn enroll_with_token(app: &TestApp, name: &str, extra: &[&str]) -> (u16, serde_json::Value) {
    let token = format!("t-{}", uuid::Uuid::new_v4().simple());
    let value = app.token_value(&token, "1").await;
    let (_k, csr) = openssl_csr(&app.scratch(), &token, name, extra);
    app.enroll(name, &csr, Some(&value)).await
}

/// `openssl x509 -text` of an issued certificate: the independent reading.
fn cert_text(app: &TestApp, body: &serde_json::Value) -> String {
    let p = app
        .scratch()
        .join(format!("{}.pem", body["serial"].as_str().unwrap()));
    std::fs::write(&p, body["certificate"].as_str().unwrap()).unwrap();
    let (ok, text) = openssl(&["x509", "-in", p.to_str().unwrap(), "-noout", "-text"]);
    assert!(ok, "{text}");
    text
}

fn san_line(text: &str) -> String {
    let at = text
        .find("X509v3 Subject Alternative Name")
        .expect("a SAN extension");
    text[at..].lines().nth(1).unwrap_or("").trim().to_string()
}

/// The SAN entries as openssl prints them (`DNS:a.example.com`, `IP Address:10.0.0.5`).
fn sans(line: &str) -> Vec<String> {
    line.split(", ").map(str::to_string).collect()
}

#[tokio::test]
async fn a_csr_cannot_add_the_servers_own_names_localhost_or_an_address() {
    let app = spawn_app_with(|c| c.tls_names = vec!["ca.example.com".into()]).await;
    app.login().await;
    set_policy(&app, "example.com", "");
    let (s, body) = enroll_with_token(
        &app,
        "web.example.com",
        &["ca.example.com", "localhost", "10.0.0.5", "www.example.com"],
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let sans = san_line(&cert_text(&app, &body));
    assert!(sans.contains("DNS:web.example.com"), "{sans}");
    assert!(
        sans.contains("DNS:www.example.com"),
        "a name in the allowed domains is approved: {sans}"
    );
    for bad in ["ca.example.com", "localhost", "10.0.0.5"] {
        assert!(!sans.contains(bad), "{bad} must not be certified: {sans}");
    }
    assert_eq!(
        mapping_state(&app, "ca.example.com"),
        None,
        "never recorded"
    );
    assert_eq!(mapping_state(&app, "localhost"), None, "never recorded");
    assert_eq!(
        mapping_state(&app, "10.0.0.5").as_deref(),
        Some("pending"),
        "an address waits for an administrator"
    );
    let issued: String = audit_events::table
        .filter(audit_events::action.eq("issue"))
        .select(audit_events::description)
        .first(&mut *app.conn())
        .unwrap();
    assert!(
        issued.contains("ca.example.com") && issued.contains("localhost"),
        "the ignored names are audited: {issued}"
    );

    // Asking for the server's own name outright: refused, audited, the token kept.
    let value = app.token_value("own-name", "1").await;
    let (_k, csr) = openssl_csr(&app.scratch(), "own", "ca.example.com", &[]);
    let (s, body) = app.enroll("ca.example.com", &csr, Some(&value)).await;
    assert_eq!(s, 422, "{body}");
    assert!(body["message"].as_str().unwrap().contains("reserved"));
    assert_eq!(token_uses(&app, "own-name"), 0);
    assert!(failed_events(&app, "CERT", "ca.example.com is a reserved name") >= 1);
    let (s, _) = app.enroll("LocalHost.", &csr, Some(&value)).await;
    assert_eq!(s, 422, "localhost in any spelling");
}

#[tokio::test]
async fn a_token_for_a_name_outside_the_allowed_domains_is_refused_and_audited() {
    let app = spawn_app().await;
    app.login().await;
    set_policy(&app, "example.com", "");
    let before = host_count(&app);
    for name in ["web.evil.net", "badexample.com", "example.com.evil.net"] {
        let token = format!("t-{}", name.replace('.', "-"));
        let value = app.token_value(&token, "1").await;
        let (_k, csr) = openssl_csr(&app.scratch(), &token, name, &[]);
        let (s, body) = app.enroll(name, &csr, Some(&value)).await;
        assert_eq!(s, 422, "{name}: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("outside the allowed domains"),
            "{body}"
        );
        assert_eq!(token_uses(&app, &token), 0, "a refusal consumes nothing");
        assert!(failed_events(&app, "CERT", &format!("{name} is outside")) >= 1);
    }
    assert_eq!(host_count(&app), before, "no host was registered");
    let (s, body) = enroll_with_token(&app, "deep.sub.example.com", &[]).await;
    assert_eq!(s, 201, "a name under an allowed domain: {body}");
    let (s, body) = enroll_with_token(&app, "example.com", &[]).await;
    assert_eq!(s, 201, "the domain itself: {body}");
}

#[tokio::test]
async fn reserved_names_are_refused_for_enrollment_hosts_and_mappings() {
    let app = spawn_app_with(|c| c.tls_names = vec!["ca.example.com".into()]).await;
    app.login().await;
    set_policy(&app, "example.com", "db.example.com\n10.0.0.9");
    // Enrollment with a token.
    let value = app.token_value("res", "1").await;
    let (_k, csr) = openssl_csr(&app.scratch(), "res", "db.example.com", &[]);
    let (s, body) = app.enroll("db.example.com", &csr, Some(&value)).await;
    assert_eq!(s, 422, "{body}");
    assert!(failed_events(&app, "CERT", "db.example.com is a reserved name") >= 1);
    // An administrator adding a host.
    let before = host_count(&app);
    for name in ["db.example.com", "ca.example.com", "localhost"] {
        let r = app.post("/security/hosts", &[("name", name)]).await;
        assert_eq!(status(&r), 422, "{name}");
        assert!(failed_events(&app, "HOST", &format!("{name} is a reserved name")) >= 1);
    }
    assert_eq!(host_count(&app), before);
    // An administrator adding a mapping, on the page and through the admin API.
    let (s, host) = enroll_with_token(&app, "app.example.com", &[]).await;
    assert_eq!(s, 201, "{host}");
    let id = host["host_id"].as_str().unwrap();
    for name in ["db.example.com", "ca.example.com", "10.0.0.9"] {
        let r = app
            .post(&format!("/security/hosts/{id}/mappings"), &[("name", name)])
            .await;
        assert_eq!(status(&r), 422, "{name}");
        assert_eq!(mapping_state(&app, name), None);
    }
    let html = app
        .post("/account/api-keys", &[("name", "names")])
        .await
        .text()
        .await
        .unwrap();
    let key = element_text(&html, "api-key-value").unwrap();
    let (s, body) = app
        .post_json_with_key(
            &key,
            &format!("/api/v1/hosts/{id}/mappings"),
            &serde_json::json!({"name": "ca.example.com"}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(mapping_state(&app, "ca.example.com"), None);
    assert!(failed_events(&app, "HOST", "ca.example.com is a reserved name") >= 2);
}

#[tokio::test]
async fn only_allowed_unshared_names_are_approved_automatically() {
    let app = spawn_app().await;
    app.login().await;
    // Auto-map on (the default) but no allowed domains: nothing is approved by itself.
    let (s, a) = enroll_with_token(&app, "a.example.com", &["a-alias.example.com"]).await;
    assert_eq!(s, 201, "{a}");
    assert_eq!(
        mapping_state(&app, "a-alias.example.com").as_deref(),
        Some("pending")
    );
    assert!(!san_line(&cert_text(&app, &a)).contains("a-alias"));

    // With allowed domains: a name inside is approved and certified; outside waits.
    set_policy(&app, "example.com", "");
    let (s, b) = enroll_with_token(
        &app,
        "b.example.com",
        &[
            "b-alias.example.com",
            "b.other.org",
            "1.2.3.999",
            "10.0.0.5",
            "db",
        ],
    )
    .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(
        mapping_state(&app, "b-alias.example.com").as_deref(),
        Some("approved")
    );
    assert_eq!(
        mapping_state(&app, "b.other.org").as_deref(),
        Some("pending")
    );
    assert_eq!(mapping_state(&app, "10.0.0.5").as_deref(), Some("pending"));
    assert_eq!(mapping_state(&app, "db").as_deref(), Some("pending"));
    assert_eq!(mapping_state(&app, "1.2.3.999"), None);
    let line = san_line(&cert_text(&app, &b));
    assert!(line.contains("DNS:b-alias.example.com"), "{line}");
    for bad in ["other.org", "1.2.3.999", "10.0.0.5"] {
        assert!(!line.contains(bad), "{bad}: {line}");
    }
    assert!(!sans(&line).contains(&"DNS:db".to_string()), "{line}");

    // A name another host has stays pending, even inside the allowed domains.
    let (s, c) = enroll_with_token(&app, "c.example.com", &["b-alias.example.com"]).await;
    assert_eq!(s, 201, "{c}");
    let c_id = c["host_id"].as_str().unwrap();
    let state: String = host_mappings::table
        .filter(host_mappings::host_id.eq(c_id))
        .filter(host_mappings::name.eq("b-alias.example.com"))
        .select(host_mappings::state)
        .first(&mut *app.conn())
        .unwrap();
    assert_eq!(state, "pending");
    assert!(!san_line(&cert_text(&app, &c)).contains("b-alias"));

    // Auto-map off: nothing is approved by itself, allowed or not.
    app.set_auto_map(false);
    let (s, d) = enroll_with_token(&app, "d.example.com", &["d-alias.example.com"]).await;
    assert_eq!(s, 201, "{d}");
    assert_eq!(
        mapping_state(&app, "d-alias.example.com").as_deref(),
        Some("pending")
    );

    // None of them may be asked for as the certificate's name with a token.
    for name in ["10.0.0.5", "1.2.3.999", "db"] {
        let (s, body) = enroll_with_token(&app, name, &[]).await;
        assert_eq!(s, 422, "{name}: {body}");
    }
    // An address is not approved by hand either unless typed as one; all-digit names never.
    let b_id = b["host_id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/security/hosts/{b_id}/mappings/1.2.3.999/approve"),
            &[],
        )
        .await;
    assert!(matches!(status(&r), 404 | 422), "{}", status(&r));
    let r = app
        .post(
            &format!("/security/hosts/{b_id}/mappings"),
            &[("name", "1.2.3.999")],
        )
        .await;
    assert_eq!(status(&r), 400);
}

#[tokio::test]
async fn an_address_mapped_by_hand_is_certified_as_an_ip_san_on_the_next_issuance() {
    let app = spawn_app().await;
    app.login().await;
    set_policy(&app, "example.com", "");
    let (s, first) = enroll_with_token(&app, "files.example.com", &[]).await;
    assert_eq!(s, 201, "{first}");
    let id = first["host_id"].as_str().unwrap().to_string();
    let r = app
        .post(
            &format!("/security/hosts/{id}/mappings"),
            &[("name", "10.0.0.5")],
        )
        .await;
    assert_eq!(status(&r), 303);
    assert_eq!(mapping_state(&app, "10.0.0.5").as_deref(), Some("approved"));
    // A single-label name an administrator maps is theirs to allow too.
    let r = app
        .post(
            &format!("/security/hosts/{id}/mappings"),
            &[("name", "files")],
        )
        .await;
    assert_eq!(status(&r), 303);
    let r = app
        .post(
            &format!("/security/hosts/{id}/reissue-token"),
            &[("name", "ip-reissue"), ("valid_for", "1h")],
        )
        .await;
    assert_eq!(status(&r), 303);
    let html = app
        .post("/security/tokens/ip-reissue/show", &[])
        .await
        .text()
        .await
        .unwrap();
    let token = element_text(&html, "token-value").unwrap();
    let (_k, csr) = openssl_csr(&app.scratch(), "files2", "files.example.com", &[]);
    let (s, body) = app.enroll("files.example.com", &csr, Some(&token)).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["host_id"].as_str().unwrap(), id);
    let line = san_line(&cert_text(&app, &body));
    let entries = sans(&line);
    assert!(
        entries.contains(&"IP Address:10.0.0.5".to_string()),
        "{line}"
    );
    assert!(!line.contains("DNS:10.0.0.5"), "{line}");
    assert!(entries.contains(&"DNS:files".to_string()), "{line}");
    assert_eq!(
        entries[0], "DNS:files.example.com",
        "the requested name first"
    );
    // The address is still never a requested name, even the host's own approved one.
    let (_k, csr) = openssl_csr(&app.scratch(), "files3", "10.0.0.5", &[]);
    let (s, body) = app.enroll("10.0.0.5", &csr, None).await;
    assert_eq!(s, 422, "{body}");
}

#[tokio::test]
async fn the_checklist_warns_while_no_allowed_domains_are_set() {
    let app = spawn_app().await;
    app.login().await;
    let check = |html: &str| -> String {
        let at = html.find("A name policy").expect("the check is listed");
        let li = html[..at].rfind("<li class=\"").unwrap();
        html[li..at].to_string()
    };
    let html = app.get_html("/security/settings").await;
    assert!(check(&html).contains("check-warn"));
    assert!(html.contains("No allowed domains are set"));
    set_policy(&app, "example.com", "");
    let html = app.get_html("/security/settings").await;
    assert!(check(&html).contains("check-pass"));
}

fn form<'a>(allowed: &'a str, reserved: &'a str, reason: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("security_level", "high"),
        ("auto_map_host_names", "on"),
        ("certificate_validity_days", "365"),
        ("auto_reissue_minutes", "2880"),
        ("audit_retention_days", "90"),
        ("allowed_domains", allowed),
        ("reserved_names", reserved),
        ("reason", reason),
    ]
}

#[tokio::test]
async fn the_name_policy_is_edited_on_the_settings_page_and_audited() {
    let app = spawn_app().await;
    app.login().await;
    let html = app.get_html("/security/settings").await;
    assert!(html.contains("<label for=\"allowed_domains\">Allowed domains</label>"));
    assert!(html.contains("<label for=\"reserved_names\">Reserved names</label>"));
    let own = &html[html
        .find("always reserved: ")
        .expect("the server's names are shown")..];
    assert!(own[..200.min(own.len())].contains("localhost"));
    let r = app
        .post(
            "/security/settings",
            &form(
                "Example.COM.\ncorp.example.org, example.com",
                "DB.example.com 10.0.0.9",
                "name policy for the backup domain",
            ),
        )
        .await;
    assert_eq!(status(&r), 303);
    let (allowed, reserved): (String, String) = settings::table
        .select((settings::allowed_domains, settings::reserved_names))
        .first(&mut *app.conn())
        .unwrap();
    assert_eq!(allowed, "example.com\ncorp.example.org");
    assert_eq!(reserved, "db.example.com\n10.0.0.9");
    let html = app.get_html("/security/settings").await;
    assert!(html.contains(">example.com\ncorp.example.org</textarea>"));
    let event: (String, String) = audit_events::table
        .filter(audit_events::category.eq("SEC_CONFIG"))
        .filter(audit_events::target.eq("allowed_domains"))
        .select((audit_events::description, audit_events::reason))
        .first(&mut *app.conn())
        .unwrap();
    assert_eq!(
        event.0,
        "allowed_domains changed from (none) to example.com, corp.example.org"
    );
    assert_eq!(event.1, "name policy for the backup domain");

    // Wrong entries: the form comes back with the message beside the field; nothing saved.
    for (allowed, reserved, says) in [
        ("*.example.com", "", "wildcards are not allowed"),
        ("10.0.0.1", "", "is an IP address"),
        ("", "bad_name!", "is not a DNS name"),
        ("", "1.2.3.999", "all-digit"),
    ] {
        let r = app
            .post("/security/settings", &form(allowed, reserved, "try"))
            .await;
        assert_eq!(status(&r), 422);
        let html = r.text().await.unwrap();
        assert!(html.contains(says), "{says}");
        assert!(
            html.contains("id=\"allowed_domains-error\"")
                || html.contains("id=\"reserved_names-error\"")
        );
    }
    let still: String = settings::table
        .select(settings::allowed_domains)
        .first(&mut *app.conn())
        .unwrap();
    assert_eq!(still, "example.com\ncorp.example.org");

    // The admin API takes a list or a text, and answers with lists.
    let html = app
        .post("/account/api-keys", &[("name", "settings")])
        .await
        .text()
        .await
        .unwrap();
    let key = element_text(&html, "api-key-value").unwrap();
    let put = |body: serde_json::Value| {
        app.client
            .put(app.url("/api/v1/settings"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    let r = put(serde_json::json!({"allowed_domains": ["example.net"], "reason": "api"}))
        .await
        .unwrap();
    assert_eq!(status(&r), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["allowed_domains"], serde_json::json!(["example.net"]));
    assert_eq!(
        body["reserved_names"],
        serde_json::json!(["db.example.com", "10.0.0.9"])
    );
    let r = put(serde_json::json!({"reserved_names": ["*.x.org"], "reason": "api"}))
        .await
        .unwrap();
    assert_eq!(status(&r), 422);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("reserved_names"));
    let r = put(serde_json::json!({"allowed_domains": 7, "reason": "api"}))
        .await
        .unwrap();
    assert_eq!(status(&r), 400);
}

#[tokio::test]
async fn an_expired_or_used_up_reissue_token_leaves_no_mapping_for_a_new_name() {
    let app = spawn_app().await;
    app.login().await;
    let (s, first) = enroll_with_token(&app, "old.example.com", &[]).await;
    assert_eq!(s, 201, "{first}");
    let id = first["host_id"].as_str().unwrap().to_string();
    let reissue = |name: &'static str| {
        let app = &app;
        let id = id.clone();
        async move {
            let r = app
                .post(
                    &format!("/security/hosts/{id}/reissue-token"),
                    &[("name", name), ("valid_for", "1h")],
                )
                .await;
            assert_eq!(status(&r), 303);
            let html = app
                .post(&format!("/security/tokens/{name}/show"), &[])
                .await
                .text()
                .await
                .unwrap();
            element_text(&html, "token-value").unwrap()
        }
    };
    // Used up: spent once under the host's own name.
    let used = reissue("used").await;
    let (_k, csr) = openssl_csr(&app.scratch(), "old2", "old.example.com", &[]);
    let (s, body) = app.enroll("old.example.com", &csr, Some(&used)).await;
    assert_eq!(s, 201, "{body}");
    let (_k, csr) = openssl_csr(&app.scratch(), "ren1", "renamed.example.com", &[]);
    let (s, body) = app.enroll("renamed.example.com", &csr, Some(&used)).await;
    assert_eq!(s, 422, "{body}");
    assert!(body["message"].as_str().unwrap().contains("used up"));
    assert_eq!(mapping_state(&app, "renamed.example.com"), None);
    // Expired.
    let expired = reissue("expired").await;
    diesel::update(tokens::table.filter(tokens::name.eq("expired")))
        .set(tokens::valid_until.eq(hostca::db::now() - chrono::Duration::minutes(1)))
        .execute(&mut *app.conn())
        .unwrap();
    let (_k, csr) = openssl_csr(&app.scratch(), "ren2", "renamed2.example.com", &[]);
    let (s, body) = app
        .enroll("renamed2.example.com", &csr, Some(&expired))
        .await;
    assert_eq!(s, 422, "{body}");
    assert!(body["message"].as_str().unwrap().contains("expired"));
    assert_eq!(mapping_state(&app, "renamed2.example.com"), None);
    assert!(failed_events(&app, "CERT", "expired") >= 1);
}

#[test]
fn the_resolver_answers_from_the_system_and_gives_up_after_two_seconds() {
    let resolver = hostca::names::Resolver::default();
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    assert!(resolver.resolves_to("localhost", local));
    assert!(!resolver.resolves_to("localhost", IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))));
    resolver.set_lookup(|name| {
        if name == "hang.example.com" {
            std::thread::sleep(Duration::from_secs(3600));
        }
        vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
    });
    let t = Instant::now();
    assert!(!resolver.resolves_to("hang.example.com", local));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(resolver.resolves_to("other.example.com", local));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_level_medium_a_hanging_lookup_delays_only_its_own_request() {
    let app = spawn_app().await;
    app.login().await;
    set_policy(&app, "example.com", "");
    let mut values = Vec::new();
    for i in 0..5 {
        values.push(app.token_value(&format!("busy-{i}"), "1").await);
    }
    app.set_security_level("medium");
    app.ctx.site.resolver.set_lookup(|name| match name {
        "hang.example.com" => {
            std::thread::sleep(Duration::from_secs(3600));
            Vec::new()
        }
        "medium.example.com" => vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        _ => Vec::new(),
    });
    let mut csrs = Vec::new();
    for i in 0..values.len() {
        let name = format!("busy-{i}.example.com");
        csrs.push((
            openssl_csr(&app.scratch(), &format!("busy{i}"), &name, &[]).1,
            name,
        ));
    }
    let (_k, med_csr) = openssl_csr(&app.scratch(), "med", "medium.example.com", &[]);
    let b = app.browser.clone();
    let (_k, hang_csr) = openssl_csr(&app.scratch(), "hang", "hang.example.com", &[]);
    let started = Instant::now();
    let hanging = tokio::spawn(async move {
        let r = b
            .client
            .post(b.url("/api/v1/certificates"))
            .json(&serde_json::json!({"hostname": "hang.example.com", "csr": hang_csr}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Meanwhile the writer serves everyone else at once.
    for (v, (csr, name)) in values.iter().zip(&csrs) {
        let (s, body) = app.enroll(name, csr, Some(v)).await;
        assert_eq!(s, 201, "{body}");
    }
    let (s, body) = app.enroll("medium.example.com", &med_csr, None).await;
    assert_eq!(
        s, 201,
        "a name resolving to the caller needs no token: {body}"
    );
    assert!(
        !hanging.is_finished(),
        "everything above finished while the lookup still hung ({:?})",
        started.elapsed()
    );
    let (s, took) = hanging.await.unwrap();
    assert_eq!(s, 401, "no answer in time: a token is required");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(6),
        "{took:?}"
    );
    // The server's own name resolves to the caller, and is still never certified.
    app.ctx
        .site
        .resolver
        .set_lookup(|_| vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    let (_k, csr) = openssl_csr(&app.scratch(), "lh", "localhost", &[]);
    let (s, body) = app.enroll("localhost", &csr, None).await;
    assert_eq!(s, 422, "{body}");
}
