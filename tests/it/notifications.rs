//! Notifications: real webhooks received on a local HTTP server (signatures verified),
//! real mail received by a local aiosmtpd, retries with backoff, nothing sent twice
//! after a restart, and the page's role and secret rules.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostca::models::user::Role;
use hostca::services::notifications as svc;

use crate::common::{quick_csr, spawn_app, status, TestApp};

#[derive(Clone, Debug)]
struct Received {
    event: String,
    delivery: String,
    signature: String,
    body: String,
}

/// A webhook receiver: answers 500 to the first `fail_first` requests, 204 afterwards.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    requests: Arc<Mutex<usize>>,
}

fn receiver(fail_first: usize) -> Receiver {
    serve_hooks(fail_first, None)
}

/// The same receiver over https, with `tls` as its server configuration.
fn tls_receiver(tls: rustls::ServerConfig) -> Receiver {
    serve_hooks(0, Some(Arc::new(tls)))
}

fn serve_hooks(fail_first: usize, tls: Option<Arc<rustls::ServerConfig>>) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}/hook", listener.local_addr().unwrap());
    let got: Arc<Mutex<Vec<Received>>> = Default::default();
    let requests: Arc<Mutex<usize>> = Default::default();
    let (g, n) = (got.clone(), requests.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let _ = match &tls {
                None => answer(stream, fail_first, &g, &n),
                Some(config) => {
                    let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                        continue;
                    };
                    // A client that refuses the certificate ends here, with an error.
                    answer(rustls::StreamOwned::new(conn, stream), fail_first, &g, &n)
                }
            };
        }
    });
    Receiver { url, got, requests }
}

/// Reads one request and answers it: 500 to the first `fail_first`, 204 afterwards.
fn answer(
    mut stream: impl Read + Write,
    fail_first: usize,
    got: &Mutex<Vec<Received>>,
    requests: &Mutex<usize>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(&mut stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut headers = std::collections::HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    drop(reader);
    let count = {
        let mut n = requests.lock().unwrap();
        *n += 1;
        *n
    };
    let reply = if count <= fail_first {
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    } else {
        let header = |k: &str| headers.get(k).cloned().unwrap_or_default();
        got.lock().unwrap().push(Received {
            event: header("x-hostca-event"),
            delivery: header("x-hostca-delivery"),
            signature: header("x-hostca-signature-256"),
            body: String::from_utf8(body).unwrap(),
        });
        "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    };
    stream.write_all(reply.as_bytes())?;
    stream.flush()
}

impl Receiver {
    fn events(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// HMAC-SHA256 of the body, as a receiver checks it (independently of hostca's code).
fn verify(secret: &str, r: &Received) -> bool {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(r.body.as_bytes());
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    expected == r.signature
}

/// Runs the scan and the worker's sending at `offset` from now, as the worker would.
async fn tick(app: &TestApp, offset: chrono::Duration) {
    let ctx = app.ctx.clone();
    tokio::task::spawn_blocking(move || {
        let now = hostca::db::now() + offset;
        svc::scan(&ctx, now).unwrap();
        svc::deliver_due(&ctx, now).unwrap();
    })
    .await
    .unwrap();
}

async fn add_webhook(
    app: &TestApp,
    name: &str,
    url: &str,
    secret: &str,
    events: &[&str],
    digest: bool,
) {
    let mut fields = vec![
        ("kind", "webhook"),
        ("name", name),
        ("destination", url),
        ("secret", secret),
        ("digest_hour", "6"),
    ];
    for e in events {
        fields.push(("events", e));
    }
    if digest {
        fields.push(("digest", "on"));
    }
    let r = app.post("/security/notifications", &fields).await;
    assert_eq!(status(&r), 303, "target {name} added");
}

/// A logged-in server with one webhook (secret "k") subscribed to `event` alone.
async fn watching(event: &str) -> (TestApp, Receiver) {
    let app = spawn_app().await;
    app.login().await;
    let hook = receiver(0);
    add_webhook(&app, event, &hook.url, "k", &[event], false).await;
    (app, hook)
}

async fn enroll_with_token(app: &TestApp, name: &str, token: &str) -> serde_json::Value {
    let (code, body) = app.enroll(name, &quick_csr(name), Some(token)).await;
    assert_eq!(code, 201, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_retried_and_never_sent_twice() {
    let app = spawn_app().await;
    app.login().await;
    let secret = "s3cret-webhook-key-Zq9";
    let hook = receiver(1);
    add_webhook(
        &app,
        "ops",
        &hook.url,
        secret,
        &["cert_expiring", "cert_revoked", "token_used_up"],
        false,
    )
    .await;

    // A token used up, a certificate revoked, one near its end.
    let token = app.token_value("one-shot", "1").await;
    let first = enroll_with_token(&app, "web1.example.com", &token).await;
    let token2 = app.token_value("two", "5").await;
    let second = enroll_with_token(&app, "web2.example.com", &token2).await;
    let serial = first["serial"].as_str().unwrap().to_string();
    let r = app
        .post(
            &format!("/security/certificates/{serial}/revoke"),
            &[("reason", "key_compromise")],
        )
        .await;
    assert_eq!(status(&r), 303);
    let serial2 = second["serial"].as_str().unwrap().to_string();
    {
        use diesel::prelude::*;
        use hostca::db::schema::certificates as c;
        let soon = hostca::db::now() + chrono::Duration::days(10);
        diesel::update(c::table.filter(c::serial.eq(&serial2)))
            .set(c::not_after.eq(soon))
            .execute(&mut *app.conn())
            .unwrap();
    }

    // The first attempt is refused (500); the retry waits its backoff.
    tick(&app, chrono::Duration::zero()).await;
    tick(&app, chrono::Duration::zero()).await;
    assert!(*hook.requests.lock().unwrap() >= 1);
    // An hour on, every backoff has passed.
    tick(&app, chrono::Duration::hours(1)).await;
    let got = hook.events();
    let kinds: Vec<&str> = got.iter().map(|r| r.event.as_str()).collect();
    assert!(kinds.contains(&"token_used_up"), "{kinds:?}");
    assert!(kinds.contains(&"cert_revoked"), "{kinds:?}");
    assert!(kinds.contains(&"cert_expiring"), "{kinds:?}");
    for r in &got {
        assert!(verify(secret, r), "signature of {r:?}");
        assert!(!verify("another secret", r));
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["event"], r.event.as_str());
        assert!(body["occurred_at"].as_str().unwrap().ends_with('Z'));
        assert!(!r.delivery.is_empty());
    }
    let expiring = got.iter().find(|r| r.event == "cert_expiring").unwrap();
    let body: serde_json::Value = serde_json::from_str(&expiring.body).unwrap();
    assert_eq!(body["data"]["serial"], serial2.as_str());
    assert_eq!(body["data"]["threshold_days"], 14);
    let revoked = got.iter().find(|r| r.event == "cert_revoked").unwrap();
    let body: serde_json::Value = serde_json::from_str(&revoked.body).unwrap();
    assert_eq!(body["data"]["reason"], "key_compromise");
    let sent = got.len();
    // Each delivery once: no two with the same delivery id.
    let mut ids: Vec<&str> = got.iter().map(|r| r.delivery.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), sent);

    // The page lists them; the secret is neither in the page nor in clear in the row.
    let html = app.get_html("/security/notifications").await;
    assert!(html.contains("Sent"), "deliveries listed");
    assert!(!html.contains(secret));
    {
        use diesel::prelude::*;
        use hostca::db::schema::notification_targets as nt;
        let sealed: Option<Vec<u8>> = nt::table
            .select(nt::secret_sealed)
            .first(&mut *app.conn())
            .unwrap();
        let sealed = sealed.expect("a secret is stored");
        assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    // Sends are audited.
    let audit = app.get_html("/security/audit?category=NOTIFY").await;
    assert!(audit.contains("notify_sent"), "audited");

    // After a restart (the worker scans at start), and more scans: nothing again.
    let app = app.restart().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    tick(&app, chrono::Duration::hours(2)).await;
    tick(&app, chrono::Duration::hours(3)).await;
    assert_eq!(hook.events().len(), sent, "nothing is sent twice");

    // Past the next threshold, the same certificate is announced again (7 days).
    {
        use diesel::prelude::*;
        use hostca::db::schema::certificates as c;
        let sooner = hostca::db::now() + chrono::Duration::days(5);
        diesel::update(c::table.filter(c::serial.eq(&serial2)))
            .set(c::not_after.eq(sooner))
            .execute(&mut *app.conn())
            .unwrap();
    }
    tick(&app, chrono::Duration::zero()).await;
    let again: Vec<_> = hook
        .events()
        .into_iter()
        .filter(|r| r.event == "cert_expiring")
        .collect();
    assert_eq!(again.len(), 2, "one per threshold");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_button_digest_and_roles() {
    let app = spawn_app().await;
    app.login().await;
    let hook = receiver(0);
    add_webhook(
        &app,
        "digest",
        &hook.url,
        "k",
        &["cert_revoked", "token_used_up"],
        true,
    )
    .await;
    let html = app.get_html("/security/notifications").await;
    let id = html
        .split("/security/notifications/")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap()
        .to_string();
    // Send test: delivered at once, the result flashed.
    let r = app
        .post(&format!("/security/notifications/{id}/test"), &[])
        .await;
    assert_eq!(status(&r), 303);
    let html = app.get_html("/security/notifications").await;
    assert!(html.contains("Test notification sent to digest"), "flash");
    assert_eq!(hook.events()[0].event, "test");
    assert!(verify("k", &hook.events()[0]));

    // A digest target holds its events and sends one summary a day.
    let token = app.token_value("once", "1").await;
    enroll_with_token(&app, "db1.example.com", &token).await;
    tick(&app, chrono::Duration::zero()).await;
    let r = app.post("/security/notifications/digest", &[]).await;
    assert_eq!(status(&r), 303);
    tick(&app, chrono::Duration::zero()).await;
    let got = hook.events();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1].event, "digest");
    let body: serde_json::Value = serde_json::from_str(&got[1].body).unwrap();
    assert_eq!(body["data"]["count"], 1);
    assert_eq!(body["data"]["events"][0]["event"], "token_used_up");
    // Once a day: pressing again queues nothing.
    let r = app.post("/security/notifications/digest", &[]).await;
    assert_eq!(status(&r), 303);
    tick(&app, chrono::Duration::zero()).await;
    assert_eq!(hook.events().len(), 2);

    // A viewer reads the page but its forged forms are refused.
    let viewer = app.user(Role::Viewer, "vera").await;
    let html = viewer.get_html("/security/notifications").await;
    assert!(html.contains("digest"));
    assert!(!html.contains("Add a target"));
    let r = viewer
        .post(
            "/security/notifications",
            &[
                ("kind", "webhook"),
                ("name", "evil"),
                ("destination", "http://127.0.0.1:9/x"),
                ("events", "cert_revoked"),
            ],
        )
        .await;
    assert_eq!(status(&r), 403);
    let r = viewer
        .post(&format!("/security/notifications/{id}/delete"), &[])
        .await;
    assert_eq!(status(&r), 403);
    // No CSRF token: refused too.
    let r = app
        .post_raw(
            "/security/notifications",
            &[("kind", "webhook"), ("name", "x")],
        )
        .await;
    assert_eq!(status(&r), 403);
    // Bad input says what to fix.
    let r = app
        .post(
            "/security/notifications",
            &[
                ("kind", "webhook"),
                ("name", "bad"),
                ("destination", "file:///etc/passwd"),
                ("events", "cert_revoked"),
            ],
        )
        .await;
    assert_eq!(status(&r), 422);
    assert!(r.text().await.unwrap().contains("http:// or https://"));
    // Delete, audited.
    let r = app
        .post(&format!("/security/notifications/{id}/delete"), &[])
        .await;
    assert_eq!(status(&r), 303);
    let audit = app.get_html("/security/audit?category=NOTIFY").await;
    assert!(audit.contains("notify_target_delete"));
}

/// Whether Python's aiosmtpd is there to receive mail; without it the mail tests skip,
/// unless HOSTCA_TEST_SMTP says they must run.
fn have_aiosmtpd() -> bool {
    let have = std::process::Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            std::env::var_os("HOSTCA_TEST_SMTP").is_none(),
            "HOSTCA_TEST_SMTP is set but aiosmtpd is missing"
        );
        eprintln!("skipped: python3 -m pip install aiosmtpd");
    }
    have
}

/// Mail through a local aiosmtpd (plain SMTP: TLS mode "none"). Skipped only when
/// aiosmtpd is missing and HOSTCA_TEST_SMTP is unset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_reaches_a_real_smtp_server() {
    if !have_aiosmtpd() {
        return;
    }
    let app = spawn_app().await;
    app.login().await;
    let dir = app.scratch();
    let mailbox = dir.join("mail");
    let port = crate::common::free_port();
    let mut server = std::process::Command::new("python3")
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(&mailbox)
        .spawn()
        .unwrap();
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let port_text = port.to_string();
    let r = app
        .post(
            "/security/notifications",
            &[
                ("kind", "email"),
                ("name", "mail"),
                ("destination", "ops@example.com, oncall@example.com"),
                ("events", "cert_revoked"),
                ("smtp_host", "127.0.0.1"),
                ("smtp_port", &port_text),
                ("smtp_tls", "none"),
                ("smtp_from", "hostca@example.com"),
            ],
        )
        .await;
    assert_eq!(status(&r), 303);
    let token = app.token_value("m", "2").await;
    let cert = enroll_with_token(&app, "mail1.example.com", &token).await;
    let serial = cert["serial"].as_str().unwrap();
    let r = app
        .post(
            &format!("/security/certificates/{serial}/revoke"),
            &[("reason", "cessation_of_operation")],
        )
        .await;
    assert_eq!(status(&r), 303);
    tick(&app, chrono::Duration::zero()).await;
    let mut text = String::new();
    for _ in 0..50 {
        text.clear();
        if let Ok(entries) = std::fs::read_dir(mailbox.join("new")) {
            for e in entries.flatten() {
                text.push_str(&std::fs::read_to_string(e.path()).unwrap());
            }
        }
        if !text.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text.contains(&format!("Certificate {serial}")), "{text}");
    assert!(text.contains("cessation_of_operation"), "{text}");
    assert!(text.contains("To: ops@example.com"), "{text}");
    // Restarted: nothing mailed again.
    let app = app.restart().await;
    tick(&app, chrono::Duration::hours(1)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let n = std::fs::read_dir(mailbox.join("new")).unwrap().count();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(n, 1);
}

/// The ID of the target named `name`, from its Edit link on the page.
async fn target_id(app: &TestApp, name: &str) -> String {
    let html = app.get_html("/security/notifications").await;
    let marker = format!("/edit\" aria-label=\"Edit {name}\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no Edit link for {name}"));
    let before = &html[..at];
    before[before.rfind('/').unwrap() + 1..].to_string()
}

/// Ticks (at `offset`) until the receiver has an `event`, for up to five seconds.
async fn wait_for(
    app: &TestApp,
    hook: &Receiver,
    event: &str,
    offset: chrono::Duration,
) -> Vec<Received> {
    for _ in 0..25 {
        tick(app, offset).await;
        let got: Vec<Received> = hook
            .events()
            .into_iter()
            .filter(|r| r.event == event)
            .collect();
        if !got.is_empty() {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no {event} delivery; received {:?}", hook.events());
}

fn body_of(r: &Received) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap()
}

/// The fields of a webhook target's edit form.
fn webhook_form<'a>(
    name: &'a str,
    url: &'a str,
    secret: &'a str,
    events: &[&'a str],
) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        ("name", name),
        ("destination", url),
        ("secret", secret),
        ("digest_hour", "6"),
    ];
    for e in events {
        f.push(("events", e));
    }
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_is_edited_by_administrators_only_and_keeps_its_secret() {
    let app = spawn_app().await;
    app.login().await;
    let secret = "first-secret-Kq2";
    let old_hook = receiver(0);
    let new_hook = receiver(0);
    add_webhook(&app, "ops", &old_hook.url, secret, &["cert_revoked"], false).await;
    add_webhook(&app, "other", &old_hook.url, "x", &["cert_revoked"], false).await;
    let id = target_id(&app, "ops").await;

    // The form shows the stored settings, never the secret.
    let html = app
        .get_html(&format!("/security/notifications/{id}/edit"))
        .await;
    assert!(html.contains("Edit target ops"), "{html}");
    assert!(html.contains(&format!("value=\"{}\"", old_hook.url)));
    assert!(html.contains("value=\"cert_revoked\" checked"));
    assert!(html.contains("Leave empty to keep the stored secret"));
    assert!(!html.contains(secret));

    // Renamed, moved, another event, the secret field left empty.
    let r = app
        .post(
            &format!("/security/notifications/{id}/edit"),
            &webhook_form(
                "ops-renamed",
                &new_hook.url,
                "",
                &["cert_revoked", "token_used_up"],
            ),
        )
        .await;
    assert_eq!(status(&r), 303);
    let html = app.get_html("/security/notifications").await;
    assert!(html.contains("Target ops-renamed saved."), "flash");
    assert!(html.contains("Token used up"));
    // The test goes to the new URL, signed with the old secret (sealed again under the
    // new name).
    let r = app
        .post(&format!("/security/notifications/{id}/test"), &[])
        .await;
    assert_eq!(status(&r), 303);
    let got = new_hook.events();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(verify(secret, &got[0]), "the stored secret signs");
    assert!(old_hook.events().is_empty());
    // The new event is delivered.
    let token = app.token_value("edit-once", "1").await;
    enroll_with_token(&app, "edit1.example.com", &token).await;
    wait_for(&app, &new_hook, "token_used_up", chrono::Duration::zero()).await;

    // On a digest (due at 23:00 UTC, not yet), an event is held; off the digest again,
    // what was held is sent. (In the hour 23 the digest would go at once: not tested.)
    use chrono::Timelike;
    if hostca::db::now().hour() < 23 {
        let mut digest = webhook_form("ops-renamed", &new_hook.url, "", &["token_used_up"]);
        digest.retain(|(k, _)| *k != "digest_hour");
        digest.extend([("digest", "on"), ("digest_hour", "23")]);
        let r = app
            .post(&format!("/security/notifications/{id}/edit"), &digest)
            .await;
        assert_eq!(status(&r), 303);
        let token = app.token_value("edit-twice", "1").await;
        enroll_with_token(&app, "edit2.example.com", &token).await;
        tick(&app, chrono::Duration::zero()).await;
        let used_up = |h: &Receiver| {
            h.events()
                .iter()
                .filter(|r| r.event == "token_used_up")
                .count()
        };
        assert_eq!(used_up(&new_hook), 1, "held for the digest");
        let r = app
            .post(
                &format!("/security/notifications/{id}/edit"),
                &webhook_form("ops-renamed", &new_hook.url, "", &["token_used_up"]),
            )
            .await;
        assert_eq!(status(&r), 303);
        tick(&app, chrono::Duration::zero()).await;
        assert_eq!(
            used_up(&new_hook),
            2,
            "released when the digest is switched off"
        );
        let audit = app.get_html("/security/audit?category=NOTIFY").await;
        assert!(audit.contains("1 held event(s) released"), "{audit}");
    }

    // A new secret replaces the old one.
    let r = app
        .post(
            &format!("/security/notifications/{id}/edit"),
            &webhook_form(
                "ops-renamed",
                &new_hook.url,
                "second-secret",
                &["cert_revoked"],
            ),
        )
        .await;
    assert_eq!(status(&r), 303);
    app.post(&format!("/security/notifications/{id}/test"), &[])
        .await;
    let last = new_hook.events().pop().unwrap();
    assert_eq!(last.event, "test");
    assert!(verify("second-secret", &last) && !verify(secret, &last));

    // Validated as when adding: the form comes back with the message and the typed values.
    let r = app
        .post(
            &format!("/security/notifications/{id}/edit"),
            &webhook_form("ops-renamed", "ftp://example.com/x", "", &["cert_revoked"]),
        )
        .await;
    assert_eq!(status(&r), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("http:// or https://") && html.contains("ftp://example.com/x"));
    let r = app
        .post(
            &format!("/security/notifications/{id}/edit"),
            &webhook_form("other", &new_hook.url, "", &["cert_revoked"]),
        )
        .await;
    assert_eq!(status(&r), 422);
    assert!(r.text().await.unwrap().contains("exists already"));
    let r = app
        .post(
            &format!("/security/notifications/{id}/edit"),
            &webhook_form("ops-renamed", &new_hook.url, "", &[]),
        )
        .await;
    assert_eq!(status(&r), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("choose at least one event"));
    let r = app
        .post(
            "/security/notifications/987654/edit",
            &webhook_form("x", &new_hook.url, "", &["cert_revoked"]),
        )
        .await;
    assert_eq!(status(&r), 404);

    // Audited, with what changed and without the secret.
    let audit = app.get_html("/security/audit?category=NOTIFY").await;
    assert!(audit.contains("notify_target_updated"), "audited");
    assert!(
        audit.contains("name ops -&#62; ops-renamed") || audit.contains("name ops -> ops-renamed"),
        "{audit}"
    );
    assert!(audit.contains("secret replaced"));
    assert!(!audit.contains("second-secret"));

    // A viewer can neither open the form nor post a forged one; both refusals are audited.
    let viewer = app.user(Role::Viewer, "vic").await;
    let r = viewer
        .get(&format!("/security/notifications/{id}/edit"))
        .await;
    assert_eq!(status(&r), 403);
    let html = viewer.get_html("/security/notifications").await;
    assert!(!html.contains("/edit\""), "no Edit link for a viewer");
    let r = viewer
        .post(
            &format!("/security/notifications/{id}/edit"),
            &webhook_form("evil", "http://127.0.0.1:9/x", "", &["cert_revoked"]),
        )
        .await;
    assert_eq!(status(&r), 403);
    let audit = app
        .get_html("/security/audit?category=NOTIFY&user=vic")
        .await;
    assert!(
        audit.contains("permission denied: notify_target_updated")
            && audit.contains("permission denied: notify_target_view"),
        "{audit}"
    );
    // Without the CSRF token: refused before anything is read.
    let r = app
        .post_raw(
            &format!("/security/notifications/{id}/edit"),
            &webhook_form("evil", "http://127.0.0.1:9/x", "", &["cert_revoked"]),
        )
        .await;
    assert_eq!(status(&r), 403);
    let html = app.get_html("/security/notifications").await;
    assert!(html.contains("ops-renamed") && !html.contains("evil"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_ca_is_announced() {
    let (app, hook) = watching("ca_expiring").await;
    // The CA's real end, read from the certificate that signs hosts.
    let (subject, not_after) = {
        use diesel::prelude::*;
        use hostca::db::schema::issuers as i;
        i::table
            .filter(i::decommissioned_at.is_null())
            .order(i::not_after.asc())
            .select((i::subject, i::not_after))
            .first::<(String, chrono::NaiveDateTime)>(&mut *app.conn())
            .unwrap()
    };
    // Today nothing; the scan run as if 20 days before that end, as the worker would then.
    tick(&app, chrono::Duration::zero()).await;
    assert!(hook.events().is_empty(), "{:?}", hook.events());
    let offset = not_after - hostca::db::now() - chrono::Duration::days(20);
    let got = wait_for(&app, &hook, "ca_expiring", offset).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(verify("k", &got[0]));
    let body = body_of(&got[0]);
    assert_eq!(body["data"]["ca"], subject.as_str());
    assert_eq!(body["data"]["threshold_days"], 30);
    assert!(body["subject"]
        .as_str()
        .unwrap()
        .contains("expires within 30 days"));
    // Once per threshold: the next scans send nothing more until 7 days are left.
    tick(&app, offset + chrono::Duration::hours(1)).await;
    assert_eq!(hook.events().len(), 1);
    let offset = not_after - hostca::db::now() - chrono::Duration::days(5);
    let got = wait_for(&app, &hook, "ca_expiring", offset).await;
    assert_eq!(got.len(), 2);
    assert_eq!(body_of(&got[1])["data"]["threshold_days"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_audit_event_is_announced() {
    use diesel::prelude::*;
    use hostca::db::schema::audit_events as ae;
    let (app, hook) = watching("audit_chain_broken").await;
    tick(&app, chrono::Duration::zero()).await;
    assert!(hook.events().is_empty(), "intact: {:?}", hook.events());
    // An intruder with database access rewrites an old event (one the scan's quick
    // check has verified already)...
    let victim: i64 = ae::table
        .order(ae::id.asc())
        .select(ae::id)
        .offset(1)
        .first(&mut *app.conn())
        .unwrap();
    diesel::update(ae::table.find(victim))
        .set(ae::description.eq("nothing happened here"))
        .execute(&mut *app.conn())
        .unwrap();
    // ...which the hourly full check finds; the next scan announces it.
    let ctx = app.ctx.clone();
    tokio::task::spawn_blocking(move || hostca::services::maintenance::hourly(&ctx))
        .await
        .unwrap();
    let got = wait_for(&app, &hook, "audit_chain_broken", chrono::Duration::zero()).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(verify("k", &got[0]));
    assert_eq!(body_of(&got[0])["data"]["at_id"], victim);
    // Announced once, however often the scan finds it.
    tick(&app, chrono::Duration::minutes(5)).await;
    assert_eq!(hook.events().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_event_edited_is_announced_by_the_next_scan() {
    use diesel::prelude::*;
    use hostca::db::schema::audit_events as ae;
    let (app, hook) = watching("audit_chain_broken").await;
    tick(&app, chrono::Duration::zero()).await;
    // An event written after the last check, then changed: the scan's own check finds it.
    app.token_value("after-check", "3").await;
    let victim: i64 = ae::table
        .order(ae::id.desc())
        .select(ae::id)
        .first(&mut *app.conn())
        .unwrap();
    diesel::update(ae::table.find(victim))
        .set(ae::actor.eq("someone else"))
        .execute(&mut *app.conn())
        .unwrap();
    let got = wait_for(&app, &hook, "audit_chain_broken", chrono::Duration::zero()).await;
    assert_eq!(body_of(&got[0])["data"]["at_id"], victim);
}

/// Enrolls `name` with the extra name shared-alias.example.com; returns its host ID.
async fn enroll_sharing(app: &TestApp, name: &str, token: &str) -> String {
    let token = app.token_value(token, "1").await;
    let (_k, csr) =
        crate::common::openssl_csr(&app.scratch(), name, name, &["shared-alias.example.com"]);
    let (code, body) = app.enroll(name, &csr, Some(&token)).await;
    assert_eq!(code, 201, "{body}");
    body["host_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_claimed_by_two_hosts_is_announced() {
    let (app, hook) = watching("mapping_conflict").await;
    app.set_allowed_domains("example.com");
    let a = enroll_sharing(&app, "alpha.example.com", "ta").await;
    tick(&app, chrono::Duration::zero()).await;
    assert!(hook.events().is_empty(), "one host: no conflict");
    let b = enroll_sharing(&app, "beta.example.com", "tb").await;
    let got = wait_for(&app, &hook, "mapping_conflict", chrono::Duration::zero()).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(verify("k", &got[0]));
    let body = body_of(&got[0]);
    assert_eq!(body["data"]["name"], "shared-alias.example.com");
    let mut hosts: Vec<String> = body["data"]["host_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect();
    hosts.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(hosts, expected);
    tick(&app, chrono::Duration::minutes(5)).await;
    assert_eq!(hook.events().len(), 1, "announced once");
}

/// The CRL is re-signed after each revocation; when that fails (here the database
/// refuses the CRL number, as a full disk or a read-only replica would), the revocation
/// stands and the failure is announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crl_that_fails_to_publish_is_announced() {
    use diesel::prelude::*;
    use hostca::db::DbConn;
    let (app, hook) = watching("crl_publish_failed").await;
    let token = app.token_value("crl", "2").await;
    let cert = enroll_with_token(&app, "crl1.example.com", &token).await;
    let serial = cert["serial"].as_str().unwrap().to_string();
    let refuse: &[&str] = match &mut *app.conn() {
        DbConn::Sqlite(_) => &[
            "CREATE TRIGGER refuse_crl BEFORE UPDATE OF crl_number ON settings \
             BEGIN SELECT RAISE(ABORT, 'no space left for the CRL number'); END",
        ],
        DbConn::Pg(_) => &[
            "CREATE FUNCTION refuse_crl() RETURNS trigger AS $$ BEGIN \
             RAISE EXCEPTION 'no space left for the CRL number'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_crl BEFORE UPDATE OF crl_number ON settings \
             FOR EACH ROW EXECUTE FUNCTION refuse_crl()",
        ],
    };
    for sql in refuse {
        diesel::sql_query(*sql).execute(&mut *app.conn()).unwrap();
    }
    let r = app
        .post(
            &format!("/security/certificates/{serial}/revoke"),
            &[("reason", "key_compromise")],
        )
        .await;
    assert_eq!(status(&r), 303, "the revocation itself commits");
    let got = wait_for(&app, &hook, "crl_publish_failed", chrono::Duration::zero()).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(verify("k", &got[0]));
    let body = body_of(&got[0]);
    assert_eq!(body["subject"], "The CRL failed to publish");
    assert!(
        body["data"]["error"]
            .as_str()
            .unwrap()
            .contains("no space left for the CRL number"),
        "{body}"
    );
    // A second failure within the hour (the hourly re-signing) is not announced again.
    let hour = |t: chrono::NaiveDateTime| t.format("%Y%m%d%H").to_string();
    let before = hour(hostca::db::now());
    let ctx = app.ctx.clone();
    tokio::task::spawn_blocking(move || hostca::services::maintenance::hourly(&ctx))
        .await
        .unwrap();
    tick(&app, chrono::Duration::zero()).await;
    if hour(hostca::db::now()) == before {
        assert_eq!(hook.events().len(), 1);
    }
}

/// An SMTP server that requires STARTTLS (aiosmtpd, `require_starttls=True`) with a
/// certificate from a private CA made here. Each message is saved with the TLS version
/// the session used.
const STARTTLS_SERVER: &str = r#"
import pathlib, ssl, sys, time
from aiosmtpd.controller import Controller
port, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], pathlib.Path(sys.argv[4])
out.mkdir(parents=True, exist_ok=True)
tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(cert, key)
class Save:
    async def handle_DATA(self, server, session, envelope):
        version = session.ssl["ssl_object"].version() if session.ssl else "none"
        n = len(list(out.iterdir()))
        (out / f"{n}.eml").write_bytes(b"X-Test-TLS: " + version.encode() + b"\r\n" + envelope.content)
        return "250 OK"
c = Controller(Save(), hostname="127.0.0.1", port=port, require_starttls=True, tls_context=tls)
c.start()
print("ready", flush=True)
while True:
    time.sleep(1)
"#;

/// A CA and a server certificate for 127.0.0.1 signed by it.
struct PrivateCa {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

fn private_ca_and_server_cert() -> PrivateCa {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType,
    };
    let now = time::OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "Test mail relay CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - time::Duration::hours(1);
    ca.not_after = now + time::Duration::days(30);
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = now - time::Duration::hours(1);
    leaf.not_after = now + time::Duration::days(30);
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    PrivateCa {
        ca_pem,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().to_vec(),
        key_der: key.serialize_der(),
    }
}

/// Mail over STARTTLS to a server with a private CA: refused while the target trusts
/// only the public roots, delivered over TLS once the target is edited to trust that CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_over_starttls_trusts_the_targets_own_ca() {
    if !have_aiosmtpd() {
        return;
    }
    let app = spawn_app().await;
    app.login().await;
    let dir = app.scratch();
    let PrivateCa {
        ca_pem,
        cert_pem,
        key_pem,
        ..
    } = private_ca_and_server_cert();
    std::fs::write(dir.join("smtp.pem"), &cert_pem).unwrap();
    std::fs::write(dir.join("smtp.key"), &key_pem).unwrap();
    std::fs::write(dir.join("smtp.py"), STARTTLS_SERVER).unwrap();
    let mailbox = dir.join("tls-mail");
    let port = crate::common::free_port();
    let mut server = std::process::Command::new("python3")
        .arg(dir.join("smtp.py"))
        .arg(port.to_string())
        .arg(dir.join("smtp.pem"))
        .arg(dir.join("smtp.key"))
        .arg(&mailbox)
        .stdout(std::process::Stdio::piped())
        // The refused handshake's traceback goes here, not into the test's output.
        .stderr(std::fs::File::create(dir.join("smtp.log")).unwrap())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready");
    let port_text = port.to_string();
    let fields = vec![
        ("kind", "email"),
        ("name", "relay"),
        ("destination", "ops@example.com"),
        ("events", "cert_revoked"),
        ("smtp_host", "127.0.0.1"),
        ("smtp_port", &port_text),
        ("smtp_tls", "required"),
        ("smtp_from", "hostca@example.com"),
    ];
    let r = app.post("/security/notifications", &fields).await;
    assert_eq!(status(&r), 303);
    let id = target_id(&app, "relay").await;

    // The public roots do not include the relay's CA: the test mail is refused.
    let r = app
        .post(&format!("/security/notifications/{id}/test"), &[])
        .await;
    assert_eq!(status(&r), 303);
    let html = app.get_html("/security/notifications").await;
    assert!(
        html.contains("The test notification to relay failed"),
        "{html}"
    );
    assert!(html.to_lowercase().contains("certificate"), "{html}");
    let count = || std::fs::read_dir(&mailbox).map_or(0, |d| d.count());
    assert_eq!(count(), 0);

    // Not a CA bundle: said so.
    let mut bad = fields.clone();
    bad.push((
        "tls_ca_pem",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
    ));
    let r = app
        .post(&format!("/security/notifications/{id}/edit"), &bad)
        .await;
    assert_eq!(status(&r), 422);
    assert!(r.text().await.unwrap().contains("only certificates"));

    // Edited to trust the relay's CA: delivered, over TLS.
    let mut good = fields.clone();
    good.push(("tls_ca_pem", &ca_pem));
    let r = app
        .post(&format!("/security/notifications/{id}/edit"), &good)
        .await;
    assert_eq!(status(&r), 303);
    let html = app
        .get_html(&format!("/security/notifications/{id}/edit"))
        .await;
    assert!(
        html.contains("-----BEGIN CERTIFICATE-----"),
        "the CA is kept"
    );
    let r = app
        .post(&format!("/security/notifications/{id}/test"), &[])
        .await;
    assert_eq!(status(&r), 303);
    let html = app.get_html("/security/notifications").await;
    assert!(html.contains("Test notification sent to relay"), "{html}");
    let mut text = String::new();
    for e in std::fs::read_dir(&mailbox).unwrap().flatten() {
        text.push_str(&std::fs::read_to_string(e.path()).unwrap());
    }
    assert!(text.starts_with("X-Test-TLS: TLSv1."), "{text}");
    assert!(text.contains("Test notification from hostca"), "{text}");
    assert!(text.contains("To: ops@example.com"), "{text}");

    // Plain SMTP to this server is refused by it (it requires STARTTLS): the delivery
    // above did go over TLS.
    let mut plain = good.clone();
    plain[6] = ("smtp_tls", "none");
    let r = app
        .post(&format!("/security/notifications/{id}/edit"), &plain)
        .await;
    assert_eq!(status(&r), 303);
    app.post(&format!("/security/notifications/{id}/test"), &[])
        .await;
    let html = app.get_html("/security/notifications").await;
    assert!(
        html.contains("The test notification to relay failed"),
        "{html}"
    );
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(count(), 1);
}

/// An https webhook receiver with a certificate from a private CA: refused while the
/// target trusts the public roots, reached (and the signature checked) once the target
/// is edited to trust that CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_webhook_trusts_the_targets_own_ca() {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let app = spawn_app().await;
    app.login().await;
    let ca = private_ca_and_server_cert();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(ca.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ca.key_der.clone())),
        )
        .unwrap();
    let hook = tls_receiver(tls);
    assert!(hook.url.starts_with("https://127.0.0.1:"));
    add_webhook(&app, "internal", &hook.url, "k", &["cert_revoked"], false).await;
    let id = target_id(&app, "internal").await;
    let r = app
        .post(&format!("/security/notifications/{id}/test"), &[])
        .await;
    assert_eq!(status(&r), 303);
    let html = app.get_html("/security/notifications").await;
    assert!(
        html.contains("The test notification to internal failed") && html.contains("certificate"),
        "{html}"
    );
    assert!(hook.events().is_empty());
    let mut form = webhook_form("internal", &hook.url, "", &["cert_revoked"]);
    form.push(("tls_ca_pem", &ca.ca_pem));
    let r = app
        .post(&format!("/security/notifications/{id}/edit"), &form)
        .await;
    assert_eq!(status(&r), 303);
    let r = app
        .post(&format!("/security/notifications/{id}/test"), &[])
        .await;
    assert_eq!(status(&r), 303);
    let html = app.get_html("/security/notifications").await;
    assert!(
        html.contains("Test notification sent to internal"),
        "{html}"
    );
    let got = hook.events();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(verify("k", &got[0]));
}
