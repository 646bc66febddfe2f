//! The overview page, the certificate list's expiry filters (page, CSV, admin API, CLI),
//! `/metrics` with its access rules, and `/healthz` and `/readyz`.

use chrono::Duration;
use diesel::prelude::*;
use hostca::db::schema::{certificates, tokens};
use hostca::db::DbConn;
use serde_json::Value;

use super::common::{self, hostca, quick_csr, spawn_app, spawn_app_with, status, TestApp};

/// Enrolls `name` with a fresh token; returns its serial and host ID.
async fn enrolled(app: &TestApp, name: &str) -> (String, String) {
    let token = app.token_value(&format!("t-{name}"), "1").await;
    let (s, b) = app.enroll(name, &quick_csr(name), Some(&token)).await;
    assert_eq!(s, 201, "{b}");
    (
        b["serial"].as_str().unwrap().to_string(),
        b["host_id"].as_str().unwrap().to_string(),
    )
}

/// Moves a certificate's validity so that it ends `days_left` days from now (negative: in
/// the past) after a lifetime of `lifetime` days, as the row and its renewal time say.
fn set_validity(app: &TestApp, serial: &str, days_left: i64, lifetime: i64) {
    let now = hostca::db::now();
    let not_after = now + Duration::days(days_left);
    let not_before = not_after - Duration::days(lifetime);
    let mut conn = app.conn();
    diesel::update(certificates::table.filter(certificates::serial.eq(serial)))
        .set((
            certificates::not_before.eq(not_before),
            certificates::not_after.eq(not_after),
            certificates::renew_by.eq(Some(hostca::models::certificate::renew_by_for(
                not_before, not_after,
            ))),
        ))
        .execute(&mut *conn)
        .unwrap();
}

/// The number shown in the overview's tile that links to `href`.
fn tile(html: &str, href: &str) -> i64 {
    let at = html
        .find(&format!("<a href=\"{}\"", href.replace('&', "&#38;")))
        .unwrap_or_else(|| panic!("no tile links to {href}"));
    let rest = &html[at..];
    let start = rest.find("tile-count\">").unwrap() + "tile-count\">".len();
    let end = rest[start..].find('<').unwrap();
    rest[start..start + end].parse().unwrap()
}

fn sql_count(conn: &mut DbConn, sql: &str) -> i64 {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(sql).get_result::<N>(conn).unwrap().n
}

#[tokio::test]
async fn the_overview_counts_what_needs_attention_and_links_to_the_lists() {
    let app = spawn_app().await;
    app.login().await;
    let (soon, _) = enrolled(&app, "soon.example.com").await;
    let (month, _) = enrolled(&app, "month.example.com").await;
    let (lapsed, _) = enrolled(&app, "lapsed.example.com").await;
    let (missed, _) = enrolled(&app, "missed.example.com").await;
    let (fresh, _) = enrolled(&app, "fresh.example.com").await;
    let (gone, _) = enrolled(&app, "revoked.example.com").await;
    // Neither is past 5/6 of its lifetime: not late for renewal.
    set_validity(&app, &soon, 5, 10);
    set_validity(&app, &month, 20, 60);
    set_validity(&app, &lapsed, -3, 365);
    // 10 days left of 90: past 5/6 of its lifetime, so half its renewal window is gone.
    set_validity(&app, &missed, 10, 90);
    let r = app
        .post(
            &format!("/security/certificates/{gone}/revoke"),
            &[("reason", "key_compromise")],
        )
        .await;
    assert_eq!(status(&r), 303);
    // A used-up token (each enrollment used its own) and one expiring in 3 days.
    app.create_token("expiring", "5", "3d", "overview test")
        .await;

    let html = app.get_html("/").await;
    assert!(html.contains("<h1>Overview</h1>"), "{html}");
    let within7 = tile(
        &html,
        "/security/certificates?expires_within=7&sort=expires&dir=asc",
    );
    let within30 = tile(
        &html,
        "/security/certificates?expires_within=30&sort=expires&dir=asc",
    );
    let within90 = tile(
        &html,
        "/security/certificates?expires_within=90&sort=expires&dir=asc",
    );
    assert_eq!((within7, within30, within90), (1, 3, 3));
    assert_eq!(
        tile(
            &html,
            "/security/certificates?view=lapsed&sort=expires&dir=desc"
        ),
        1
    );
    assert_eq!(
        tile(
            &html,
            "/security/certificates?view=renewal-missed&sort=expires&dir=asc"
        ),
        1
    );
    assert_eq!(
        tile(&html, "/security/certificates?view=recently-revoked"),
        1
    );
    assert_eq!(tile(&html, "/security/tokens?state=used_up"), 6);
    assert_eq!(
        tile(
            &html,
            "/security/tokens?expires_within=7&sort=valid_until&dir=asc"
        ),
        1
    );
    assert!(html.contains("<svg"), "the chart is drawn on the server");
    assert!(html.contains("checks pass"), "{html}");

    // Each number is its list's total, and SQL agrees.
    let list = app
        .get_html("/security/certificates?expires_within=30&sort=expires&dir=asc")
        .await;
    assert!(list.contains("soon.example.com") && list.contains("month.example.com"));
    assert!(!list.contains("fresh.example.com") && !list.contains("lapsed.example.com"));
    assert!(list.contains("1–3 of 3"), "{list}");
    // The sort links keep the filter.
    assert!(list.contains("expires_within=30&#38;sort=host"), "{list}");
    let now = hostca::db::now();
    let in30 = now + Duration::days(30);
    let fmt = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let sql = format!(
        "SELECT COUNT(*) AS n FROM certificates WHERE revoked_at IS NULL AND not_after > '{}' AND not_after <= '{}'",
        fmt(now),
        fmt(in30)
    );
    assert_eq!(sql_count(&mut app.conn(), &sql), within30);

    let missed_list = app
        .get_html("/security/certificates?view=renewal-missed")
        .await;
    assert!(missed_list.contains("missed.example.com"));
    assert!(!missed_list.contains("soon.example.com"));
    let csv = app
        .get("/security/certificates.csv?view=lapsed")
        .await
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with("serial,host_id,names,status"), "{csv}");
    assert!(csv.contains(&lapsed) && !csv.contains(&fresh), "{csv}");
    assert_eq!(csv.lines().count(), 2, "{csv}");

    // Bad filters are a 400 that says what to send.
    for bad in [
        "/security/certificates?expires_within=0",
        "/security/certificates?expires_within=abc",
        "/security/certificates?expires_within=99999",
        "/security/certificates?view=everything",
        "/security/certificates.csv?view=everything",
        "/security/tokens?expires_within=-1",
    ] {
        let r = app.get(bad).await;
        assert_eq!(status(&r), 400, "{bad}");
        let text = r.text().await.unwrap().to_lowercase();
        assert!(
            text.contains("number of days") || text.contains("unknown view"),
            "{bad}: {text}"
        );
    }

    // A viewer sees the overview; a stranger is sent to the login form.
    let viewer = app
        .user(hostca::models::user::Role::Viewer, "watcher")
        .await;
    assert!(viewer.get_html("/").await.contains("Expire within 7 days"));
    let stranger = app.new_browser();
    let r = stranger.get("/").await;
    assert_eq!(status(&r), 303);
    assert_eq!(common::location(&r), "/login");
}

#[tokio::test]
async fn expires_within_works_in_the_admin_api_and_the_cli() {
    let app = spawn_app().await;
    app.login().await;
    let key = common::api_key(&app, "ops").await;
    let (soon, _) = enrolled(&app, "api-soon.example.com").await;
    enrolled(&app, "api-later.example.com").await;
    set_validity(&app, &soon, 2, 365);

    let r = app
        .client
        .get(app.url("/api/v1/certificates?expires_within=7"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(status(&r), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["certificates"][0]["serial"], soon.as_str());
    let r = app
        .client
        .get(app.url("/api/v1/certificates?expires_within=none"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(status(&r), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["message"].as_str().unwrap().contains("expires_within"),
        "{v}"
    );

    let dir = app.scratch();
    let run = hostca(
        &[
            "cert",
            "list",
            "--expires-within",
            "7",
            "--json",
            "--server",
            &app.address,
            "--dir",
            dir.to_str().unwrap(),
        ],
        &[("HOSTCA_API_KEY", &key)],
    );
    assert!(run.ok, "{}", run.stderr);
    let v: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["total"], 1, "{v}");
    assert_eq!(v["certificates"][0]["serial"], soon.as_str());
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric line starts with {line_start}"))
}

#[tokio::test]
async fn metrics_count_what_committed_and_gauges_match_the_database() {
    let app = spawn_app().await;
    app.login().await;
    let before = app.get("/metrics").await.text().await.unwrap();
    let issued_before = metric(&before, "hostca_issued_total{method=\"enrollment\"}");
    let (soon, _) = enrolled(&app, "m1.example.com").await;
    enrolled(&app, "m2.example.com").await;
    set_validity(&app, &soon, 3, 365);
    // A refused enrollment: a used-up token.
    let token = app.token_value("once", "1").await;
    enrolled_with(&app, "m3.example.com", &token, 201).await;
    enrolled_with(&app, "m4.example.com", &token, 422).await;

    let r = app.get("/metrics").await;
    assert_eq!(status(&r), 200);
    assert!(r
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    // Counters are process-wide (other tests run beside this one): at least ours.
    assert!(
        metric(&text, "hostca_issued_total{method=\"enrollment\"}") >= issued_before + 3.0,
        "{text}"
    );
    assert!(metric(&text, "hostca_token_uses_total") >= 3.0);
    assert!(text.contains("hostca_refused_total{reason=\""), "{text}");
    // Gauges are this server's database.
    assert_eq!(
        metric(&text, "hostca_certificates{state=\"active\"}"),
        3.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "hostca_certificates_expiring{within=\"7d\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "hostca_certificates_expiring{within=\"90d\"}"),
        1.0
    );
    let signing = app.ctx.pki.signing();
    let ca_line = format!(
        "hostca_ca_not_after_timestamp_seconds{{issuer=\"{}\"",
        signing.id
    );
    assert_eq!(
        metric(&text, &ca_line),
        signing.not_after.and_utc().timestamp() as f64
    );
    assert!(text.contains("hostca_crl_next_update_timestamp_seconds{issuer="));
    assert!(text.contains("hostca_group_commit_batch_size_bucket"));
    // Latency by route pattern, never by raw path.
    let timed: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("hostca_http_request_duration_seconds_count"))
        .collect();
    assert!(
        timed
            .iter()
            .any(|l| l.contains("route=\"/api/v1/certificates\"") && l.contains("method=\"POST\"")),
        "{timed:#?}"
    );
    // A certificate's page is counted under its pattern, never under its serial.
    assert!(text
        .lines()
        .filter(|l| l.contains("route=\"/security/certificates/"))
        .all(|l| l.contains("{serial}")));
    let r = app.get("/no/such/page").await;
    assert_eq!(status(&r), 404);
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(text.contains("route=\"unmatched\""));
}

/// Every metric the example alert rules use is one `/metrics` serves.
#[tokio::test]
async fn the_example_alert_rules_use_metrics_that_exist() {
    let app = spawn_app().await;
    let text = app.get("/metrics").await.text().await.unwrap();
    let rules = include_str!("../../contrib/prometheus/hostca-alerts.yml");
    let mut used: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("hostca_") && w.len() > "hostca_".len())
        .collect();
    used.sort_unstable();
    used.dedup();
    assert!(used.len() >= 3, "{used:?}");
    for name in used {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} is in the alert rules but not in /metrics"
        );
    }
}

async fn enrolled_with(app: &TestApp, name: &str, token: &str, expect: u16) {
    let (s, b) = app.enroll(name, &quick_csr(name), Some(token)).await;
    assert_eq!(s, expect, "{b}");
}

#[tokio::test]
async fn metrics_need_the_token_or_an_allowed_address() {
    let token = "metrics-token-0123456789abcdef";
    let app = spawn_app_with(|c| {
        c.metrics_token = Some(token.to_string());
        c.metrics_allow = Vec::new();
    })
    .await;
    let r = app.get("/metrics").await;
    assert_eq!(status(&r), 401);
    assert_eq!(r.headers().get("www-authenticate").unwrap(), "Bearer");
    let get = |t: &str| {
        app.client
            .get(app.url("/metrics"))
            .header("Authorization", format!("Bearer {t}"))
            .send()
    };
    assert_eq!(
        status(&get("wrong-token-0123456789abcdef").await.unwrap()),
        401
    );
    assert_eq!(status(&get(&token[..token.len() - 1]).await.unwrap()), 401);
    let r = get(token).await.unwrap();
    assert_eq!(status(&r), 200);
    assert!(r.text().await.unwrap().contains("hostca_certificates{"));
    // The scheme is case-insensitive.
    let r = app
        .client
        .get(app.url("/metrics"))
        .header("Authorization", format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(status(&r), 200);

    // No token, and an allow-list without loopback: refused, and told what to do.
    let closed = spawn_app_with(|c| c.metrics_allow = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let r = closed.get("/metrics").await;
    assert_eq!(status(&r), 403);
    assert!(r.text().await.unwrap().contains("--metrics-allow"));
    // A forged X-Forwarded-For from a peer that is no trusted proxy changes nothing.
    let r = closed
        .client
        .get(closed.url("/metrics"))
        .header("X-Forwarded-For", "10.1.2.3")
        .send()
        .await
        .unwrap();
    assert_eq!(status(&r), 403);
}

#[test]
fn cidr_networks_parse_and_match() {
    use hostca::config::Cidr;
    let net: Cidr = "10.0.0.0/8".parse().unwrap();
    assert!(net.contains("10.255.0.1".parse().unwrap()));
    assert!(!net.contains("11.0.0.1".parse().unwrap()));
    assert!(
        net.contains("::ffff:10.0.0.9".parse().unwrap()),
        "IPv4-mapped"
    );
    let one: Cidr = "192.168.1.7".parse().unwrap();
    assert!(one.contains("192.168.1.7".parse().unwrap()));
    assert!(!one.contains("192.168.1.8".parse().unwrap()));
    let v6: Cidr = "fd00::/12".parse().unwrap();
    assert!(v6.contains("fd0f::1".parse().unwrap()));
    assert!(!v6.contains("fd10::1".parse().unwrap()));
    for bad in ["10.0.0.0/33", "::/129", "example.com", "10.0.0.0/x", ""] {
        assert!(bad.parse::<Cidr>().is_err(), "{bad}");
    }
    assert!(Cidr::loopback()
        .iter()
        .any(|n| n.contains("127.0.0.1".parse().unwrap())));
}

#[tokio::test]
async fn healthz_is_liveness_and_readyz_checks_database_key_and_crl() {
    let app = spawn_app().await;
    let r = app.get("/healthz").await;
    assert_eq!(status(&r), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "ok");
    let r = app.get("/readyz").await;
    assert_eq!(status(&r), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["database"]["ok"], true);
    assert_eq!(v["signer"]["reachable"], true);
    assert_eq!(v["crl"]["ok"], true);
    assert!(v["crl"]["detail"]
        .as_str()
        .unwrap()
        .starts_with("next update"));
    // HEAD works as GET does.
    let r = app.client.head(app.url("/readyz")).send().await.unwrap();
    assert_eq!(status(&r), 200);
}

#[tokio::test]
async fn an_upgraded_database_gets_renewal_times_for_its_certificates() {
    let app = spawn_app().await;
    app.login().await;
    let (serial, _) = enrolled(&app, "old.example.com").await;
    // As a row from before migration 000016 would be: no renewal time.
    {
        let mut conn = app.conn();
        diesel::update(certificates::table.filter(certificates::serial.eq(&serial)))
            .set(certificates::renew_by.eq(None::<chrono::NaiveDateTime>))
            .execute(&mut *conn)
            .unwrap();
        let _ = tokens::table.count().get_result::<i64>(&mut *conn).unwrap();
    }
    // The migration's own backfill statement, for this database, computes what new rows
    // get.
    let up = if app.config.database_url.is_some() {
        include_str!("../../migrations/postgres/2026-12-03-000016_expiry/up.sql")
    } else {
        include_str!("../../migrations/sqlite/2026-12-03-000016_expiry/up.sql")
    };
    let backfill: String = up
        .split(';')
        .find(|s| s.contains("UPDATE certificates"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    diesel::sql_query(backfill)
        .execute(&mut *app.conn())
        .unwrap();
    let row: hostca::models::certificate::Certificate = certificates::table
        .filter(certificates::serial.eq(&serial))
        .first(&mut *app.conn())
        .unwrap();
    let expected = hostca::models::certificate::renew_by_for(row.not_before, row.not_after);
    let got = row.renew_by.expect("the backfill sets it");
    assert!(
        (got - expected).num_seconds().abs() <= 1,
        "{got} vs {expected}"
    );
}
