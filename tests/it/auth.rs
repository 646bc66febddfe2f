//! Login, sessions, API keys and HTTP hardening, attacked over HTTP against the real
//! application (SQLite, or PostgreSQL with HOSTCA_TEST_DATABASE_URL).

use crate::common;

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    csrf_in, element_text, location, spawn_app, spawn_app_with, status, Browser, TestApp,
    ADMIN_PASSWORD,
};
use diesel::prelude::*;
use hostca::db::schema::{api_keys, audit_events, login_attempts, users};
use reqwest::redirect::Policy;

/// A browser whose connections come from `ip` (any 127.x.y.z works on Linux loopback):
/// the server sees it as another machine.
fn browser_from(app: &TestApp, ip: &str) -> Browser {
    Browser {
        address: app.address.clone(),
        client: reqwest::Client::builder()
            .cookie_store(true)
            .pool_idle_timeout(common::CLIENT_IDLE)
            .redirect(Policy::none())
            .local_address(ip.parse::<IpAddr>().unwrap())
            .build()
            .unwrap(),
    }
}

/// Adds a user through the Users page; they must change the password at first login.
async fn add_user(app: &TestApp, username: &str, role: &str, password: &str) {
    let r = app
        .post(
            "/admin/users",
            &[
                ("username", username),
                ("role", role),
                ("password", password),
            ],
        )
        .await;
    assert_eq!(status(&r), 303, "user {username} created");
}

async fn change_password(b: &Browser, current: &str, new: &str) {
    let r = b
        .post(
            "/account/password",
            &[("current", current), ("new", new), ("confirm", new)],
        )
        .await;
    assert_eq!(status(&r), 303, "password changed");
}

async fn new_key(b: &Browser, name: &str, valid_for: &str) -> reqwest::Response {
    b.post(
        "/account/api-keys",
        &[("name", name), ("valid_for", valid_for)],
    )
    .await
}

async fn key_value(b: &Browser, name: &str) -> String {
    let html = new_key(b, name, "").await.text().await.unwrap();
    element_text(&html, "api-key-value").expect("the new key is shown")
}

async fn api_get(app: &TestApp, key: &str, path: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .get(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let s = status(&r);
    (s, r.json().await.unwrap_or(serde_json::Value::Null))
}

fn failures(app: &TestApp, username: &str, address: &str) -> i64 {
    login_attempts::table
        .filter(login_attempts::username.eq(username))
        .filter(login_attempts::address.eq(address))
        .filter(login_attempts::success.eq(false))
        .count()
        .get_result(&mut *app.conn())
        .unwrap()
}

/// Runs the `hostca` binary; returns (success, stdout, stderr).
async fn hostca(args: Vec<String>, envs: Vec<(String, String)>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hostca"));
        cmd.args(&args)
            .env_remove("HOSTCA_API_KEY")
            .env_remove("HOSTCA_API_KEY_FILE")
            .env_remove("HOSTCA_SERVER")
            .env_remove("HOSTCA_DATA_DIR")
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "error");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("hostca runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_login_flood_leaves_the_console_and_enrollment_answering() {
    let app = spawn_app().await;
    app.login().await;
    let value = app.token_value("during-flood", "5").await;
    let csr = common::quick_csr("during-flood.example.com");
    // 200 attackers, each from an address of its own and with a name of its own (no
    // throttle applies), each with a login form already loaded: the flood is 200 password
    // checks at once.
    let mut attackers = Vec::new();
    for i in 0..200u32 {
        let b = browser_from(&app, &format!("127.0.{}.{}", 1 + i / 100, 1 + i % 100));
        let csrf = b.csrf().await;
        attackers.push((b, csrf));
    }
    let finished = Arc::new(AtomicUsize::new(0));
    let flood: Vec<_> = attackers
        .into_iter()
        .enumerate()
        .map(|(i, (b, csrf))| {
            let finished = finished.clone();
            tokio::spawn(async move {
                let name = if i % 2 == 0 {
                    "admin".to_string()
                } else {
                    format!("guess{i}")
                };
                let r = b
                    .post_raw(
                        "/login",
                        &[
                            ("csrf_token", csrf.as_str()),
                            ("username", name.as_str()),
                            ("password", "a wrong guess"),
                        ],
                    )
                    .await;
                finished.fetch_add(1, Ordering::SeqCst);
                status(&r)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let bound = Duration::from_secs(2);
    let t = Instant::now();
    assert_eq!(status(&app.get("/ca.pem").await), 200);
    let ca_time = t.elapsed();
    let t = Instant::now();
    let (s, body) = app
        .enroll("during-flood.example.com", &csr, Some(&value))
        .await;
    let enroll_time = t.elapsed();
    assert_eq!(s, 201, "{body}");
    let t = Instant::now();
    assert_eq!(status(&app.get("/security/certificates").await), 200);
    let page_time = t.elapsed();
    let done_during_probes = finished.load(Ordering::SeqCst);
    eprintln!(
        "during the flood: /ca.pem {ca_time:?}, enrollment {enroll_time:?}, console page {page_time:?}; {done_during_probes}/200 logins done"
    );

    let mut statuses = Vec::new();
    for f in flood {
        statuses.push(f.await.unwrap());
    }
    assert!(
        statuses.iter().all(|s| *s == 401),
        "every wrong login is a 401, none a 5xx: {statuses:?}"
    );
    assert!(
        ca_time < bound && enroll_time < bound && page_time < bound,
        "during the flood: /ca.pem {ca_time:?}, enrollment {enroll_time:?}, a console page {page_time:?} (bound {bound:?}); {done_during_probes} of 200 logins had finished"
    );
    assert!(
        done_during_probes < 200,
        "the probes ran while the flood was still being hashed"
    );
}

#[tokio::test]
async fn an_attacker_hammering_admin_does_not_lock_out_the_real_admin() {
    let app = spawn_app().await;
    let attacker = browser_from(&app, "127.0.0.2");
    for _ in 0..5 {
        assert_eq!(status(&attacker.login_as("admin", "guess").await), 401);
    }
    // The pair (admin, attacker's address) waits, even with the right password...
    let r = attacker.login_as("admin", ADMIN_PASSWORD).await;
    assert_eq!(status(&r), 429);
    let html = r.text().await.unwrap();
    assert!(html.contains("try again in 1 minute"), "{html}");
    // ...and attempts refused by the throttle do not count (nor extend the delay).
    for _ in 0..3 {
        assert_eq!(status(&attacker.login_as("admin", "guess").await), 429);
    }
    assert_eq!(failures(&app, "admin", "127.0.0.2"), 5);
    // The real administrator, from another address, logs in meanwhile.
    let r = app.login_as("admin", ADMIN_PASSWORD).await;
    assert_eq!(status(&r), 303, "the real admin is not locked out");
    assert_eq!(status(&app.get("/security/tokens").await), 200);
    // Another user from the attacker's address is not caught by admin's throttle.
    assert_eq!(status(&attacker.login_as("someone", "guess").await), 401);

    // The delay grows: once the first has passed, one more failure costs 2 minutes.
    diesel::update(
        login_attempts::table
            .filter(login_attempts::username.eq("admin"))
            .filter(login_attempts::address.eq("127.0.0.2")),
    )
    .set(login_attempts::at.eq(hostca::db::now() - chrono::Duration::minutes(2)))
    .execute(&mut *app.conn())
    .unwrap();
    assert_eq!(status(&attacker.login_as("admin", "guess").await), 401);
    let r = attacker.login_as("admin", ADMIN_PASSWORD).await;
    assert_eq!(status(&r), 429);
    assert!(r.text().await.unwrap().contains("try again in 2 minutes"));
    assert_eq!(failures(&app, "admin", "127.0.0.2"), 6);

    // `hostca admin reset-password` clears the user's counters.
    let mut args: Vec<String> = [
        "admin",
        "reset-password",
        "--data-dir",
        app.data_dir().to_str().unwrap(),
        "--username",
        "admin",
        "--password-env",
        "PW",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(url) = &app.config.database_url {
        args.extend(["--database-url".to_string(), url.clone()]);
    }
    let (ok, _, stderr) = hostca(
        args,
        vec![("PW".into(), "the operator's new password".into())],
    )
    .await;
    assert!(ok, "{stderr}");
    assert_eq!(failures(&app, "admin", "127.0.0.2"), 0);
    let r = attacker
        .login_as("admin", "the operator's new password")
        .await;
    assert_eq!(status(&r), 303, "no delay left after the reset");
    assert_eq!(location(&r), "/account/password");
}

/// The session cookie of a response, as `name=value`.
fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("hostca_session="))
        .map(|v| v.split(';').next().unwrap().to_string())
}

#[tokio::test]
async fn logout_ends_the_session_on_the_server_and_only_that_one() {
    let app = spawn_app().await;
    // A browser whose cookie we hold in hand, to copy it.
    let raw = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let r = raw.get(app.url("/login")).send().await.unwrap();
    let mut cookie = session_cookie(&r).unwrap();
    let csrf = csrf_in(&r.text().await.unwrap()).unwrap();
    let r = raw
        .post(app.url("/login"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(status(&r), 303);
    cookie = session_cookie(&r).unwrap();
    let copied = cookie.clone();
    let r = raw
        .get(app.url("/security/tokens"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(status(&r), 200);
    if let Some(c) = session_cookie(&r) {
        cookie = c;
    }
    let csrf = csrf_in(&r.text().await.unwrap()).unwrap();

    // The same user in another browser.
    let other = app.new_browser();
    other.login().await;

    let r = raw
        .post(app.url("/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(status(&r), 303);
    for (what, c) in [("copied", &copied), ("latest", &cookie)] {
        let r = raw
            .get(app.url("/security/tokens"))
            .header("cookie", c)
            .send()
            .await
            .unwrap();
        assert_eq!(status(&r), 303, "the {what} cookie is refused after logout");
        assert_eq!(location(&r), "/login");
    }
    assert_eq!(
        status(&other.get("/security/tokens").await),
        200,
        "the other browser stays logged in"
    );
}

#[tokio::test]
async fn a_user_who_must_change_the_password_reaches_only_that_page() {
    let app = spawn_app().await;
    app.login().await;
    add_user(&app, "mona", "administrator", "mona initial password").await;
    let mona = app.new_browser();
    let r = mona.login_as("mona", "mona initial password").await;
    assert_eq!(location(&r), "/account/password");
    for page in [
        "/security/tokens",
        "/security/settings",
        "/admin/users",
        "/admin/api-keys",
        "/account/api-keys",
        "/",
    ] {
        let r = mona.get(page).await;
        assert_eq!(status(&r), 303, "{page}");
        assert!(
            location(&r) == "/account/password" || page == "/",
            "{page} -> {}",
            location(&r)
        );
    }
    // A form posted anyway changes nothing.
    let r = new_key(&mona, "sneaky", "").await;
    assert_eq!(status(&r), 303);
    assert_eq!(location(&r), "/account/password");
    let r = mona
        .post("/security/tokens", &[("name", "t"), ("max_uses", "1")])
        .await;
    assert_eq!(location(&r), "/account/password");
    let keys: i64 = api_keys::table
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    assert_eq!(keys, 0);
    assert_eq!(status(&mona.get("/account/password").await), 200);

    // A key that exists for such a user (made before the flag was set) is refused.
    let user = hostca::models::user::User::find_by_username(&mut app.conn(), "mona")
        .unwrap()
        .unwrap();
    let (_, early) = hostca::services::api_keys::create(&app.ctx, &user, "early", "").unwrap();
    let (s, body) = api_get(&app, &early, "/api/v1/tokens").await;
    assert_eq!(s, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("/account/password"),
        "{body}"
    );

    // Logging out works, and so does changing the password, which opens the console.
    change_password(&mona, "mona initial password", "mona's own password").await;
    assert_eq!(status(&mona.get("/security/tokens").await), 200);
    assert_eq!(status(&mona.get("/admin/users").await), 200);
    assert_eq!(status(&mona.post("/logout", &[]).await), 303);
}

#[tokio::test]
async fn a_password_change_or_reset_revokes_the_users_api_keys() {
    let app = spawn_app().await;
    app.login().await;
    add_user(&app, "kim", "security_admin", "kim initial password").await;
    let kim = app.new_browser();
    kim.login_as("kim", "kim initial password").await;
    change_password(&kim, "kim initial password", "kim's own password").await;
    let html = kim.get_html("/account/password").await;
    assert!(
        html.contains("revokes all your API keys"),
        "the page says so before the change"
    );
    let k1 = key_value(&kim, "k1").await;
    assert_eq!(api_get(&app, &k1, "/api/v1/tokens").await.0, 200);
    change_password(&kim, "kim's own password", "kim's second password").await;
    let (s, body) = api_get(&app, &k1, "/api/v1/tokens").await;
    assert_eq!(s, 401, "{body}");
    assert!(body["message"].as_str().unwrap().contains("revoked"));

    kim.login_as("kim", "kim's second password").await;
    let k2 = key_value(&kim, "k2").await;
    assert_eq!(api_get(&app, &k2, "/api/v1/tokens").await.0, 200);
    let html = app.get_html("/admin/users").await;
    assert!(html.contains("revokes all their API keys"));
    let r = app
        .post(
            "/admin/users/kim/password",
            &[("password", "kim reset password")],
        )
        .await;
    assert_eq!(status(&r), 303);
    assert_eq!(api_get(&app, &k2, "/api/v1/tokens").await.0, 401);
    let described: i64 = audit_events::table
        .filter(audit_events::action.eq("reset_password"))
        .filter(audit_events::description.like("%API key was revoked%"))
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    assert_eq!(described, 1);
}

/// The ids in the revoke forms of /admin/api-keys, with the row text before each.
fn revoke_ids(html: &str) -> Vec<String> {
    html.split("action=\"/admin/api-keys/")
        .skip(1)
        .map(|rest| rest[..rest.find('/').unwrap()].to_string())
        .collect()
}

#[tokio::test]
async fn administrators_see_and_revoke_every_users_keys() {
    let app = spawn_app().await;
    app.login().await;
    add_user(&app, "lee", "viewer", "lee initial password").await;
    let lee = app.new_browser();
    lee.login_as("lee", "lee initial password").await;
    change_password(&lee, "lee initial password", "lee's own password").await;
    let lee_key = key_value(&lee, "lee-script").await;
    let admin_key = key_value(&app, "admin-script").await;

    let html = app.get_html("/admin/api-keys").await;
    assert!(html.contains("lee-script") && html.contains("admin-script"));
    assert!(html.contains(">lee<") && html.contains(">admin<"));
    let ids = revoke_ids(&html);
    assert_eq!(ids.len(), 2);
    let lee_id: i64 = api_keys::table
        .filter(api_keys::name.eq("lee-script"))
        .select(api_keys::id)
        .first(&mut *app.conn())
        .unwrap();
    let path = format!("/admin/api-keys/{lee_id}/revoke");
    assert!(ids.contains(&lee_id.to_string()));

    // Refused: no CSRF token, a foreign one, a non-administrator, an unknown id.
    assert_eq!(status(&app.post_raw(&path, &[]).await), 403);
    assert_eq!(
        status(&app.post_raw(&path, &[("csrf_token", "0000")]).await),
        403
    );
    assert_eq!(status(&lee.get("/admin/api-keys").await), 403);
    assert_eq!(status(&lee.post(&path, &[]).await), 403);
    assert_eq!(api_get(&app, &lee_key, "/api/v1/tokens").await.0, 200);
    assert_eq!(
        status(&app.post("/admin/api-keys/999999/revoke", &[]).await),
        404
    );
    assert_eq!(
        status(&app.post("/admin/api-keys/abc/revoke", &[]).await),
        400
    );

    let r = app.post(&path, &[]).await;
    assert_eq!(status(&r), 303);
    assert_eq!(api_get(&app, &lee_key, "/api/v1/tokens").await.0, 401);
    assert_eq!(api_get(&app, &admin_key, "/api/v1/tokens").await.0, 200);
    assert_eq!(status(&app.post(&path, &[]).await), 409, "already revoked");
    let audited: i64 = audit_events::table
        .filter(audit_events::action.eq("revoke_api_key"))
        .filter(audit_events::actor.eq("admin"))
        .filter(audit_events::description.like("%of lee revoked by an administrator%"))
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    assert_eq!(audited, 1);
    let refused: i64 = audit_events::table
        .filter(audit_events::actor.eq("lee"))
        .filter(audit_events::outcome.eq("failure"))
        .count()
        .get_result(&mut *app.conn())
        .unwrap();
    assert!(refused >= 2, "lee's attempts are audited");
}

#[tokio::test]
async fn new_api_keys_expire_after_90_days_and_at_most_a_year() {
    let app = spawn_app().await;
    app.login().await;
    key_value(&app, "default").await;
    let expires: Option<chrono::NaiveDateTime> = api_keys::table
        .filter(api_keys::name.eq("default"))
        .select(api_keys::expires_at)
        .first(&mut *app.conn())
        .unwrap();
    let days = (expires.expect("a default expiry") - hostca::db::now()).num_hours() as f64 / 24.0;
    assert!((89.9..=90.0).contains(&days), "{days}");

    for too_long in ["366d", "999d", "365d1m"] {
        let r = new_key(&app, "long", too_long).await;
        assert_eq!(status(&r), 422, "{too_long}");
        let html = r.text().await.unwrap();
        let error = element_text(&html, "valid_for-error").expect("a field error");
        assert!(error.contains("365d"), "{error}");
    }
    assert_eq!(status(&new_key(&app, "year", "365d").await), 200);
    let html = app.get_html("/account/api-keys").await;
    assert!(html.contains("empty for 90 days"));
    assert!(!html.contains(">long<"));
}

#[tokio::test]
async fn a_short_admin_password_in_the_environment_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _pg) = common::fresh_database();
    let mut config = common::test_config(dir.path().join("data"), url.clone());
    config.admin_password = Some("too short".into());
    let err = hostca::startup::Application::build(&config)
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("HOSTCA_ADMIN_PASSWORD") && text.contains("at least 12 characters"),
        "{text}"
    );
    // Nobody was created with the weak password.
    if let Ok(pool) = hostca::db::connect(&config.database_url(), 1) {
        let n: i64 = users::table
            .count()
            .get_result(&mut *hostca::db::get(&pool).unwrap())
            .unwrap();
        assert_eq!(n, 0);
    }
    if let Some((base, name)) = _pg {
        let mut c = diesel::PgConnection::establish(&base).unwrap();
        use diesel::connection::SimpleConnection;
        let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
    // The same binary, the same rule.
    let (ok, _, stderr) = hostca(
        vec![
            "serve".into(),
            "--data-dir".into(),
            dir.path().join("bin").to_str().unwrap().into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
        ],
        vec![("HOSTCA_ADMIN_PASSWORD".into(), "short".into())],
    )
    .await;
    assert!(!ok);
    assert!(stderr.contains("HOSTCA_ADMIN_PASSWORD"), "{stderr}");
}

#[tokio::test]
async fn secrets_on_the_command_line_warn_and_the_file_forms_do_not() {
    let app = spawn_app().await;
    app.login().await;
    let key = key_value(&app, "cli").await;
    let dir = app.scratch();
    let key_file = dir.join("api.key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["token", "list", "--server", &app.address]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let (ok, _, stderr) = hostca(base(&["--api-key", &key]), vec![]).await;
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("warning")
            && stderr.contains("HOSTCA_API_KEY")
            && stderr.contains("--api-key-file"),
        "{stderr}"
    );
    let (ok, _, stderr) = hostca(
        base(&["--api-key-file", key_file.to_str().unwrap()]),
        vec![],
    )
    .await;
    assert!(ok && !stderr.contains("warning"), "{stderr}");
    let (ok, _, stderr) = hostca(base(&[]), vec![("HOSTCA_API_KEY".into(), key.clone())]).await;
    assert!(ok && !stderr.contains("warning"), "{stderr}");
    let (ok, _, stderr) = hostca(base(&["--api-key-file", "/nonexistent/key"]), vec![]).await;
    assert!(
        !ok && stderr.contains("cannot read the API key file"),
        "{stderr}"
    );

    let host_dir = dir.join("host");
    let (_, _, stderr) = hostca(
        vec![
            "get-certificate".into(),
            "--server".into(),
            app.address.clone(),
            "--dir".into(),
            host_dir.to_str().unwrap().into(),
            "--hostname".into(),
            "cli.example.com".into(),
            "--token".into(),
            "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF".into(),
        ],
        vec![],
    )
    .await;
    assert!(
        stderr.contains("warning") && stderr.contains("--token-file"),
        "{stderr}"
    );
}

#[tokio::test]
async fn under_tls_hsts_and_a_host_prefixed_cookie() {
    let app = spawn_app_with(|c| c.tls = true).await;
    let r = app.get("/login").await;
    assert_eq!(
        r.headers()
            .get("strict-transport-security")
            .map(|v| v.to_str().unwrap()),
        Some("max-age=31536000")
    );
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("__Host-hostca_session="), "{cookie}");
    assert!(cookie.contains("Secure"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    app.login().await;
    assert_eq!(status(&app.get("/security/tokens").await), 200);

    let plain = spawn_app().await;
    let r = plain.get("/login").await;
    assert!(
        r.headers().get("strict-transport-security").is_none(),
        "no HSTS over plain HTTP"
    );
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("hostca_session="), "{cookie}");
}

#[tokio::test]
async fn a_cross_site_link_keeps_the_session_and_a_cross_site_post_is_refused() {
    let app = spawn_app().await;
    let r = app.login_as("admin", ADMIN_PASSWORD).await;
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    // A link followed from another site: the browser sends the Lax cookie.
    let r = app
        .client
        .get(app.url("/security/tokens"))
        .header("referer", "https://tickets.example.net/issue/42")
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(status(&r), 200, "the user is still logged in");
    assert!(r.text().await.unwrap().contains("Tokens"));
    // A form posted from another site carries no CSRF token: refused, nothing made.
    let r = app
        .client
        .post(app.url("/security/tokens"))
        .header("origin", "https://evil.example.net")
        .header("sec-fetch-site", "cross-site")
        .form(&[("name", "forged"), ("max_uses", "1"), ("valid_for", "1d")])
        .send()
        .await
        .unwrap();
    assert_eq!(status(&r), 403);
    assert_eq!(status(&app.get("/security/tokens/forged").await), 404);
}

#[tokio::test]
async fn data_directory_modes_are_tightened_at_every_start() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    app.login().await;
    let data = app.data_dir();
    let sqlite = app.config.database_url.is_none();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let files: Vec<std::path::PathBuf> = ["session.key", "token.key"]
        .iter()
        .map(|f| data.join(f))
        .chain(ca_key_files(&data))
        .chain(
            ["hostca.sqlite3", "hostca.sqlite3-wal", "hostca.sqlite3-shm"]
                .iter()
                .filter(|_| sqlite)
                .map(|f| data.join(f)),
        )
        .collect();
    assert_eq!(mode(&data), 0o700);
    for f in &files {
        assert_eq!(mode(f), 0o600, "{} on first start", f.display());
    }
    // Someone loosens them (a copy, a restore, an editor)...
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in &files {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    // ...the next start tightens them again.
    let app = app.restart().await;
    assert_eq!(mode(&data), 0o700);
    for f in &files {
        assert_eq!(mode(f), 0o600, "{} after restart", f.display());
    }
    assert_eq!(status(&app.get("/security/tokens").await), 200);
}

#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_a_configured_proxy() {
    let proxy: IpAddr = "127.0.0.3".parse().unwrap();
    let app = spawn_app_with(|c| c.trusted_proxies = vec![proxy]).await;
    let login_with = |b: Browser, forwarded: &'static str, password: &'static str| async move {
        let csrf = b.csrf().await;
        let r = b
            .client
            .post(b.url("/login"))
            .header("x-forwarded-for", forwarded)
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("username", "admin"),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        status(&r)
    };
    // Through the proxy, an attacker at 198.51.100.7 (its own header spoofs another
    // address, which the proxy's appended entry overrides) is throttled...
    let via_proxy = browser_from(&app, "127.0.0.3");
    for _ in 0..5 {
        assert_eq!(
            login_with(via_proxy.clone(), "10.9.9.9, 198.51.100.7", "guess").await,
            401
        );
    }
    assert_eq!(failures(&app, "admin", "198.51.100.7"), 5);
    assert_eq!(
        login_with(via_proxy.clone(), "198.51.100.7", ADMIN_PASSWORD).await,
        429
    );
    // ...while the real administrator, behind the same proxy, logs in.
    let admin = browser_from(&app, "127.0.0.3");
    assert_eq!(login_with(admin, "203.0.113.9", ADMIN_PASSWORD).await, 303);

    // A client that is not the proxy cannot choose its address with the header.
    let direct = browser_from(&app, "127.0.0.4");
    assert_eq!(login_with(direct, "203.0.113.9", "guess").await, 401);
    assert_eq!(failures(&app, "admin", "127.0.0.4"), 1);
    assert_eq!(failures(&app, "admin", "203.0.113.9"), 0);
}

/// The CA key files of a data directory (`ca-root-*.key`, `ca-issuing-*.key`).
pub fn ca_key_files(data: &std::path::Path) -> Vec<std::path::PathBuf> {
    let files = ca_key_files_unchecked(data);
    if crate::common::issuing_key_in_token() {
        assert_eq!(
            files.len(),
            1,
            "the root's key; the issuing key is in the token: {files:?}"
        );
    } else {
        assert_eq!(files.len(), 2, "a root key and an issuing key: {files:?}");
    }
    files
}

pub fn ca_key_files_unchecked(data: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(data)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            n.starts_with("ca-") && n.ends_with(".key")
        })
        .collect();
    files.sort();
    files
}
