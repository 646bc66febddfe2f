//! Hosts, mappings, settings, the audit trail, users and roles, over HTTP.

use crate::common;

use common::{
    element_text, openssl, openssl_csr, spawn_app, status, Browser, Role, TestApp, ADMIN_PASSWORD,
};
use diesel::prelude::*;
use hostca::db::schema::{audit_events, certificates, host_mappings, hosts, settings};

async fn add_user_must_change(app: &TestApp, username: &str, role: &str) -> Browser {
    let password = format!("{username} initial password");
    let r = app
        .post(
            "/admin/users",
            &[
                ("username", username),
                ("role", role),
                ("password", &password),
            ],
        )
        .await;
    assert_eq!(status(&r), 303, "user {username} created");
    let b = app.new_browser();
    let r = b.login_as(username, &password).await;
    assert_eq!(status(&r), 303);
    assert_eq!(
        r.headers()["location"],
        "/account/password",
        "a new user must change the password"
    );
    b
}

fn mapping_state(app: &TestApp, host_id: &str, name: &str) -> Option<String> {
    host_mappings::table
        .filter(host_mappings::host_id.eq(host_id))
        .filter(host_mappings::name.eq(name))
        .select(host_mappings::state)
        .first(&mut *app.conn())
        .optional()
        .unwrap()
}

async fn enroll_with_token(app: &TestApp, name: &str, extra: &[&str]) -> serde_json::Value {
    let value = app
        .token_value(&format!("t-{}", name.replace('.', "-")), "1")
        .await;
    let (_k, csr) = openssl_csr(&app.scratch(), name, name, extra);
    let (s, body) = app.enroll(name, &csr, Some(&value)).await;
    assert_eq!(s, 201, "{body}");
    body
}

fn cert_text(app: &TestApp, body: &serde_json::Value) -> String {
    let p = app
        .scratch()
        .join(format!("{}.pem", body["serial"].as_str().unwrap()));
    std::fs::write(&p, body["certificate"].as_str().unwrap()).unwrap();
    openssl(&["x509", "-in", p.to_str().unwrap(), "-noout", "-text"]).1
}

#[tokio::test]
async fn mappings_are_discovered_auto_approved_or_pending_and_conflicts_show() {
    let app = spawn_app().await;
    app.login().await;
    // Names are approved automatically only inside the allowed domains.
    app.set_allowed_domains("example.com");
    // Auto-map on (default): an extra CSR name without conflict is approved and certified.
    let a = enroll_with_token(&app, "alpha.example.com", &["alpha-alias.example.com"]).await;
    let a_id = a["host_id"].as_str().unwrap().to_string();
    assert_eq!(
        mapping_state(&app, &a_id, "alpha-alias.example.com").as_deref(),
        Some("approved")
    );
    assert!(cert_text(&app, &a).contains("DNS:alpha-alias.example.com"));

    // The same name claimed by a second host: a conflict, never approved automatically.
    let b = enroll_with_token(&app, "beta.example.com", &["alpha-alias.example.com"]).await;
    let b_id = b["host_id"].as_str().unwrap().to_string();
    assert_eq!(
        mapping_state(&app, &b_id, "alpha-alias.example.com").as_deref(),
        Some("pending")
    );
    assert!(
        !cert_text(&app, &b).contains("alpha-alias"),
        "a pending name is never in a certificate"
    );
    for (host, other) in [(&a_id, "beta.example.com"), (&b_id, "alpha.example.com")] {
        let html = app.get_html(&format!("/security/hosts/{host}")).await;
        assert!(
            html.contains("Shared with hosts") && html.contains(other),
            "the conflict shows on both hosts"
        );
    }
    let html = app.get_html("/security/host-mappings").await;
    assert!(
        html.contains("Mappings to approve (1)")
            && html.contains("Shared with hosts alpha.example.com")
    );
    // Approving it while the other host has it approved is refused.
    let r = app
        .post(
            &format!("/security/hosts/{b_id}/mappings/alpha-alias.example.com/approve"),
            &[],
        )
        .await;
    assert_eq!(status(&r), 409);
    let r = app
        .post(
            "/security/host-mappings/decide",
            &[
                ("decision", "reject"),
                ("mapping", &format!("{b_id} alpha-alias.example.com")),
            ],
        )
        .await;
    assert_eq!(status(&r), 303);
    assert_eq!(
        mapping_state(&app, &b_id, "alpha-alias.example.com").as_deref(),
        Some("rejected")
    );
    assert!(app
        .get_html("/security/host-mappings")
        .await
        .contains("Nothing waits for approval."));

    // Auto-map off: a new name waits even without a conflict.
    app.set_auto_map(false);
    let c = enroll_with_token(&app, "gamma.example.com", &["gamma-2.example.com"]).await;
    let c_id = c["host_id"].as_str().unwrap().to_string();
    assert_eq!(
        mapping_state(&app, &c_id, "gamma-2.example.com").as_deref(),
        Some("pending")
    );
    assert!(!cert_text(&app, &c).contains("gamma-2"));
    let r = app
        .post(
            &format!("/security/hosts/{c_id}/mappings/gamma-2.example.com/approve"),
            &[],
        )
        .await;
    assert_eq!(status(&r), 303);
    assert_eq!(
        mapping_state(&app, &c_id, "gamma-2.example.com").as_deref(),
        Some("approved")
    );

    // By hand: add, a shared name waits, delete; the primary name stays.
    let r = app
        .post(
            &format!("/security/hosts/{c_id}/mappings"),
            &[("name", "Gamma-Manual.example.com")],
        )
        .await;
    assert_eq!(status(&r), 303);
    assert_eq!(
        mapping_state(&app, &c_id, "gamma-manual.example.com").as_deref(),
        Some("approved")
    );
    let r = app
        .post(
            &format!("/security/hosts/{c_id}/mappings"),
            &[("name", "alpha.example.com")],
        )
        .await;
    assert_eq!(status(&r), 303);
    assert_eq!(
        mapping_state(&app, &c_id, "alpha.example.com").as_deref(),
        Some("pending")
    );
    let r = app
        .post(
            &format!("/security/hosts/{c_id}/mappings"),
            &[("name", "bad name!")],
        )
        .await;
    assert_eq!(status(&r), 400);
    let r = app
        .post(
            &format!("/security/hosts/{c_id}/mappings/gamma-manual.example.com/delete"),
            &[],
        )
        .await;
    assert_eq!(status(&r), 303);
    assert_eq!(mapping_state(&app, &c_id, "gamma-manual.example.com"), None);
    let r = app
        .post(
            &format!("/security/hosts/{c_id}/mappings/gamma.example.com/delete"),
            &[],
        )
        .await;
    assert_eq!(status(&r), 409, "the primary name cannot be deleted");
    let r = app
        .post(
            &format!("/security/hosts/{c_id}/mappings/nope.example.com/approve"),
            &[],
        )
        .await;
    assert_eq!(status(&r), 404);
    let hosts_page = app.get_html("/security/hosts").await;
    assert!(hosts_page.contains("alpha-alias.example.com") && hosts_page.contains("badge-active"));
    let n: i64 = audit_events::table
        .filter(audit_events::category.eq("HOST"))
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    assert!(n >= 8, "mapping changes are audited");
}

#[tokio::test]
async fn a_renamed_host_gets_a_certificate_for_its_new_name_with_the_same_host_id() {
    let app = spawn_app().await;
    app.login().await;
    // Names are approved automatically only inside the allowed domains.
    app.set_allowed_domains("example.com");
    let first = enroll_with_token(&app, "oldname.example.com", &[]).await;
    let host_id = first["host_id"].as_str().unwrap().to_string();
    // The administrator revokes the old certificate and issues a reissue token.
    let serial = first["serial"].as_str().unwrap();
    let r = app
        .post(
            &format!("/security/certificates/{serial}/revoke"),
            &[("reason", "affiliation_changed")],
        )
        .await;
    assert_eq!(status(&r), 303);
    let r = app
        .post(
            &format!("/security/hosts/{host_id}/reissue-token"),
            &[("name", "rename"), ("valid_for", "1h")],
        )
        .await;
    assert_eq!(status(&r), 303);
    let html = app
        .post("/security/tokens/rename/show", &[])
        .await
        .text()
        .await
        .unwrap();
    let token = element_text(&html, "token-value").unwrap();
    // The host comes back under its new name: the name becomes its mapping.
    let (_k, csr) = openssl_csr(&app.scratch(), "new", "newname.example.com", &[]);
    let (s, body) = app.enroll("newname.example.com", &csr, Some(&token)).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["host_id"].as_str().unwrap(), host_id, "same host ID");
    assert_eq!(
        mapping_state(&app, &host_id, "newname.example.com").as_deref(),
        Some("approved")
    );
    let text = cert_text(&app, &body);
    assert!(
        text.contains("DNS:newname.example.com") && text.contains(&format!("urn:uuid:{host_id}"))
    );

    // With automatic mapping off, the new name waits and the token is kept for later.
    app.set_auto_map(false);
    let r = app
        .post(
            &format!("/security/hosts/{host_id}/reissue-token"),
            &[("name", "rename2"), ("valid_for", "1h")],
        )
        .await;
    assert_eq!(status(&r), 303);
    let html = app
        .post("/security/tokens/rename2/show", &[])
        .await
        .text()
        .await
        .unwrap();
    let token2 = element_text(&html, "token-value").unwrap();
    let (_k, csr) = openssl_csr(&app.scratch(), "third", "third.example.com", &[]);
    let (s, body) = app.enroll("third.example.com", &csr, Some(&token2)).await;
    assert_eq!(s, 409, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("waiting for approval"));
    assert_eq!(
        mapping_state(&app, &host_id, "third.example.com").as_deref(),
        Some("pending")
    );
    let r = app
        .post(
            &format!("/security/hosts/{host_id}/mappings/third.example.com/approve"),
            &[],
        )
        .await;
    assert_eq!(status(&r), 303);
    let (s, body) = app.enroll("third.example.com", &csr, Some(&token2)).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["host_id"].as_str().unwrap(), host_id);
}

#[tokio::test]
async fn the_auto_reissue_window_opens_closes_and_is_used_once() {
    let app = spawn_app().await;
    app.login().await;
    let first = enroll_with_token(&app, "win.example.com", &[]).await;
    let host_id = first["host_id"].as_str().unwrap().to_string();
    let (_k, csr) = openssl_csr(&app.scratch(), "win2", "win.example.com", &[]);
    let (s, _) = app.enroll("win.example.com", &csr, None).await;
    assert_eq!(s, 409, "no window: the host needs a reissue token");

    let r = app
        .post(
            &format!("/security/hosts/{host_id}/auto-reissue"),
            &[("action", "allow")],
        )
        .await;
    assert_eq!(status(&r), 303);
    assert!(app
        .get_html(&format!("/security/hosts/{host_id}"))
        .await
        .contains("Disallow auto reissue"));
    let r = app
        .post(
            &format!("/security/hosts/{host_id}/auto-reissue"),
            &[("action", "disallow")],
        )
        .await;
    assert_eq!(status(&r), 303);
    let (s, _) = app.enroll("win.example.com", &csr, None).await;
    assert_eq!(s, 409, "closed again");

    app.post(
        &format!("/security/hosts/{host_id}/auto-reissue"),
        &[("action", "allow")],
    )
    .await;
    let (s, body) = app.enroll("win.example.com", &csr, None).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["host_id"].as_str().unwrap(), host_id);
    let old: Option<String> = certificates::table
        .filter(certificates::serial.eq(first["serial"].as_str().unwrap()))
        .select(certificates::revocation_reason)
        .first(&mut *app.conn())
        .unwrap();
    assert_eq!(old.as_deref(), Some("superseded"));
    let (s, _) = app.enroll("win.example.com", &csr, None).await;
    assert_eq!(s, 409, "the window closes after one use");

    // A window that has passed is closed.
    app.post(
        &format!("/security/hosts/{host_id}/auto-reissue"),
        &[("action", "allow")],
    )
    .await;
    diesel::update(hosts::table.filter(hosts::host_id.eq(&host_id)))
        .set(hosts::auto_reissue_until.eq(Some(hostca::db::now() - chrono::Duration::minutes(1))))
        .execute(&mut *app.conn())
        .unwrap();
    let (s, _) = app.enroll("win.example.com", &csr, None).await;
    assert_eq!(s, 409);
    let r = app
        .post(
            &format!("/security/hosts/{host_id}/auto-reissue"),
            &[("action", "maybe")],
        )
        .await;
    assert_eq!(status(&r), 400);
    let events: Vec<String> = audit_events::table
        .filter(audit_events::action.like("%auto_reissue"))
        .select(audit_events::action)
        .load(&mut *app.conn())
        .unwrap();
    assert_eq!(events.len(), 4);
}

#[tokio::test]
async fn settings_are_bounded_audited_and_take_effect_at_once() {
    let app = spawn_app().await;
    app.login().await;
    let html = app.get_html("/security/settings").await;
    assert!(html.contains("Hardening checklist"));
    assert!(html.contains("Served over TLS") && html.contains("At least two administrators"));
    assert!(
        html.contains("check-warn"),
        "plain HTTP and a single administrator are warnings"
    );
    let ok = |level: &'static str,
              days: &'static str,
              mins: &'static str,
              ret: &'static str,
              reason: &'static str| {
        vec![
            ("security_level", level),
            ("auto_map_host_names", "on"),
            ("certificate_validity_days", days),
            ("auto_reissue_minutes", mins),
            ("audit_retention_days", ret),
            ("reason", reason),
        ]
    };
    let cases = [
        (ok("extreme", "365", "2880", "90", "r"), "security_level"),
        (
            ok("high", "0", "2880", "90", "r"),
            "certificate_validity_days",
        ),
        (
            ok("high", "826", "2880", "90", "r"),
            "certificate_validity_days",
        ),
        (
            ok("high", "abc", "2880", "90", "r"),
            "certificate_validity_days",
        ),
        (ok("high", "365", "-1", "90", "r"), "auto_reissue_minutes"),
        (
            ok("high", "365", "43201", "90", "r"),
            "auto_reissue_minutes",
        ),
        (ok("high", "365", "2880", "0", "r"), "audit_retention_days"),
        (ok("high", "365", "2880", "90", ""), "reason"),
    ];
    for (fields, bad) in cases {
        let r = app.post("/security/settings", &fields).await;
        assert_eq!(status(&r), 422, "{bad}");
        let html = r.text().await.unwrap();
        assert!(
            element_text(&html, &format!("{bad}-error")).is_some(),
            "{bad} has its message"
        );
    }
    // Edges are accepted; each changed value is one event with old, new and the reason.
    let r = app
        .post(
            "/security/settings",
            &ok("very_high", "825", "43200", "90", "quarterly review"),
        )
        .await;
    assert_eq!(status(&r), 303);
    let s: (String, i32, i32) = settings::table
        .select((
            settings::security_level,
            settings::certificate_validity_days,
            settings::auto_reissue_minutes,
        ))
        .first(&mut *app.conn())
        .unwrap();
    assert_eq!(s, ("very_high".into(), 825, 43200));
    let events: Vec<(String, String, String)> = audit_events::table
        .filter(audit_events::category.eq("SEC_CONFIG"))
        .filter(audit_events::action.eq("change_setting"))
        .select((
            audit_events::target,
            audit_events::description,
            audit_events::reason,
        ))
        .load(&mut *app.conn())
        .unwrap();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events.contains(&(
        "security_level".into(),
        "security_level changed from high to very_high".into(),
        "quarterly review".into()
    )));
    // In effect at once: a known host now needs a token.
    app.post("/security/hosts", &[("name", "known.example.com")])
        .await;
    let (_k, csr) = openssl_csr(&app.scratch(), "k", "known.example.com", &[]);
    let (s, _) = app.enroll("known.example.com", &csr, None).await;
    assert_eq!(s, 401);
    let r = app
        .post(
            "/security/settings",
            &ok("high", "1", "0", "90", "short certs for the lab"),
        )
        .await;
    assert_eq!(status(&r), 303);
    let (s, body) = app.enroll("known.example.com", &csr, None).await;
    assert_eq!(s, 201);
    let days = (chrono::DateTime::parse_from_rfc3339(body["not_after"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
        - chrono::Utc::now())
    .num_hours();
    assert!(
        (23..=24).contains(&days),
        "validity of 1 day, got {days} hours"
    );
    // Medium is flagged by the checklist; so is a short retention.
    app.post(
        "/security/settings",
        &ok("medium", "365", "2880", "30", "testing"),
    )
    .await;
    let html = app.get_html("/security/settings").await;
    assert!(html.contains("The security level is medium") && html.contains("kept only 30 days"));
}

#[tokio::test]
async fn each_role_may_do_what_it_should_and_nothing_more() {
    let app = spawn_app().await;
    app.login().await;
    app.create_token("existing", "1", "1d", "").await;
    let first = enroll_with_token(&app, "role.example.com", &[]).await;
    let host_id = first["host_id"].as_str().unwrap().to_string();
    let serial = first["serial"].as_str().unwrap().to_string();
    let viewer = app.user(Role::Viewer, "vera").await;
    let secadm = app.user(Role::SecurityAdmin, "sam").await;

    // A viewer reads every page...
    for page in [
        "/security/tokens",
        "/security/tokens/existing",
        "/security/certificates",
        &format!("/security/certificates/{serial}"),
        "/security/hosts",
        &format!("/security/hosts/{host_id}"),
        "/security/host-mappings",
        "/security/ca",
        "/security/settings",
        "/security/audit",
    ] {
        assert_eq!(status(&viewer.get(page).await), 200, "viewer reads {page}");
    }
    // ...and may change nothing, each refusal a 403 and an audit event.
    let refused: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/security/tokens", vec![("name", "v1"), ("max_uses", "1")]),
        ("/security/tokens/existing/show", vec![]),
        ("/security/tokens/existing/delete", vec![]),
        ("/security/tokens/cleanup", vec![]),
        ("/security/hosts", vec![("name", "v.example.com")]),
        (
            &*Box::leak(format!("/security/certificates/{serial}/revoke").into_boxed_str()),
            vec![("reason", "unspecified")],
        ),
        (
            &*Box::leak(format!("/security/hosts/{host_id}/revoke").into_boxed_str()),
            vec![("reason", "unspecified")],
        ),
        (
            &*Box::leak(format!("/security/hosts/{host_id}/reissue-token").into_boxed_str()),
            vec![("name", "v2")],
        ),
        (
            &*Box::leak(format!("/security/hosts/{host_id}/mappings").into_boxed_str()),
            vec![("name", "v3.example.com")],
        ),
        (
            &*Box::leak(format!("/security/hosts/{host_id}/auto-reissue").into_boxed_str()),
            vec![("action", "allow")],
        ),
        (
            "/security/settings",
            vec![
                ("security_level", "medium"),
                ("certificate_validity_days", "1"),
                ("auto_reissue_minutes", "1"),
                ("audit_retention_days", "1"),
                ("reason", "x"),
            ],
        ),
        (
            "/admin/users",
            vec![
                ("username", "x"),
                ("role", "administrator"),
                ("password", "long enough password"),
            ],
        ),
        ("/admin/users/vera/role", vec![("role", "administrator")]),
    ];
    let failures_before: i64 = audit_events::table
        .filter(audit_events::outcome.eq("failure"))
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    for (path, fields) in &refused {
        assert_eq!(
            status(&viewer.post(path, fields).await),
            403,
            "viewer refused {path}"
        );
    }
    assert_eq!(status(&viewer.get("/admin/users").await), 403);
    let failures_after: i64 = audit_events::table
        .filter(audit_events::outcome.eq("failure"))
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    assert!(
        failures_after - failures_before >= refused.len() as i64,
        "every refusal is audited"
    );
    assert!(!viewer
        .get_html("/security/tokens")
        .await
        .contains("href=\"/admin/users\""));

    // A security administrator manages security objects but not users.
    assert_eq!(
        status(&secadm.post("/security/tokens/existing/show", &[]).await),
        200
    );
    assert_eq!(
        status(
            &secadm
                .post("/security/hosts", &[("name", "s.example.com")])
                .await
        ),
        303
    );
    assert_eq!(status(&secadm.get("/admin/users").await), 403);
    assert_eq!(
        status(&secadm.post("/admin/users/vera/disable", &[]).await),
        403
    );

    // The administrator disables a user: their session ends at once.
    assert_eq!(
        status(&app.post("/admin/users/sam/disable", &[]).await),
        303
    );
    assert_eq!(
        status(&secadm.get("/security/tokens").await),
        303,
        "the session ended"
    );
    assert_eq!(
        status(&secadm.login_as("sam", &common::user_password("sam")).await),
        401
    );
    assert_eq!(status(&app.post("/admin/users/sam/enable", &[]).await), 303);
    // Role change and password reset.
    assert_eq!(
        status(
            &app.post("/admin/users/vera/role", &[("role", "security_admin")])
                .await
        ),
        303
    );
    assert_eq!(
        status(&viewer.post("/security/tokens/existing/show", &[]).await),
        200,
        "the new role applies at once"
    );
    assert_eq!(
        status(
            &app.post("/admin/users/vera/role", &[("role", "king")])
                .await
        ),
        400
    );
    assert_eq!(
        status(
            &app.post("/admin/users/vera/password", &[("password", "short")])
                .await
        ),
        400
    );
    assert_eq!(
        status(
            &app.post(
                "/admin/users/vera/password",
                &[("password", "a brand new password")]
            )
            .await
        ),
        303
    );
    assert_eq!(
        status(&viewer.get("/security/tokens").await),
        303,
        "a reset ends the user's sessions"
    );

    // The last active administrator can be neither demoted nor disabled.
    assert_eq!(
        status(
            &app.post("/admin/users/admin/role", &[("role", "viewer")])
                .await
        ),
        409
    );
    assert_eq!(
        status(&app.post("/admin/users/admin/disable", &[]).await),
        409
    );
    assert_eq!(
        status(
            &app.post("/admin/users/nobody/role", &[("role", "viewer")])
                .await
        ),
        404
    );
    let _other_admin = app.user(Role::Administrator, "ada").await;
    assert_eq!(
        status(
            &app.post("/admin/users/ada/role", &[("role", "viewer")])
                .await
        ),
        303
    );
    assert_eq!(
        status(
            &app.post("/admin/users/ada/role", &[("role", "administrator")])
                .await
        ),
        303
    );
    assert_eq!(
        status(
            &app.post("/admin/users/admin/role", &[("role", "security_admin")])
                .await
        ),
        303,
        "now another administrator exists"
    );

    // Adding users: validation and a taken name.
    let r = app
        .post(
            "/admin/users",
            &[
                ("username", "ada"),
                ("role", "viewer"),
                ("password", "long enough password"),
            ],
        )
        .await;
    assert_eq!(status(&r), 403, "admin was demoted to security_admin above");
}

#[tokio::test]
async fn users_are_validated_and_change_their_own_password() {
    let app = spawn_app().await;
    app.login().await;
    for (name, role, pw, field) in [
        ("", "viewer", "long enough password", "username"),
        ("bad name", "viewer", "long enough password", "username"),
        ("<b>", "viewer", "long enough password", "username"),
        ("okname", "emperor", "long enough password", "role"),
        ("okname", "viewer", "short", "password"),
    ] {
        let r = app
            .post(
                "/admin/users",
                &[("username", name), ("role", role), ("password", pw)],
            )
            .await;
        assert_eq!(status(&r), 422, "{field}");
        assert!(element_text(&r.text().await.unwrap(), &format!("{field}-error")).is_some());
    }
    let r = app
        .post(
            "/admin/users",
            &[
                ("username", "admin"),
                ("role", "viewer"),
                ("password", "long enough password"),
            ],
        )
        .await;
    assert_eq!(status(&r), 409);
    let b = add_user_must_change(&app, "pat", "viewer").await;
    let r = b
        .post(
            "/account/password",
            &[
                ("current", "wrong"),
                ("new", "another good password"),
                ("confirm", "another good password"),
            ],
        )
        .await;
    assert_eq!(status(&r), 422);
    let r = b
        .post(
            "/account/password",
            &[
                ("current", "pat initial password"),
                ("new", "another good password"),
                ("confirm", "different"),
            ],
        )
        .await;
    assert_eq!(status(&r), 422);
    let r = b
        .post(
            "/account/password",
            &[
                ("current", "pat initial password"),
                ("new", "another good password"),
                ("confirm", "another good password"),
            ],
        )
        .await;
    assert_eq!(status(&r), 303);
    assert_eq!(
        status(&b.get("/security/tokens").await),
        200,
        "this session continues"
    );
    let other = app.new_browser();
    assert_eq!(
        status(&other.login_as("pat", "pat initial password").await),
        401
    );
    assert_eq!(
        status(&other.login_as("pat", "another good password").await),
        303
    );
    // The initial admin password changed: the checklist says so.
    let r = app
        .post(
            "/account/password",
            &[
                ("current", ADMIN_PASSWORD),
                ("new", "the admin's own password"),
                ("confirm", "the admin's own password"),
            ],
        )
        .await;
    assert_eq!(status(&r), 303);
    let html = app.get_html("/security/settings").await;
    assert!(html.contains("The password hostca started with is no longer in use."));
}

#[tokio::test]
async fn repeated_failed_logins_are_throttled() {
    let app = spawn_app().await;
    for _ in 0..5 {
        assert_eq!(status(&app.login_as("admin", "wrong").await), 401);
    }
    let r = app.login_as("admin", ADMIN_PASSWORD).await;
    assert_eq!(status(&r), 429, "even the right password waits");
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Too many failed logins") && html.contains("try again in 1 minute"),
        "{html}"
    );
    // Throttling is per (username, address): another user from the same address is not
    // held back by admin's failures (tests/auth.rs covers the address-wide limit's pair).
    let r = app.login_as("someone", "x").await;
    assert_eq!(status(&r), 401);
    // Failed logins are aggregated per address and minute: admin's throttled attempt is in
    // one event.
    hostca::services::audit::flush_refusals(&app.ctx).unwrap();
    let throttled: Vec<String> = audit_events::table
        .filter(audit_events::description.like("%throttled%"))
        .select(audit_events::description)
        .load(&mut *app.conn())
        .unwrap();
    assert_eq!(
        throttled
            .iter()
            .map(|d| d.matches("throttled").count())
            .sum::<usize>(),
        1,
        "{throttled:?}"
    );
    // After the delay, the right password works.
    diesel::update(hostca::db::schema::login_attempts::table)
        .set(
            hostca::db::schema::login_attempts::at
                .eq(hostca::db::now() - chrono::Duration::minutes(20)),
        )
        .execute(&mut *app.conn())
        .unwrap();
    assert_eq!(status(&app.login_as("admin", ADMIN_PASSWORD).await), 303);
}

#[tokio::test]
async fn the_audit_page_filters_exports_and_verifies() {
    let app = spawn_app().await;
    app.login().await;
    app.create_token("audited", "1", "1d", "=HYPERLINK(\"x\")")
        .await;
    app.login_as("nobody", "x").await;
    // Failed logins are aggregated per address and minute: write them now.
    hostca::services::audit::flush_refusals(&app.ctx).unwrap();
    app.post("/security/tokens/audited/show", &[]).await;

    let html = app.get_html("/security/audit").await;
    assert!(html.contains("The audit chain verifies"));
    let html = app.get_html("/security/audit?category=TOKEN").await;
    assert!(html.contains("<td>audited</td>") && !html.contains("<td>LOGIN</td>"));
    let html = app
        .get_html("/security/audit?category=LOGIN&outcome=failure")
        .await;
    assert!(html.contains("failed login") && html.contains("1 event,"));
    let html = app.get_html("/security/audit?user=admin&q=shown").await;
    assert!(html.contains("token value shown") && html.contains("1 event,"));
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let html = app
        .get_html(&format!("/security/audit?from={today}&to={today}"))
        .await;
    assert!(!html.contains("No event matches"));
    let html = app.get_html("/security/audit?to=2001-01-01").await;
    assert!(html.contains("No event matches"));
    for bad in ["category=NOPE", "outcome=maybe", "from=yesterday", "page=0"] {
        assert_eq!(
            status(&app.get(&format!("/security/audit?{bad}")).await),
            400,
            "{bad}"
        );
    }
    let id: i64 = audit_events::table
        .filter(audit_events::action.eq("show"))
        .select(audit_events::id)
        .first(&mut *app.conn())
        .unwrap();
    let html = app.get_html(&format!("/security/audit/{id}")).await;
    assert!(html.contains("Previous hash") && html.contains("token value shown"));
    assert_eq!(status(&app.get("/security/audit/999999").await), 404);
    assert_eq!(status(&app.get("/security/audit/abc").await), 404);

    // CSV of the filtered set, formula characters neutralised.
    let r = app.get("/security/audit.csv?category=TOKEN").await;
    assert_eq!(status(&r), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("id,at_utc,category"));
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines.iter().skip(1).all(|l| l.contains("\"TOKEN\"")));
    assert!(csv.contains("\"'=HYPERLINK(\"\"x\"\")\""), "{csv}");

    // Tampering shows on the page and in `hostca audit verify`.
    let data_dir = app.data_dir();
    let db_url = app.config.database_url();
    let verify = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hostca"))
            .args(["audit", "verify", "--data-dir"])
            .arg(&data_dir)
            .args(["--database-url", &db_url])
            .output()
            .unwrap()
    };
    let out = verify();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("audit chain OK"));
    diesel::update(audit_events::table.find(id))
        .set(audit_events::actor.eq("someone else"))
        .execute(&mut *app.conn())
        .unwrap();
    // A view checks only what is new since the last check; a full check finds the change
    // in an older event, and from then on every view shows it.
    let html = app.get_html("/security/audit?verify=full").await;
    assert!(html.contains(&format!("BROKEN at event {id}")));
    let html = app.get_html("/security/audit").await;
    assert!(html.contains(&format!("BROKEN at event {id}")));
    let out = verify();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("BROKEN at event {id}")));
}

#[tokio::test]
async fn retention_removes_old_events_and_keeps_the_chain_verifiable() {
    let app = spawn_app().await;
    app.login().await;
    for n in ["r1", "r2", "r3"] {
        app.create_token(n, "1", "1d", "").await;
    }
    let ids: Vec<i64> = audit_events::table
        .order(audit_events::id.asc())
        .select(audit_events::id)
        .load(&mut *app.conn())
        .unwrap();
    // The first half of the events becomes older than the retention (a day set by hand:
    // the 30-day floor applies).
    let cut = ids[ids.len() / 2];
    diesel::update(settings::table)
        .set(settings::audit_retention_days.eq(1))
        .execute(&mut *app.conn())
        .unwrap();
    let mut conn = app.conn();
    // Editing `at` breaks those rows' hashes, which does not matter: they are removed.
    diesel::update(audit_events::table.filter(audit_events::id.le(cut)))
        .set(audit_events::at.eq(hostca::db::now() - chrono::Duration::days(31)))
        .execute(&mut *conn)
        .unwrap();
    let removed = hostca::services::audit::apply_retention(&mut conn).unwrap();
    assert_eq!(
        removed as i64,
        ids.iter().filter(|i| **i <= cut).count() as i64
    );
    assert!(matches!(
        hostca::services::audit::verify_chain(&mut conn).unwrap(),
        hostca::services::audit::ChainStatus::Intact { .. }
    ));
    let note: String = audit_events::table
        .filter(audit_events::action.eq("audit_retention"))
        .select(audit_events::description)
        .first(&mut *conn)
        .unwrap();
    assert!(note.contains("older than 30 days removed"));
    // Removing the new first event by hand is detected.
    let first: i64 = audit_events::table
        .order(audit_events::id.asc())
        .select(audit_events::id)
        .first(&mut *conn)
        .unwrap();
    diesel::delete(audit_events::table.find(first))
        .execute(&mut *conn)
        .unwrap();
    assert!(matches!(
        hostca::services::audit::verify_chain(&mut conn).unwrap(),
        hostca::services::audit::ChainStatus::Broken { .. }
    ));
}

#[tokio::test]
async fn the_csv_export_streams_many_batches() {
    let app = spawn_app().await;
    app.login().await;
    let mut conn = app.conn();
    hostca::db::write_tx(&mut conn, |c| {
        for i in 0..4500 {
            hostca::services::audit::record(
                c,
                &hostca::services::audit::Event::new(
                    hostca::models::kinds::AuditCategory::Host,
                    "bulk",
                    "loader",
                    &format!("h{i}"),
                ),
            )?;
        }
        Ok(())
    })
    .unwrap();
    drop(conn);
    let csv = app.get_html("/security/audit.csv?user=loader").await;
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 4500);
    assert!(
        rows[0].contains("\"h4499\"") && rows[4499].contains("\"h0\""),
        "newest first, none lost"
    );
    let html = app.get_html("/security/audit?user=loader&page=2").await;
    assert!(html.contains("Page 2 of 90"));
}

#[tokio::test]
async fn each_audit_page_view_checks_what_was_added_since_the_last() {
    let app = spawn_app().await;
    app.login().await;
    let newest = |app: &TestApp| -> i64 {
        audit_events::table
            .select(diesel::dsl::max(audit_events::id))
            .first::<Option<i64>>(&mut *app.conn())
            .unwrap()
            .unwrap()
    };
    let html = app.get_html("/security/audit").await;
    assert!(html.contains("The audit chain verifies"), "{html}");
    app.create_token("incremental1", "1", "1d", "").await;
    let html = app.get_html("/security/audit").await;
    let count = |html: &str| -> i64 {
        let at = html.find("verifies: ").unwrap() + "verifies: ".len();
        html[at..].split(' ').next().unwrap().parse().unwrap()
    };
    let seen = count(&html);
    assert_eq!(seen, newest(&app), "every event counted once: {html}");

    // An event written after the last check, then changed, is found by the next view.
    app.create_token("incremental2", "1", "1d", "").await;
    let id = newest(&app);
    diesel::update(audit_events::table.find(id))
        .set(audit_events::description.eq("nothing happened"))
        .execute(&mut *app.conn())
        .unwrap();
    let html = app.get_html("/security/audit").await;
    assert!(html.contains(&format!("BROKEN at event {id}")), "{html}");
}
