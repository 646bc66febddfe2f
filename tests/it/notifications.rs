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
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got: Arc<Mutex<Vec<Received>>> = Default::default();
    let requests: Arc<Mutex<usize>> = Default::default();
    let (g, n) = (got.clone(), requests.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut headers = std::collections::HashMap::new();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
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
            reader.read_exact(&mut body).unwrap();
            let count = {
                let mut n = n.lock().unwrap();
                *n += 1;
                *n
            };
            let reply = if count <= fail_first {
                "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else {
                g.lock().unwrap().push(Received {
                    event: headers.get("x-hostca-event").cloned().unwrap_or_default(),
                    delivery: headers
                        .get("x-hostca-delivery")
                        .cloned()
                        .unwrap_or_default(),
                    signature: headers
                        .get("x-hostca-signature-256")
                        .cloned()
                        .unwrap_or_default(),
                    body: String::from_utf8(body).unwrap(),
                });
                "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
            };
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    Receiver { url, got, requests }
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

/// Mail through a local aiosmtpd (plain SMTP: TLS mode "none"). Skipped only when
/// aiosmtpd is missing and HOSTCA_TEST_SMTP is unset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_reaches_a_real_smtp_server() {
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
