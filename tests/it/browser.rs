//! End-to-end in a real headless Chromium (Debian's chromium and chromium-driver, over
//! WebDriver): the administrator's daily work, keyboard use, and every page judged by two
//! independent checkers, axe-core (WCAG 2.1 AA, inside the browser, at a desktop's and a
//! phone's width, light and dark) and vnu, the Nu Html Checker (over the HTML the server
//! sent). `tests/browser-tools.sh` installs both, pinned, into target/browser-tools;
//! without them those checks are skipped with a note, unless HOSTCA_BROWSER_TOOLS=1 (CI)
//! makes that a failure. Screenshots go to target/screenshots (or to docs/screenshots
//! with HOSTCA_UPDATE_SCREENSHOTS=1, for the README).

use crate::common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{openssl_csr, spawn_app, TestApp};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::Value;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find_binary(names: &[&str]) -> Option<PathBuf> {
    names.iter().map(PathBuf::from).find(|p| p.exists())
}

async fn browser() -> Option<(Driver, Client)> {
    let driver = find_binary(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])?;
    let chromium = find_binary(&["/usr/bin/chromium", "/usr/lib/chromium/chromium"])?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let guard = Driver(child);
    let profile = tempfile::tempdir().ok()?.keep();
    let caps: serde_json::Map<String, Value> = serde_json::from_value(serde_json::json!({
        "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                     "--window-size=1280,900", format!("--user-data-dir={}", profile.display())]
        }
    }))
    .ok()?;
    for _ in 0..50 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        if let Ok(c) = ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            return Some((guard, c));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

struct Shots {
    dir: PathBuf,
}

impl Shots {
    fn new() -> Shots {
        let dir = if std::env::var("HOSTCA_UPDATE_SCREENSHOTS").is_ok() {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots")
        } else {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots")
        };
        std::fs::create_dir_all(&dir).unwrap();
        Shots { dir }
    }

    async fn take(&self, c: &Client, name: &str) {
        let png = c.screenshot().await.unwrap();
        std::fs::write(self.dir.join(format!("{name}.png")), png).unwrap();
    }
}

/// The element, waiting up to 10 s for it: a page may still be loading after a click.
async fn css(c: &Client, selector: &str) -> fantoccini::elements::Element {
    let mut last = None;
    for _ in 0..100 {
        match c.find(Locator::Css(selector)).await {
            Ok(e) => return e,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{selector}: {:?}", last)
}

/// Waits up to 10 s until the page's text contains `needle`.
async fn wait_text(c: &Client, needle: &str) -> String {
    let mut text = String::new();
    for _ in 0..100 {
        text = match c.find(Locator::Css("body")).await {
            Ok(b) => b.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains(needle) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the page never showed {needle:?}; it shows: {}",
        text.chars().take(400).collect::<String>()
    )
}

/// Waits up to 10 s until the address ends with `suffix`.
async fn wait_url(c: &Client, suffix: &str) -> String {
    let mut url = String::new();
    for _ in 0..100 {
        url = c
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        if url.ends_with(suffix) {
            return url;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the browser never reached {suffix}; it is at {url}")
}

async fn text_of(c: &Client, selector: &str) -> String {
    css(c, selector).await.text().await.unwrap()
}

async fn page_text(c: &Client) -> String {
    text_of(c, "body").await
}

/// Where `tests/browser-tools.sh` installs the pinned judges of the pages.
const BROWSER_TOOLS: &str = "target/browser-tools";

/// Whether the judges must be there (CI sets it): then a missing tool fails the test
/// instead of being skipped with a note.
fn tools_required() -> bool {
    std::env::var("HOSTCA_BROWSER_TOOLS").is_ok_and(|v| v == "1")
}

fn tools_missing(what: &str) {
    assert!(
        !tools_required(),
        "HOSTCA_BROWSER_TOOLS=1 but {what} is missing: run tests/browser-tools.sh (it needs npm and java)"
    );
    eprintln!("NOTE: {what} is missing, so that check is skipped: run tests/browser-tools.sh (HOSTCA_BROWSER_TOOLS=1 makes this an error)");
}

/// axe-core, run inside each page: WCAG 2.1 AA, level A included. The violations of every
/// page are gathered and reported together by `finish`, so one run shows all there is.
struct Axe {
    source: Option<String>,
    found: std::sync::Mutex<Vec<String>>,
    checked: std::sync::atomic::AtomicUsize,
}

/// Runs axe on the document and answers one line per violation (rule, impact, what to do,
/// and the first elements that fail it).
const AXE_RUN: &str = r#"
const done = arguments[arguments.length - 1];
axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}, resultTypes: ['violations']})
  .then(r => done(r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.help + ' [' + v.nodes.length + ' element(s)] ' +
    v.nodes.slice(0, 4).map(n => n.target.join(' ') + ' → ' + (n.failureSummary || '').replace(/\s+/g, ' ')).join(' | '))))
  .catch(e => done(['axe.run failed: ' + e]));
"#;

impl Axe {
    fn load() -> Axe {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(BROWSER_TOOLS)
            .join("node_modules/axe-core/axe.min.js");
        let source = std::fs::read_to_string(&path).ok();
        if source.is_none() {
            tools_missing(&format!("axe-core ({})", path.display()));
        }
        Axe {
            source,
            found: Default::default(),
            checked: Default::default(),
        }
    }

    /// No WCAG 2.1 AA violation on the page the browser shows. The script goes in through
    /// WebDriver, which the page's `Content-Security-Policy: default-src 'self'` does not
    /// govern (it forbids the page's own inline scripts, not the driver's).
    async fn check(&self, c: &Client, page: &str) {
        let Some(source) = &self.source else { return };
        if js(c, "return typeof window.axe").await != "object" {
            c.execute(source, vec![]).await.unwrap();
        }
        let found = c.execute_async(AXE_RUN, vec![]).await.unwrap();
        let list: Vec<String> = serde_json::from_value(found).unwrap();
        self.checked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut all = self.found.lock().unwrap();
        all.extend(list.into_iter().map(|v| format!("{page}: {v}")));
    }

    /// No violation on any page checked.
    fn finish(&self) {
        let all = self.found.lock().unwrap();
        if self.source.is_some() {
            eprintln!(
                "axe-core: {} page views checked",
                self.checked.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
        assert!(
            all.is_empty(),
            "axe-core found WCAG 2.1 AA violations:\n{}",
            all.join("\n")
        );
    }
}

/// The HTML the server sent for each page, saved to be checked by vnu (the Nu Html Checker)
/// in one run at the end: one JVM start for every page.
struct Markup {
    dir: PathBuf,
    saved: usize,
}

impl Markup {
    fn new(test: &str) -> Markup {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(BROWSER_TOOLS)
            .join("pages")
            .join(test);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Markup { dir, saved: 0 }
    }

    /// Keeps a response's HTML under a name made from `page`.
    async fn keep(&mut self, page: &str, response: reqwest::Response) {
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(kind.starts_with("text/html"), "{page} is not HTML: {kind}");
        let html = response.text().await.unwrap();
        let name: String = page
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        self.saved += 1;
        let file = self.dir.join(format!("{:02}-{name}.html", self.saved));
        std::fs::write(file, html).unwrap();
    }

    /// `vnu --errors-only` over every saved page: no error.
    fn check(&self) {
        let jar = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(BROWSER_TOOLS)
            .join("node_modules/vnu-jar/build/dist/vnu.jar");
        if !jar.exists() {
            tools_missing(&format!("vnu-jar ({})", jar.display()));
            return;
        }
        let out = match Command::new("java")
            .arg("-jar")
            .arg(&jar)
            .args(["--errors-only", "--format", "gnu"])
            .arg(&self.dir)
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                tools_missing(&format!("java ({e})"));
                return;
            }
        };
        assert!(
            out.status.success(),
            "vnu found errors in the HTML of the pages saved in {}:\n{}{}",
            self.dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("vnu: {} pages without an error", self.saved);
    }
}

/// A form submitted in the browser: the page it is on, the form's selector, the fields to
/// set (selector, value) and a selector the answer page shows.
type FormCase<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);

/// Sets fields (selectors inside the form `form`) and submits the form as a person would.
async fn submit(c: &Client, form: &str, fields: &[(&str, &str)]) {
    let fields: Vec<Value> = fields
        .iter()
        .map(|(k, v)| serde_json::json!([k, v]))
        .collect();
    c.execute(
        "const [form, fields] = arguments; const f = document.querySelector(form); for (const [sel, v] of fields) f.querySelector(sel).value = v; f.requestSubmit();",
        vec![serde_json::json!(form), serde_json::json!(fields)],
    )
    .await
    .unwrap();
}

/// The address of the newest audit event's page.
async fn first_audit_event(app: &TestApp) -> String {
    let html = app.get_html("/security/audit").await;
    let at = html
        .find("href=\"/security/audit/")
        .expect("the audit list links its events");
    let rest = &html[at + 6..];
    rest[..rest.find('"').unwrap()].to_string()
}

async fn flash(c: &Client) -> String {
    c.find(Locator::Css(".flash"))
        .await
        .map(|_| ())
        .unwrap_or(());
    let all = c.find_all(Locator::Css(".flash")).await.unwrap();
    let mut out = String::new();
    for f in all {
        out.push_str(&f.text().await.unwrap());
    }
    out
}

async fn enroll(app: &TestApp, name: &str, extra: &[&str], token: &str) -> Value {
    let (_k, csr) = openssl_csr(&app.scratch(), name, name, extra);
    let (s, b) = app.enroll(name, &csr, Some(token)).await;
    assert_eq!(s, 201, "{b}");
    b
}

#[tokio::test]
async fn an_administrators_day_in_a_real_browser() {
    let Some((_driver, c)) = browser().await else {
        eprintln!("SKIPPED: chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)");
        return;
    };
    let app = spawn_app().await;
    let base = app.address.clone();
    let shots = Shots::new();
    let axe = Axe::load();

    // Log in with the keyboard alone: the username field has focus, Tab, Enter.
    c.goto(&format!("{base}/login")).await.unwrap();
    axe.check(&c, "login").await;
    let active: Value = c
        .execute("return document.activeElement.id", vec![])
        .await
        .unwrap();
    assert_eq!(active, "username", "the username field has focus");
    css(&c, "#username")
        .await
        .send_keys(&format!("admin{}", Key::Tab))
        .await
        .unwrap();
    let active: Value = c
        .execute("return document.activeElement.id", vec![])
        .await
        .unwrap();
    assert_eq!(active, "password");
    css(&c, "#password")
        .await
        .send_keys(&format!("{}{}", common::ADMIN_PASSWORD, Key::Enter))
        .await
        .unwrap();
    wait_url(&c, "/").await;
    wait_text(&c, "Welcome, admin.").await;
    // The overview links to the lists; the token list is one click away.
    css(&c, "nav a[href='/security/tokens']")
        .await
        .click()
        .await
        .unwrap();
    wait_url(&c, "/security/tokens").await;

    // Add a token: a bad name first, then a good one.
    css(&c, "a.button.primary[href='/security/tokens/new']")
        .await
        .click()
        .await
        .unwrap();
    css(&c, "#name").await.send_keys("bad name!").await.unwrap();
    css(&c, "#reason")
        .await
        .send_keys("Media servers of the DR site")
        .await
        .unwrap();
    css(&c, "main button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let err = text_of(&c, "#name-error").await;
    assert!(err.contains("only letters"), "{err}");
    assert_eq!(
        css(&c, "#reason")
            .await
            .prop("value")
            .await
            .unwrap()
            .unwrap(),
        "Media servers of the DR site",
        "values are kept"
    );
    axe.check(&c, "add token with errors").await;
    shots.take(&c, "token-add-error").await;
    let name = css(&c, "#name").await;
    name.clear().await.unwrap();
    name.send_keys("dr-media").await.unwrap();
    let uses = css(&c, "#max_uses").await;
    uses.clear().await.unwrap();
    uses.send_keys(&format!("5{}", Key::Enter)).await.unwrap();
    let details_url = wait_url(&c, "/security/tokens/dr-media").await;
    assert!(
        details_url.ends_with("/security/tokens/dr-media"),
        "{details_url}"
    );

    // The details page from a bookmark, in a fresh tab.
    let tab = c.new_window(true).await.unwrap();
    c.switch_to_window(tab.handle).await.unwrap();
    c.goto(&details_url).await.unwrap();
    assert!(page_text(&c).await.contains("0 / 5"));
    assert!(
        c.find(Locator::Css("#token-value")).await.is_err(),
        "no value before Show"
    );
    axe.check(&c, "token details").await;

    // Show and Copy.
    css(&c, "form[action$='/show'] button")
        .await
        .click()
        .await
        .unwrap();
    let value = text_of(&c, "#token-value").await;
    assert_eq!(value.len(), 29);
    let copy = css(&c, "button[data-copy='#token-value']").await;
    copy.click().await.unwrap();
    let mut label = String::new();
    for _ in 0..50 {
        label = copy.text().await.unwrap();
        if label == "Copied" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(label, "Copied", "the button confirms the copy");
    assert_eq!(
        copy.attr("data-copied").await.unwrap().as_deref(),
        Some(value.as_str()),
        "the copied text is the value"
    );
    shots.take(&c, "token-details").await;
    axe.check(&c, "token details with the value shown").await;

    // Two more tokens, then select two and delete them.
    for n in ["old-a", "old-b", "expiring"] {
        c.goto(&format!("{base}/security/tokens/new"))
            .await
            .unwrap();
        css(&c, "#name")
            .await
            .send_keys(&format!("{n}{}", Key::Enter))
            .await
            .unwrap();
        wait_url(&c, &format!("/security/tokens/{n}")).await;
    }
    c.goto(&format!("{base}/security/tokens")).await.unwrap();
    axe.check(&c, "token list").await;
    shots.take(&c, "tokens").await;
    css(&c, "input[name=name][value='old-a']")
        .await
        .click()
        .await
        .unwrap();
    css(&c, "input[name=name][value='old-b']")
        .await
        .click()
        .await
        .unwrap();
    css(&c, "#bulk details.confirm summary")
        .await
        .click()
        .await
        .unwrap();
    css(&c, "#bulk details.confirm button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&c, "2 tokens deleted.").await;

    // Cleanup, with its confirmation.
    {
        use diesel::prelude::*;
        use hostca::db::schema::tokens;
        diesel::update(tokens::table.filter(tokens::name.eq("expiring")))
            .set(tokens::valid_until.eq(hostca::db::now() - chrono::Duration::minutes(1)))
            .execute(&mut *app.conn())
            .unwrap();
    }
    c.goto(&format!("{base}/security/tokens")).await.unwrap();
    let cleanup = c
        .find_all(Locator::Css("details.confirm summary"))
        .await
        .unwrap();
    cleanup[1].click().await.unwrap();
    shots.take(&c, "tokens-cleanup-confirm").await;
    css(&c, "button[form=cleanup]").await.click().await.unwrap();
    wait_text(&c, "Cleanup removed 1 expired or used-up token.").await;

    // Hosts enroll (as hosts do, over the API); one brings a name that waits for approval.
    app.set_auto_map(false);
    let web = enroll(&app, "web01.example.com", &["www.example.com"], &value).await;
    let db = enroll(&app, "db01.example.com", &[], &value).await;

    // Revoke a certificate with a reason from its details page.
    let serial = db["serial"].as_str().unwrap();
    c.goto(&format!("{base}/security/certificates/{serial}"))
        .await
        .unwrap();
    axe.check(&c, "certificate details").await;
    shots.take(&c, "certificate-details").await;
    css(&c, "details.confirm summary")
        .await
        .click()
        .await
        .unwrap();
    css(&c, "details.confirm select[name=reason]")
        .await
        .select_by_value("key_compromise")
        .await
        .unwrap();
    css(&c, "details.confirm button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&c, "Key compromise").await;
    assert!(flash(&c).await.contains("revoked"));
    c.goto(&format!("{base}/security/certificates"))
        .await
        .unwrap();
    axe.check(&c, "certificates").await;
    shots.take(&c, "certificates").await;

    // Generate a reissue token from the host page.
    let host_id = db["host_id"].as_str().unwrap();
    c.goto(&format!("{base}/security/hosts/{host_id}"))
        .await
        .unwrap();
    axe.check(&c, "host").await;
    shots.take(&c, "host").await;
    css(&c, "#rt-name")
        .await
        .send_keys("db01-rebuild")
        .await
        .unwrap();
    css(&c, "#rt-reason")
        .await
        .send_keys("disk replaced")
        .await
        .unwrap();
    css(&c, "form[action$='/reissue-token'] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    wait_url(&c, "/security/tokens/db01-rebuild").await;
    assert!(page_text(&c).await.contains("Reissue"));

    // Approve the pending mapping.
    c.goto(&format!("{base}/security/host-mappings"))
        .await
        .unwrap();
    assert!(page_text(&c).await.contains("www.example.com"));
    axe.check(&c, "mappings").await;
    shots.take(&c, "mappings").await;
    css(
        &c,
        "button[formaction$='/mappings/www.example.com/approve']",
    )
    .await
    .click()
    .await
    .unwrap();
    wait_text(&c, "Nothing waits for approval.").await;
    let _ = web;

    // Change the security level.
    c.goto(&format!("{base}/security/settings")).await.unwrap();
    axe.check(&c, "settings").await;
    css(&c, "input[name=security_level][value=very_high]")
        .await
        .click()
        .await
        .unwrap();
    css(&c, "#reason")
        .await
        .send_keys("after the pentest")
        .await
        .unwrap();
    css(&c, "form[action='/security/settings'] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&c, "Saved: security level").await;
    shots.take(&c, "settings").await;

    // Everything above is on the audit page.
    c.goto(&format!("{base}/security/audit")).await.unwrap();
    axe.check(&c, "audit").await;
    shots.take(&c, "audit").await;
    let text = page_text(&c).await;
    assert!(text.contains("The audit chain verifies"));
    for needle in [
        "token value shown",
        "authorization token created",
        "tokens deleted",
        "1 expired or used-up tokens deleted",
        "revoked",
        "reissue token created",
        "approved",
        "security_level changed from high to very_high",
    ] {
        let mut found = text.contains(needle);
        let mut page = 2;
        while !found && page < 5 {
            c.goto(&format!("{base}/security/audit?page={page}"))
                .await
                .unwrap();
            found = page_text(&c).await.contains(needle);
            page += 1;
        }
        assert!(found, "the audit page shows: {needle}");
        c.goto(&format!("{base}/security/audit")).await.unwrap();
    }
    css(&c, "#category")
        .await
        .select_by_value("CERT")
        .await
        .unwrap();
    css(&c, "form[role=search] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let mut filtered = false;
    for _ in 0..100 {
        let url = c.current_url().await.unwrap();
        if url.query().unwrap_or_default().contains("category=CERT") {
            filtered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(filtered, "the filter form sets category=CERT");

    // A host that is an ACME client: its accounts table, with Deactivate.
    app.login().await;
    let acme_token = app.token_value("browser-acme", "1").await;
    let mut acme = crate::acme_client::Acme::at(&base, app.client.clone()).await;
    assert_eq!(
        acme.register(Some(("browser-acme", &acme_token)))
            .await
            .status,
        201
    );
    acme.issue(&["acme.browser.example.com"]).await.unwrap();
    c.goto(&format!("{base}/security/hosts/acme.browser.example.com"))
        .await
        .unwrap();
    assert!(page_text(&c).await.contains("ACME accounts"));
    axe.check(&c, "host with an ACME account").await;

    // The other main pages pass the accessibility check too.
    for (path, shot) in [
        ("/security/ca", "ca"),
        ("/security/hosts", "hosts"),
        ("/admin/users", "users"),
        ("/account/api-keys", "api-keys"),
        ("/account/password", ""),
    ] {
        c.goto(&format!("{base}{path}")).await.unwrap();
        axe.check(&c, path).await;
        if !shot.is_empty() {
            shots.take(&c, shot).await;
        }
    }

    // Keyboard only: Tab reaches every control of the token list in order, and the
    // confirmation opens with Enter.
    c.goto(&format!("{base}/security/tokens")).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..40 {
        c.execute("return 0", vec![]).await.unwrap();
        let active = c.active_element().await.unwrap();
        active.send_keys(&Key::Tab.to_string()).await.unwrap();
        let tag: Value = c.execute("const e = document.activeElement; return e.tagName + ':' + (e.textContent || e.name || '').trim().slice(0, 20)", vec![]).await.unwrap();
        seen.push(tag.as_str().unwrap_or_default().to_string());
    }
    for want in [
        "A:Tokens",
        "SUMMARY:Delete",
        "SUMMARY:Cleanup",
        "INPUT:",
        "A:Name",
    ] {
        assert!(
            seen.iter().any(|s| s.starts_with(want)),
            "Tab reaches {want}: {seen:?}"
        );
    }
    c.close().await.unwrap();
    axe.finish();
}

/// A Chrome DevTools command sent through chromedriver (`goog/cdp/execute`): media
/// emulation for the dark theme.
#[derive(Debug)]
struct Cdp(&'static str, Value);

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &reqwest::Url,
        session: Option<&str>,
    ) -> Result<reqwest::Url, <reqwest::Url as std::str::FromStr>::Err> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (reqwest::Method, Option<String>) {
        let body = serde_json::json!({"cmd": self.0, "params": self.1});
        (reqwest::Method::POST, Some(body.to_string()))
    }
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// WCAG contrast of two CSS colours, computed in the page.
const CONTRAST: &str = r#"
const rgb = s => { const m = s.match(/rgba?\(([^)]+)\)/); const p = m[1].split(',').map(x => parseFloat(x)); return {r: p[0], g: p[1], b: p[2]}; };
const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
const background = el => { for (let e = el; e; e = e.parentElement) { const m = getComputedStyle(e).backgroundColor.match(/rgba?\(([^)]+)\)/); if (m) { const p = m[1].split(',').map(x => parseFloat(x)); if (p.length < 4 || p[3] > 0.5) return getComputedStyle(e).backgroundColor; } } return 'rgb(255, 255, 255)'; };
const ratio = (a, b) => { const l1 = lum(rgb(a)), l2 = lum(rgb(b)); return (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05); };
"#;

/// Focus ring and input border at 3:1 or more, the pager's disabled text at 4.5:1.
async fn check_control_contrast(c: &Client, theme: &str) {
    c.goto(&format!("{}", c.current_url().await.unwrap()))
        .await
        .unwrap();
    let got = js(
        c,
        &format!(
            "{CONTRAST}
            const q = document.querySelector('#q'); q.focus();
            const s = getComputedStyle(q);
            const bg = background(q.parentElement);
            const pager = document.createElement('nav'); pager.className = 'pager';
            pager.innerHTML = '<span class=\"disabled\">Next</span>';
            document.querySelector('main').appendChild(pager);
            const d = pager.querySelector('.disabled');
            return [ratio(s.outlineColor, bg), s.outlineStyle, ratio(s.borderTopColor, bg),
                    ratio(getComputedStyle(d).color, background(d))];"
        ),
    )
    .await;
    let v: Vec<Value> = serde_json::from_value(got).unwrap();
    assert!(
        v[0].as_f64().unwrap() >= 3.0 && v[1] == "solid",
        "{theme}: focus ring {v:?}"
    );
    assert!(v[2].as_f64().unwrap() >= 3.0, "{theme}: input border {v:?}");
    assert!(
        v[3].as_f64().unwrap() >= 4.5,
        "{theme}: pager's disabled text {v:?}"
    );
}

/// Issue 11: every page fits the window at 1280, 768 and 375 px; tables scroll in their
/// card with a hint; the side menu collapses on a phone and opens without JavaScript;
/// confirmations close with Escape or a click outside, one at a time, and fit a phone;
/// the reissue form wires its errors; error pages keep the navigation; the dark theme
/// passes the contrast check. axe-core judges every page (login, error pages, each list
/// with data, a host with many long names and certificates, the forms with their errors)
/// at 1280 and 375 px and in the dark theme, and vnu the HTML of all of them in one run.
#[tokio::test]
async fn pages_fit_every_screen() {
    let Some((_driver, c)) = browser().await else {
        eprintln!("SKIPPED: chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)");
        return;
    };
    let app = spawn_app().await;
    let base = app.address.clone();
    let shots = Shots::new();
    let axe = Axe::load();
    let mut markup = Markup::new("pages");
    // Before logging in: the login page, a failed login and an anonymous 404, in the
    // browser at a desktop's and a phone's width, and their HTML for vnu.
    let stranger = app.new_browser();
    markup.keep("login", stranger.get("/login").await).await;
    markup
        .keep(
            "login failed",
            stranger.login_as("admin", "not the password").await,
        )
        .await;
    markup
        .keep("anonymous 404", stranger.get("/security/nowhere").await)
        .await;
    for width in [1280u32, 375] {
        c.set_window_size(width, 900).await.unwrap();
        c.goto(&format!("{base}/security/nowhere")).await.unwrap();
        wait_text(&c, "There is no page at").await;
        axe.check(&c, &format!("anonymous 404 at {width} px")).await;
        c.goto(&format!("{base}/login")).await.unwrap();
        axe.check(&c, &format!("login at {width} px")).await;
        submit(
            &c,
            "form[action='/login']",
            &[("#username", "admin"), ("#password", "not the password")],
        )
        .await;
        css(&c, ".login .flash-error").await;
        axe.check(&c, &format!("failed login at {width} px")).await;
    }

    // Hosts whose names collide, so the mappings carry a conflict and pending actions.
    app.login().await;
    app.set_auto_map(false);
    let value = app.token_value("seed-with-a-rather-long-name", "10").await;
    let web1 = enroll(&app, "web01.example.com", &["www.example.com"], &value).await;
    let _web2 = enroll(&app, "web02.example.com", &["www.example.com"], &value).await;
    for n in ["a", "b", "c"] {
        assert_eq!(app.create_token(n, "1", "1d", "").await.status(), 303);
    }
    let host_id = web1["host_id"].as_str().unwrap().to_string();
    // A host with many long names and a history of certificates that carry them all: its
    // page must still fit, with its state and actions in view.
    let long_names: Vec<String> = (1..=6)
        .map(|i| {
            format!("media-transcoding-node-{i:02}.storage-cluster-west.datacenter-eu.example.com")
        })
        .collect();
    for name in &long_names {
        let r = app
            .post(
                &format!("/security/hosts/{host_id}/mappings"),
                &[("name", name)],
            )
            .await;
        assert_eq!(r.status().as_u16(), 303, "{name}");
    }
    let mut serial = web1["serial"].as_str().unwrap().to_string();
    for i in 0..4 {
        app.post(
            &format!("/security/hosts/{host_id}/auto-reissue"),
            &[("action", "allow")],
        )
        .await;
        let (_k, csr) = openssl_csr(
            &app.scratch(),
            &format!("again{i}"),
            "web01.example.com",
            &[],
        );
        let (s, b) = app.enroll("web01.example.com", &csr, None).await;
        assert_eq!(s, 201, "{b}");
        serial = b["serial"].as_str().unwrap().to_string();
    }
    assert!(app
        .get_html(&format!("/security/certificates/{serial}"))
        .await
        .contains(&long_names[5]));
    // A reissue token, so the token list has a host ID in its Host column.
    let r = app
        .post(
            &format!("/security/hosts/{host_id}/reissue-token"),
            &[
                ("name", "reissue-web01-after-the-disk-replacement"),
                ("valid_for", "1d"),
                ("valid_until", ""),
                ("reason", "disk replaced"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    // An API key, so both key lists have a row.
    let r = app
        .post(
            "/account/api-keys",
            &[("name", "nightly-backup"), ("valid_for", "30d")],
        )
        .await;
    assert_eq!(r.status().as_u16(), 200);
    markup.keep("new API key shown", r).await;
    // A notification target, so the Notifications page has a row with its actions, and
    // its edit form can be judged. Nothing listens there: deliveries fail, and show so.
    let r = app
        .post(
            "/security/notifications",
            &[
                ("kind", "webhook"),
                ("name", "ops-webhook"),
                ("destination", "http://127.0.0.1:9/hostca"),
                ("secret", "a secret"),
                ("events", "cert_revoked"),
                ("events", "ca_expiring"),
                ("digest_hour", "6"),
            ],
        )
        .await;
    assert_eq!(r.status().as_u16(), 303);
    let notify_edit = {
        let html = app.get_html("/security/notifications").await;
        let at = html
            .find("/edit\" aria-label=\"Edit ops-webhook\"")
            .expect("the target's Edit link");
        let start = html[..at].rfind("href=\"").unwrap() + 6;
        html[start..at + 5].to_string()
    };

    c.goto(&format!("{base}/login")).await.unwrap();
    css(&c, "#username").await.send_keys("admin").await.unwrap();
    css(&c, "#password")
        .await
        .send_keys(&format!("{}{}", common::ADMIN_PASSWORD, Key::Enter))
        .await
        .unwrap();
    wait_url(&c, "/").await;

    let pages = [
        "/".to_string(),
        "/security/tokens".into(),
        "/security/tokens/new".into(),
        "/security/tokens/seed-with-a-rather-long-name".into(),
        "/security/certificates".into(),
        "/security/certificates?expires_within=30&sort=expires&dir=asc".into(),
        format!("/security/certificates/{serial}"),
        "/security/hosts".into(),
        format!("/security/hosts/{host_id}"),
        "/security/host-mappings".into(),
        "/security/host-mappings?tab=all".into(),
        "/security/ca".into(),
        "/security/settings".into(),
        "/security/notifications".into(),
        notify_edit.clone(),
        "/security/audit".into(),
        "/admin/users".into(),
        "/admin/api-keys".into(),
        "/account/api-keys".into(),
        "/account/password".into(),
        "/security/no-such-page".into(),
        "/security/tokens?page=many".into(),
    ];
    for path in &pages {
        markup.keep(path, app.get(path).await).await;
    }
    let audit_event = first_audit_event(&app).await;
    markup
        .keep("audit event", app.get(&audit_event).await)
        .await;
    for width in [1280u32, 768, 375] {
        c.set_window_size(width, 900).await.unwrap();
        for path in pages.iter().chain([&audit_event]) {
            c.goto(&format!("{base}{path}")).await.unwrap();
            css(&c, "main").await;
            let fit = js(
                &c,
                "const wide = Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.tablewrap, pre')).slice(0, 4).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)); return [document.documentElement.scrollWidth, window.innerWidth, wide]",
            )
            .await;
            let (scroll, inner) = (fit[0].as_i64().unwrap(), fit[1].as_i64().unwrap());
            assert!(
                scroll <= inner,
                "{path} at {width} px is {scroll} px wide in a {inner} px window: {}",
                fit[2]
            );
            if width != 768 {
                axe.check(&c, &format!("{path} at {width} px")).await;
            }
        }
    }

    // The forms shown again with their errors, and a refused form (403), at both widths;
    // the same answers over HTTP for vnu.
    let host_page = format!("/security/hosts/{host_id}");
    let reissue = format!("{host_page}/reissue-token");
    let forms: [FormCase; 9] = [
        (
            "/security/tokens/new",
            "form[action='/security/tokens']",
            &[
                ("#name", "bad name!"),
                ("#max_uses", "0"),
                ("#valid_for", "forever"),
            ],
            ".field .error",
        ),
        (
            &host_page,
            "form[action$='/reissue-token']",
            &[("#rt-name", "bad name!"), ("#rt-valid-for", "soon")],
            ".field .error",
        ),
        (
            "/security/settings",
            "form[action='/security/settings']",
            &[
                ("#certificate_validity_days", "0"),
                ("#auto_reissue_minutes", "x"),
            ],
            ".field .error",
        ),
        (
            "/security/notifications",
            "form[action='/security/notifications']",
            &[("#name", ""), ("#destination", "ftp://example.com")],
            ".field .error",
        ),
        (
            &notify_edit,
            "form[action$='/edit']",
            &[
                ("#destination", "ftp://example.com"),
                ("#tls_ca_pem", "not PEM"),
            ],
            ".field .error",
        ),
        (
            "/admin/users",
            "form[action='/admin/users']",
            &[("#username", "bad name"), ("#password", "short")],
            ".field .error",
        ),
        (
            "/account/api-keys",
            "form[action='/account/api-keys']",
            &[("#name", "no spaces please"), ("#valid_for", "forever")],
            ".field .error",
        ),
        (
            "/account/password",
            "form[action='/account/password']",
            &[
                ("#current", common::ADMIN_PASSWORD),
                ("#new", "short"),
                ("#confirm", "short"),
            ],
            ".field .error",
        ),
        (
            "/security/tokens",
            "#cleanup",
            &[("input[name=csrf_token]", "forged")],
            ".error-page",
        ),
    ];
    for width in [1280u32, 375] {
        c.set_window_size(width, 900).await.unwrap();
        for (path, form, fields, shows) in &forms {
            c.goto(&format!("{base}{path}")).await.unwrap();
            submit(&c, form, fields).await;
            css(&c, shows).await;
            axe.check(&c, &format!("{form} with errors at {width} px"))
                .await;
        }
    }
    for (path, fields) in [
        (
            "/security/tokens",
            vec![
                ("name", "bad name!"),
                ("max_uses", "0"),
                ("valid_for", "forever"),
                ("reason", ""),
            ],
        ),
        (
            &reissue,
            vec![
                ("name", "bad name!"),
                ("valid_for", "soon"),
                ("valid_until", ""),
                ("reason", ""),
            ],
        ),
        (
            "/security/settings",
            vec![
                ("security_level", "high"),
                ("allowed_domains", ""),
                ("reserved_names", ""),
                ("certificate_validity_days", "0"),
                ("auto_reissue_minutes", "x"),
                ("audit_retention_days", "90"),
                ("renewal_interval_minutes", "60"),
                ("reason", ""),
            ],
        ),
        (
            "/security/notifications",
            vec![
                ("kind", "webhook"),
                ("name", ""),
                ("destination", "ftp://example.com"),
                ("digest_hour", "25"),
            ],
        ),
        (
            &notify_edit,
            vec![
                ("name", "ops-webhook"),
                ("destination", "ftp://example.com"),
                ("events", "cert_revoked"),
                ("tls_ca_pem", "not PEM"),
            ],
        ),
        (
            "/admin/users",
            vec![
                ("username", "bad name"),
                ("role", "viewer"),
                ("password", "short"),
            ],
        ),
        (
            "/account/api-keys",
            vec![("name", "no spaces please"), ("valid_for", "forever")],
        ),
        (
            "/account/password",
            vec![
                ("current", common::ADMIN_PASSWORD),
                ("new", "short"),
                ("confirm", "short"),
            ],
        ),
    ] {
        let r = app.post(path, &fields).await;
        assert_eq!(r.status().as_u16(), 422, "{path}");
        markup.keep(&format!("{path} with errors"), r).await;
    }
    markup
        .keep(
            "refused form",
            app.post_raw("/security/tokens/cleanup", &[]).await,
        )
        .await;
    let r = app.post("/security/tokens/a/show", &[]).await;
    assert_eq!(r.status().as_u16(), 200);
    markup.keep("token value shown", r).await;
    markup.check();

    // On a phone the side menu is folded behind "Menu", which opens it without script.
    c.set_window_size(375, 900).await.unwrap();
    c.goto(&format!("{base}/security/tokens")).await.unwrap();
    let shown = "return getComputedStyle(document.querySelector('.navmenu')).display !== 'none'";
    assert_eq!(js(&c, shown).await, false, "the menu is folded on a phone");
    css(&c, "label[for=navtoggle]").await.click().await.unwrap();
    assert_eq!(js(&c, shown).await, true, "Menu opens it");
    c.goto(&format!("{base}/security/tokens")).await.unwrap();
    // The token table is wider than a phone: it scrolls in its card, and says so.
    let hint = "const h = document.querySelector('.tablewrap + .scroll-hint'); return !!h && getComputedStyle(h).display !== 'none' && document.querySelector('.tablewrap').classList.contains('overflowing')";
    assert_eq!(js(&c, hint).await, true, "the scroll hint shows on a phone");
    // A confirmation fits on the phone's screen.
    css(&c, "#bulk details.confirm summary")
        .await
        .click()
        .await
        .unwrap();
    let fits = js(&c, "const r = document.querySelector('details.confirm[open] .confirm-panel').getBoundingClientRect(); return r.left >= 0 && r.right <= window.innerWidth && r.top >= 0 && r.bottom <= window.innerHeight").await;
    assert_eq!(fits, true, "the confirmation fits on a phone");
    shots.take(&c, "tokens-phone").await;

    c.set_window_size(1280, 900).await.unwrap();
    c.goto(&format!("{base}/security/tokens")).await.unwrap();
    assert_eq!(
        js(&c, shown).await,
        true,
        "the menu is always shown on a desktop"
    );
    c.goto(&format!("{base}/admin/users")).await.unwrap();
    let narrow = "const w = document.querySelector('.tablewrap'); const h = w.nextElementSibling; return [w.scrollWidth > w.clientWidth, getComputedStyle(h).display, w.scrollWidth, w.clientWidth, Array.from(w.querySelectorAll('th')).map(t => t.textContent.trim() + ':' + Math.round(t.getBoundingClientRect().width))]";
    let v = js(&c, narrow).await;
    assert_eq!(
        serde_json::json!([v[0], v[1]]),
        serde_json::json!([false, "none"]),
        "no hint when nothing overflows: {v}"
    );
    c.goto(&format!("{base}/security/tokens")).await.unwrap();

    // Confirmations: one open at a time; Escape and a click outside close them.
    let open = "return Array.from(document.querySelectorAll('details.confirm')).map(d => d.open)";
    let summaries = c
        .find_all(Locator::Css("details.confirm summary"))
        .await
        .unwrap();
    summaries[0].click().await.unwrap();
    summaries[1].click().await.unwrap();
    assert_eq!(
        js(&c, open).await,
        serde_json::json!([false, true]),
        "one at a time"
    );
    c.active_element()
        .await
        .unwrap()
        .send_keys(&Key::Escape.to_string())
        .await
        .unwrap();
    assert_eq!(
        js(&c, open).await,
        serde_json::json!([false, false]),
        "Escape"
    );
    let back = js(&c, "return document.activeElement.textContent.trim()").await;
    assert_eq!(back, "Cleanup", "Escape gives the focus back to the button");
    summaries[0].click().await.unwrap();
    css(&c, "h1").await.click().await.unwrap();
    assert_eq!(
        js(&c, open).await,
        serde_json::json!([false, false]),
        "a click outside"
    );

    // Delete selected with nothing selected: back to the list, saying what to do.
    summaries[0].click().await.unwrap();
    css(&c, "#bulk details.confirm button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    wait_text(&c, "No token was selected").await;
    wait_url(&c, "/security/tokens").await;

    // The columns that matter stay in view at 1280 px.
    for path in [
        format!("/security/hosts/{host_id}"),
        "/security/host-mappings".to_string(),
        "/security/host-mappings?tab=all".to_string(),
        "/security/certificates".to_string(),
        "/security/tokens".to_string(),
    ] {
        c.goto(&format!("{base}{path}")).await.unwrap();
        let hidden = js(&c, "const out = []; for (const th of document.querySelectorAll('table.data th')) { if (!/^(State|Status|Conflict|Actions)$/.test(th.textContent.trim())) continue; const w = th.closest('.tablewrap'); if (!w || th.getBoundingClientRect().right > w.getBoundingClientRect().right + 1) out.push(th.textContent.trim() + ' ' + Array.from(th.parentElement.children).map(t => Math.round(t.getBoundingClientRect().width)).join('/') + ' in ' + (w ? w.clientWidth : 0)); } return out;").await;
        assert_eq!(hidden, serde_json::json!([]), "{path}: columns out of view");
    }
    // And the token list and the host page show every column without scrolling sideways.
    for path in [
        "/security/tokens".to_string(),
        format!("/security/hosts/{host_id}"),
    ] {
        c.goto(&format!("{base}{path}")).await.unwrap();
        css(&c, "main").await;
        let wide = js(&c, "return Array.from(document.querySelectorAll('.tablewrap')).filter(w => w.scrollWidth > w.clientWidth + 1).map(w => w.scrollWidth + ' in ' + w.clientWidth + ': ' + Array.from(w.querySelectorAll('th')).map(t => t.textContent.trim() + ' ' + Math.round(t.getBoundingClientRect().width)).join(', '))").await;
        assert_eq!(
            wide,
            serde_json::json!([]),
            "{path} scrolls sideways at 1280 px"
        );
    }

    // The reissue form wires its errors like the Add token form.
    c.goto(&format!("{base}/security/hosts/{host_id}"))
        .await
        .unwrap();
    css(&c, "#rt-name")
        .await
        .send_keys("bad name!")
        .await
        .unwrap();
    css(&c, "form[action$='/reissue-token'] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let wired = "const i = document.querySelector('#rt-name'); const ids = (i.getAttribute('aria-describedby') || '').split(' '); return [i.getAttribute('aria-invalid'), ids.every(id => !!document.getElementById(id)) && ids.some(id => document.getElementById(id).classList.contains('error')), document.activeElement.id]";
    let mut got = Value::Null;
    for _ in 0..50 {
        got = js(&c, wired).await;
        if got[0] == "true" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got, serde_json::json!(["true", true, "rt-name"]), "{got}");
    axe.check(&c, "host with reissue errors").await;

    // Error pages of a logged-in user keep the navigation.
    c.goto(&format!("{base}/security/no-such-page"))
        .await
        .unwrap();
    assert!(c.find(Locator::Css("nav.sidenav")).await.is_ok());
    assert!(page_text(&c).await.contains("There is no page at"));

    // Focus ring, input borders and the pager's disabled text, in both themes.
    c.goto(&format!("{base}/security/tokens")).await.unwrap();
    check_control_contrast(&c, "light").await;
    c.issue_cmd(Cdp(
        "Emulation.setEmulatedMedia",
        serde_json::json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
    ))
    .await
    .unwrap();
    let dark = js(
        &c,
        "return matchMedia('(prefers-color-scheme: dark)').matches",
    )
    .await;
    assert_eq!(dark, true, "the browser emulates a dark screen");
    check_control_contrast(&c, "dark").await;
    let bg = js(&c, "return getComputedStyle(document.body).backgroundColor").await;
    assert_ne!(bg, "rgb(245, 246, 248)", "the dark theme applies");
    for path in &pages {
        c.goto(&format!("{base}{path}")).await.unwrap();
        axe.check(&c, &format!("{path} in the dark theme")).await;
    }
    c.goto(&format!("{base}/security/tokens")).await.unwrap();
    shots.take(&c, "tokens-dark").await;
    c.close().await.unwrap();
    axe.finish();
}

/// Over plain HTTP: a logged-in user's 400, 403 and 404 pages carry the navigation; an
/// anonymous visitor's do not (they name no user to show).
#[tokio::test]
async fn error_pages_keep_the_navigation() {
    let app = spawn_app().await;
    app.login().await;
    for (path, want) in [
        ("/security/nowhere", 404),
        ("/security/tokens?page=many", 400),
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status().as_u16(), want, "{path}");
        let html = r.text().await.unwrap();
        assert!(html.contains("class=\"sidenav\""), "{path}: {html}");
        assert!(html.contains("Log out"), "{path}: the user's own bar");
    }
    // A form without its CSRF token is refused (403), inside the layout.
    let r = app.post_raw("/security/tokens/cleanup", &[]).await;
    assert_eq!(r.status().as_u16(), 403);
    let html = r.text().await.unwrap();
    assert!(html.contains("class=\"sidenav\""), "{html}");
    assert!(html.contains("The form has expired"), "{html}");

    let stranger = app.new_browser();
    let r = stranger.get("/security/nowhere").await;
    assert_eq!(r.status().as_u16(), 404);
    let html = r.text().await.unwrap();
    assert!(!html.contains("class=\"sidenav\""), "{html}");
    // The API keeps its JSON errors.
    let r = app.get("/api/v1/nowhere").await;
    assert_ne!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
        "text/html; charset=utf-8"
    );
}
