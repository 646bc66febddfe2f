//! The foundation and the Tokens page, over HTTP against the running application.

use crate::common;

use common::{csrf_in, element_text, location, spawn_app, status, ADMIN_PASSWORD};
use diesel::prelude::*;
use hostca::db::schema::{audit_events, tokens};
use hostca::models::audit_event::AuditEvent;
use hostca::services::audit::{verify_chain, ChainStatus};

fn events(app: &common::TestApp, action: &str) -> Vec<AuditEvent> {
    let mut conn = app.conn();
    AuditEvent::recent(&mut conn, None, 10_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.action == action)
        .collect()
}

#[tokio::test]
async fn pages_need_a_session_and_public_files_do_not() {
    let app = spawn_app().await;
    for path in [
        "/security/tokens",
        "/security/tokens/new",
        "/security/tokens/x",
        "/security/audit",
        "/",
    ] {
        let r = app.get(path).await;
        assert_eq!(status(&r), 303, "{path}");
        assert!(location(&r).ends_with("/login") || path == "/", "{path}");
    }
    assert_eq!(status(&app.get("/login").await), 200);
    let css = app.get("/static/style.css").await;
    assert_eq!(status(&css), 200);
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert_eq!(status(&app.get("/static/app.js").await), 200);
}

#[tokio::test]
async fn login_good_bad_and_without_csrf() {
    let app = spawn_app().await;

    // CSRF missing: 403, and no session is started.
    let r = app
        .post_raw(
            "/login",
            &[("username", "admin"), ("password", ADMIN_PASSWORD)],
        )
        .await;
    assert_eq!(status(&r), 403);
    // CSRF from another session: 403 too.
    let other = common::client();
    let foreign = csrf_in(
        &other
            .get(app.url("/login"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let r = app
        .post_raw(
            "/login",
            &[
                ("csrf_token", &foreign),
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
            ],
        )
        .await;
    assert_eq!(status(&r), 403);
    assert_eq!(status(&app.get("/security/tokens").await), 303);

    // Bad password: 401, the form again with a message, and an audit event.
    let r = app.login_as("admin", "wrong").await;
    assert_eq!(status(&r), 401);
    let html = r.text().await.unwrap();
    assert!(html.contains("wrong username or password"));
    assert!(html.contains("value=\"admin\""), "the username is kept");
    let r = app.login_as("<script>nobody</script>", "x").await;
    assert_eq!(status(&r), 401);
    assert!(
        !r.text().await.unwrap().contains("<script>nobody"),
        "the name is escaped"
    );
    // Failed logins are aggregated per address and minute (written now), with the
    // address as the actor: the name tried is only a claim, the target.
    hostca::services::audit::flush_refusals(&app.ctx).unwrap();
    let failed: Vec<_> = events(&app, "login")
        .into_iter()
        .filter(|e| e.outcome == hostca::models::kinds::Outcome::Failure)
        .collect();
    assert_eq!(failed.iter().map(|e| e.occurrences).sum::<i64>(), 2);
    assert!(failed.iter().any(|e| e.actor == "host:127.0.0.1"
        && e.target.contains("admin")
        && e.description.contains("wrong password")));
    assert!(!failed
        .iter()
        .any(|e| e.description.contains("wrong\"") || e.description.contains(ADMIN_PASSWORD)));

    // Good: a new session cookie, HttpOnly and SameSite=Lax (a link from another site
    // keeps the session; CSRF tokens guard every POST), then the console.
    let before = app.get("/login").await;
    let r = app.login_as("admin", ADMIN_PASSWORD).await;
    assert_eq!(status(&r), 303);
    assert_eq!(location(&r), "/security/tokens");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("hostca_session="));
    assert!(cookie.contains("HttpOnly"));
    assert!(cookie.contains("SameSite=Lax"));
    drop(before);
    let html = app.get_html("/security/tokens").await;
    assert!(html.contains("Welcome, admin."), "a flash greets the user");
    for nav in [
        "Tokens",
        "Certificates",
        "Hosts",
        "Host mappings",
        "Certificate authority",
        "Global security settings",
        "Audit events",
    ] {
        assert!(
            html.contains(&format!(">{nav}</a>")),
            "navigation has {nav}"
        );
    }
    let html = app.get_html("/security/tokens").await;
    assert!(!html.contains("Welcome, admin."), "a flash shows once");

    // Logout needs CSRF too, then ends the session.
    assert_eq!(status(&app.post_raw("/logout", &[]).await), 403);
    let r = app.post("/logout", &[]).await;
    assert_eq!(status(&r), 303);
    assert_eq!(status(&app.get("/security/tokens").await), 303);
}

#[tokio::test]
async fn first_start_writes_private_keys_and_a_generated_password() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(dir.path().join("data"), None);
    config.admin_password = None;
    let app = hostca::startup::Application::build(&config).unwrap();
    let data = dir.path().join("data");
    use std::os::unix::fs::PermissionsExt;
    for f in ["session.key", "token.key", "initial-admin-password"] {
        let mode = std::fs::metadata(data.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    assert_eq!(std::fs::read(data.join("session.key")).unwrap().len(), 64);
    let password = std::fs::read_to_string(data.join("initial-admin-password")).unwrap();
    let mut conn = hostca::db::get(&app.ctx.pool).unwrap();
    let admin = hostca::models::user::User::find_by_username(&mut conn, "admin")
        .unwrap()
        .unwrap();
    assert!(admin.password_hash.starts_with("$argon2id$"));
    assert!(hostca::services::users::verify_password(
        &admin.password_hash,
        password.trim()
    ));
    assert_eq!(admin.role.key(), "administrator");
}

#[tokio::test]
async fn add_token_validates_every_field_and_keeps_values() {
    let app = spawn_app().await;
    app.login().await;
    let long_reason = "r".repeat(1025);
    let long_name = "n".repeat(65);
    let cases: Vec<(&str, &str, &str, &str, &str, &str)> = vec![
        // name, max_uses, valid_for, reason, field in error, message fragment
        ("", "1", "1d", "", "name", "enter a name"),
        (&long_name, "1", "1d", "", "name", "at most 64"),
        ("has space", "1", "1d", "", "name", "only letters"),
        ("<b>x</b>", "1", "1d", "", "name", "only letters"),
        ("ünïcode", "1", "1d", "", "name", "only letters"),
        ("../etc", "1", "1d", "", "name", "only letters"),
        ("new", "1", "1d", "", "name", "reserved"),
        ("ok-name", "0", "1d", "", "max_uses", "1 to 99999"),
        ("ok-name", "100000", "1d", "", "max_uses", "1 to 99999"),
        ("ok-name", "abc", "1d", "", "max_uses", "1 to 99999"),
        ("ok-name", "-1", "1d", "", "max_uses", "1 to 99999"),
        ("ok-name", "1", "0m", "", "valid_for", "at least 1 minute"),
        ("ok-name", "1", "1000d", "", "valid_for", "at most 999 days"),
        ("ok-name", "1", "soon", "", "valid_for", "like 1d"),
        ("ok-name", "1", "1d", &long_reason, "reason", "at most 1024"),
    ];
    for (name, max, valid, reason, field, fragment) in cases {
        let r = app.create_token(name, max, valid, reason).await;
        assert_eq!(status(&r), 422, "{name}/{max}/{valid}");
        let html = r.text().await.unwrap();
        let err = element_text(&html, &format!("{field}-error")).unwrap_or_default();
        assert!(
            err.contains(fragment),
            "{field}: '{err}' lacks '{fragment}'"
        );
        if field != "name" {
            assert!(html.contains("value=\"ok-name\""), "the name is kept");
        }
        if field == "max_uses" {
            assert!(
                html.contains(&format!("value=\"{max}\"")),
                "the bad value is kept to correct"
            );
        }
    }
    let count: i64 = tokens::table.count().get_result(&mut *app.conn()).unwrap();
    assert_eq!(count, 0, "nothing was created");

    // Defaults: 1 use, 1 day.
    let r = app.create_token("web01.example", "", "", "").await;
    assert_eq!(status(&r), 303);
    assert_eq!(location(&r), "/security/tokens/web01.example");
    let t = hostca::models::token::Token::find_by_name(&mut app.conn(), "web01.example")
        .unwrap()
        .unwrap();
    assert_eq!(
        (t.max_uses, t.uses, t.kind.key(), t.created_by.as_str()),
        (1, 0, "authorization", "admin")
    );
    let left = t.valid_until - hostca::db::now();
    assert!(left > chrono::Duration::hours(23) && left <= chrono::Duration::days(1));

    // Taken name: 409 with the message beside the name.
    let r = app
        .create_token("web01.example", "5", "2d6h30m", "again")
        .await;
    assert_eq!(status(&r), 409);
    let html = r.text().await.unwrap();
    assert!(element_text(&html, "name-error")
        .unwrap()
        .contains("already exists"));
    assert!(html.contains("2d6h30m") && html.contains(">again</textarea>"));
}

#[tokio::test]
async fn details_show_and_html_escaping() {
    let app = spawn_app().await;
    app.login().await;
    let r = app
        .create_token(
            "db-01",
            "3",
            "2d6h30m",
            "<script>alert(1)</script> for the DB tier",
        )
        .await;
    assert_eq!(status(&r), 303);
    let html = app.get_html("/security/tokens/db-01").await;
    assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62; for the DB tier"));
    assert!(!html.contains("<script>alert(1)"));
    assert!(html.contains("0 / 3"));
    assert!(html.contains("Never used"));
    assert!(html.contains("badge-active"));
    assert!(
        !html.contains("id=\"token-value\""),
        "details never carry the value"
    );
    let stored = hostca::models::token::Token::find_by_name(&mut app.conn(), "db-01")
        .unwrap()
        .unwrap();

    // Show: POST with CSRF, an audit event, the value in #token-value with a copy button.
    assert_eq!(
        status(&app.post_raw("/security/tokens/db-01/show", &[]).await),
        403
    );
    let r = app.post("/security/tokens/db-01/show", &[]).await;
    assert_eq!(status(&r), 200);
    let html = r.text().await.unwrap();
    let value = element_text(&html, "token-value").unwrap();
    assert_eq!(value.len(), 29);
    assert!(value
        .chars()
        .all(|c| c == '-' || "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c)));
    assert!(html.contains("data-copy=\"#token-value\""));
    assert!(
        !String::from_utf8_lossy(&stored.value_encrypted).contains(&value),
        "stored encrypted"
    );
    assert!(!stored.value_digest.contains(&value.replace('-', "")));
    let shown = events(&app, "show");
    assert_eq!(shown.len(), 1);
    assert_eq!(
        (shown[0].actor.as_str(), shown[0].target.as_str()),
        ("admin", "db-01")
    );
    assert!(!shown[0].description.contains(&value));

    // Unknown name: a 404 page that offers the list.
    let r = app.get("/security/tokens/no-such-token").await;
    assert_eq!(status(&r), 404);
    let html = r.text().await.unwrap();
    assert!(html.contains("no token named no-such-token"));
    assert!(html.contains("href=\"/security/tokens\""));
    let r = app.get("/security/tokens/%3Cscript%3E").await;
    assert_eq!(status(&r), 404);
    assert!(!r.text().await.unwrap().contains("<script>"));
    assert_eq!(
        status(&app.post("/security/tokens/no-such-token/show", &[]).await),
        404
    );
}

#[tokio::test]
async fn list_filters_sorts_and_pages() {
    let app = spawn_app().await;
    app.login().await;
    for i in 0..53 {
        assert_eq!(
            status(
                &app.create_token(&format!("bulk-{i:02}"), "2", "1d", "")
                    .await
            ),
            303
        );
    }
    let used = app.token_value("Used-Up", "1").await;
    hostca::services::tokens::consume_for_host(&app.ctx, &used, "host-a").unwrap();
    app.create_token("expired-one", "1", "1m", "").await;
    diesel::update(tokens::table.filter(tokens::name.eq("expired-one")))
        .set(tokens::valid_until.eq(hostca::db::now() - chrono::Duration::minutes(5)))
        .execute(&mut *app.conn())
        .unwrap();

    let html = app.get_html("/security/tokens").await;
    assert!(html.contains("1–50 of 55"));
    assert!(html.contains("Page 1 of 2"));
    let html = app.get_html("/security/tokens?page=2").await;
    assert!(html.contains("51–55 of 55"));

    let html = app.get_html("/security/tokens?state=used_up").await;
    assert!(html.contains("Used-Up") && html.contains("badge-used_up") && html.contains("1 / 1"));
    assert!(!html.contains("bulk-00"));
    let html = app.get_html("/security/tokens?state=expired").await;
    assert!(
        html.contains("expired-one") && html.contains("badge-expired") && html.contains("1–1 of 1")
    );
    let html = app.get_html("/security/tokens?state=active").await;
    assert!(html.contains("1–50 of 53"));

    // Search ignores case; wildcards are literal.
    let html = app.get_html("/security/tokens?q=used").await;
    assert!(html.contains("Used-Up") && html.contains("1–1 of 1"));
    let html = app.get_html("/security/tokens?q=%25").await;
    assert!(html.contains("No token matches"));
    let html = app.get_html("/security/tokens?q=%3Cscript%3E").await;
    assert!(html.contains("value=\"&#60;script&#62;\""));

    // Sorting by name, both ways.
    let html = app.get_html("/security/tokens?sort=name&dir=asc").await;
    assert!(html.find(">bulk-00<").unwrap() < html.find(">bulk-01<").unwrap());
    assert!(!html.contains(">Used-Up<"), "last by name, so on page 2");
    let html = app.get_html("/security/tokens?sort=name&dir=desc").await;
    assert!(
        html.find(">Used-Up<").unwrap() < html.find(">expired-one<").unwrap(),
        "names sort without regard to case"
    );
    assert!(html.find(">expired-one<").unwrap() < html.find(">bulk-52<").unwrap());
    assert!(html.contains("aria-sort=\"descending\""));

    // Bad parameters are a clear 400.
    for q in [
        "state=bogus",
        "page=0",
        "page=abc",
        "sort=password",
        "dir=up",
    ] {
        let r = app.get(&format!("/security/tokens?{q}")).await;
        assert_eq!(status(&r), 400, "{q}");
    }
    let r = app.get("/security/tokens?state=bogus").await;
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("use active, expired or used_up"));
}

#[tokio::test]
async fn delete_one_many_and_cleanup() {
    let app = spawn_app().await;
    app.login().await;
    for n in ["a1", "a2", "a3", "a4"] {
        app.create_token(n, "1", "1d", "").await;
    }
    // One, from its details page.
    assert_eq!(
        status(&app.post_raw("/security/tokens/a1/delete", &[]).await),
        403
    );
    let r = app.post("/security/tokens/a1/delete", &[]).await;
    assert_eq!(status(&r), 303);
    assert!(app
        .get_html("/security/tokens")
        .await
        .contains("Token a1 deleted."));
    assert_eq!(status(&app.get("/security/tokens/a1").await), 404);

    // Many; an unknown name among them deletes nothing.
    let r = app
        .post(
            "/security/tokens/delete",
            &[("name", "a2"), ("name", "nope")],
        )
        .await;
    assert_eq!(status(&r), 404);
    assert_eq!(status(&app.get("/security/tokens/a2").await), 200);
    // Nothing selected: back to the list with a message, nothing deleted (issue 11).
    let r = app.post("/security/tokens/delete", &[]).await;
    assert_eq!(status(&r), 303);
    assert!(app
        .get_html("/security/tokens")
        .await
        .contains("No token was selected"));
    let r = app
        .post("/security/tokens/delete", &[("name", "a2"), ("name", "a3")])
        .await;
    assert_eq!(status(&r), 303);
    assert!(app
        .get_html("/security/tokens")
        .await
        .contains("2 tokens deleted."));
    assert_eq!(events(&app, "delete").len(), 3);

    // Cleanup removes expired and used-up tokens only.
    let v = app.token_value("used", "1").await;
    hostca::services::tokens::consume_for_host(&app.ctx, &v, "h").unwrap();
    app.create_token("old", "5", "1d", "").await;
    diesel::update(tokens::table.filter(tokens::name.eq("old")))
        .set(tokens::valid_until.eq(hostca::db::now() - chrono::Duration::seconds(1)))
        .execute(&mut *app.conn())
        .unwrap();
    let r = app.post("/security/tokens/cleanup", &[]).await;
    assert_eq!(status(&r), 303);
    let html = app.get_html("/security/tokens").await;
    assert!(html.contains("Cleanup removed 2 expired or used-up tokens."));
    assert!(html.contains(">a4<") && !html.contains(">old<") && !html.contains(">used<"));
    let c = events(&app, "cleanup");
    assert_eq!(c.len(), 1);
    assert!(c[0].description.starts_with("2 "));
    let r = app.post("/security/tokens/cleanup", &[]).await;
    assert_eq!(status(&r), 303);
    assert!(app
        .get_html("/security/tokens")
        .await
        .contains("found no expired"));
}

#[tokio::test]
async fn token_values_are_accepted_in_any_case_and_refusals_are_audited() {
    let app = spawn_app().await;
    app.login().await;
    let value = app.token_value("flex", "3").await;
    let svc = |v: &str| hostca::services::tokens::consume_for_host(&app.ctx, v, "web01");
    svc(&value.to_lowercase()).unwrap();
    svc(&value.replace('-', " ")).unwrap();
    let t = svc(&value.replace('-', "")).unwrap();
    assert_eq!(t.uses, 3);
    let e = svc(&value).unwrap_err();
    assert_eq!(e.status().as_u16(), 422);
    assert!(e.to_string().contains("used up"));
    let e = svc("AAAA-BBBB-CCCC-DDDD-EEEE-FFFF").unwrap_err();
    assert!(e.to_string().contains("unknown"));
    let e = svc("not a token").unwrap_err();
    assert_eq!(e.status().as_u16(), 422);
    let failures = events(&app, "use")
        .into_iter()
        .filter(|e| e.outcome == hostca::models::kinds::Outcome::Failure)
        .count();
    assert_eq!(failures, 3);
    let html = app.get_html("/security/tokens/flex").await;
    assert!(html.contains("3 / 3") && html.contains("by <strong>web01</strong>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_threads_racing_on_five_uses_get_exactly_five() {
    let app = spawn_app().await;
    app.login().await;
    let value = app.token_value("race", "5").await;
    let ctx = app.ctx.clone();
    let results = tokio::task::spawn_blocking(move || {
        let handles: Vec<_> = (0..64)
            .map(|i| {
                let ctx = ctx.clone();
                let value = value.clone();
                std::thread::spawn(move || {
                    hostca::services::tokens::consume_for_host(&ctx, &value, &format!("host-{i}"))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 5, "exactly max_uses successes");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r.status().as_u16(), 422, "{r}");
    }
    let uses: i32 = tokens::table
        .filter(tokens::name.eq("race"))
        .select(tokens::uses)
        .first(&mut *app.conn())
        .unwrap();
    assert_eq!(uses, 5);
    let used = events(&app, "use");
    assert_eq!(
        used.iter()
            .filter(|e| e.outcome == hostca::models::kinds::Outcome::Success)
            .count(),
        5
    );
    assert_eq!(
        used.iter()
            .filter(|e| e.outcome == hostca::models::kinds::Outcome::Failure)
            .count(),
        59
    );
    assert!(matches!(
        verify_chain(&mut app.conn()).unwrap(),
        ChainStatus::Intact { .. }
    ));
}

#[tokio::test]
async fn a_restart_keeps_users_sessions_and_tokens() {
    let app = spawn_app().await;
    app.login().await;
    let value = app.token_value("survivor", "2").await;
    let app = app.restart().await;
    // Same cookie, new process: still logged in.
    let html = app.get_html("/security/tokens").await;
    assert!(
        html.contains(">survivor<"),
        "the session and the token survive"
    );
    let again = element_text(
        &app.post("/security/tokens/survivor/show", &[])
            .await
            .text()
            .await
            .unwrap(),
        "token-value",
    )
    .unwrap();
    assert_eq!(again, value, "the value still decrypts with the kept key");
    hostca::services::tokens::consume_for_host(&app.ctx, &value, "h1").unwrap();
    // The user survives: a fresh client can log in.
    let fresh = common::client();
    let csrf = csrf_in(
        &fresh
            .get(app.url("/login"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let r = fresh
        .post(app.url("/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
}

#[tokio::test]
async fn the_audit_chain_shows_tampering() {
    let app = spawn_app().await;
    app.login().await;
    for n in ["t1", "t2", "t3"] {
        app.create_token(n, "1", "1d", "because").await;
    }
    let mut conn = app.conn();
    let ChainStatus::Intact { events } = verify_chain(&mut conn).unwrap() else {
        panic!("intact chain expected");
    };
    assert!(events >= 5);
    let created: Vec<i64> = audit_events::table
        .filter(audit_events::action.eq("create"))
        .filter(audit_events::category.eq("TOKEN"))
        .order(audit_events::id.asc())
        .select(audit_events::id)
        .load(&mut *conn)
        .unwrap();
    diesel::update(audit_events::table.find(created[1]))
        .set(audit_events::reason.eq("edited by hand"))
        .execute(&mut *conn)
        .unwrap();
    assert!(
        matches!(verify_chain(&mut conn).unwrap(), ChainStatus::Broken { at_id, .. } if at_id == created[1])
    );
    diesel::update(audit_events::table.find(created[1]))
        .set(audit_events::reason.eq("because"))
        .execute(&mut *conn)
        .unwrap();
    assert!(matches!(
        verify_chain(&mut conn).unwrap(),
        ChainStatus::Intact { .. }
    ));
    diesel::delete(audit_events::table.find(created[0]))
        .execute(&mut *conn)
        .unwrap();
    assert!(
        matches!(verify_chain(&mut conn).unwrap(), ChainStatus::Broken { at_id, .. } if at_id == created[1])
    );
}

#[tokio::test]
async fn a_viewer_reads_but_cannot_change_or_show() {
    let app = spawn_app().await;
    app.login().await;
    app.create_token("visible", "1", "1d", "").await;
    app.user(common::Role::Viewer, "val").await;
    app.post("/logout", &[]).await;
    assert_eq!(
        status(&app.login_as("val", &common::user_password("val")).await),
        303
    );
    let html = app.get_html("/security/tokens").await;
    assert!(html.contains(">visible<"));
    assert!(
        !html.contains("href=\"/security/tokens/new\""),
        "no Add button for a viewer"
    );
    assert_eq!(
        status(&app.post("/security/tokens/visible/show", &[]).await),
        403
    );
    assert_eq!(status(&app.create_token("mine", "1", "1d", "").await), 403);
    assert_eq!(
        status(&app.post("/security/tokens/visible/delete", &[]).await),
        403
    );
    assert_eq!(
        status(&app.post("/security/tokens/cleanup", &[]).await),
        403
    );
    assert_eq!(status(&app.get("/security/tokens/visible").await), 200);
    let denied = events(&app, "show")
        .into_iter()
        .filter(|e| e.outcome == hostca::models::kinds::Outcome::Failure)
        .count();
    assert_eq!(denied, 1);
}

#[tokio::test]
async fn unknown_routes_and_huge_bodies_get_clear_errors() {
    let app = spawn_app().await;
    app.login().await;
    let r = app.get("/no/such/page").await;
    assert_eq!(status(&r), 404);
    let big = "x".repeat(200 * 1024);
    let r = app.create_token("big", "1", "1d", &big).await;
    assert_eq!(status(&r), 413);
    let r = app
        .client
        .post(app.url("/security/tokens"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![0xffu8, 0xfe, b'=', 0x80])
        .send()
        .await
        .unwrap();
    assert!(matches!(status(&r), 400 | 403), "{}", status(&r));
}

#[tokio::test]
async fn a_bookmarked_page_comes_back_after_login() {
    let app = spawn_app().await;
    let r = app.get("/security/tokens?state=active&sort=name").await;
    assert_eq!(status(&r), 303);
    let r = app.login_as("admin", ADMIN_PASSWORD).await;
    assert_eq!(location(&r), "/security/tokens?state=active&sort=name");
}
