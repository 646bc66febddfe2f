//! The host agent: real `hostca agent` processes against a real `hostca serve` process
//! whose certificates last minutes (`--leaf-validity-minutes`); the re-keying renewal an
//! attacker tries to abuse; the renewal window a host is told; the spread of 1,000 agents.

use crate::common::{self, hostca, ServerProcess};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hostca::cli::agent;
use serde_json::{json, Value};

/// One security domain served by a real server process.
struct Domain {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    port: u16,
    base: String,
    db_url: Option<String>,
    pg: Option<(String, String)>,
    extra: Vec<String>,
    server: Option<ServerProcess>,
    rt: tokio::runtime::Runtime,
    cookie: reqwest::Client,
    csrf: String,
    api_key: String,
}

impl Domain {
    fn start(extra: &[&str]) -> Domain {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let data = root.join("data");
        let port = common::free_port();
        let base = format!("http://127.0.0.1:{port}");
        let (db_url, pg) = common::fresh_database();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let args: Vec<&str> = extra.iter().map(String::as_str).collect();
        let server = common::serve_process_with(&data, port, db_url.as_deref(), &args);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (cookie, csrf) = rt.block_on(common::admin_client(&base));
        let html = rt.block_on(async {
            cookie
                .post(format!("{base}/account/api-keys"))
                .form(&[("csrf_token", csrf.as_str()), ("name", "agent-tests")])
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        });
        let api_key = common::element_text(&html, "api-key-value").expect("an API key");
        Domain {
            _tmp: tmp,
            root,
            data,
            port,
            base,
            db_url,
            pg,
            extra,
            server: Some(server),
            rt,
            cookie,
            csrf,
            api_key,
        }
    }

    fn stop(&mut self) {
        self.server = None;
    }

    fn restart(&mut self) {
        let args: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.server = Some(common::serve_process_with(
            &self.data,
            self.port,
            self.db_url.as_deref(),
            &args,
        ));
    }

    /// An admin API command through the CLI, with the API key.
    fn admin(&self, args: &[&str]) -> common::Run {
        let mut all = args.to_vec();
        all.extend(["--server", &self.base, "--json"]);
        hostca(&all, &[("HOSTCA_API_KEY", &self.api_key)])
    }

    /// A known host (security level high: no token needed) enrolled with the host client;
    /// returns its directory.
    fn host(&self, name: &str) -> PathBuf {
        let status = self.rt.block_on(async {
            self.cookie
                .post(format!("{}/security/hosts", self.base))
                .form(&[("csrf_token", self.csrf.as_str()), ("name", name)])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
        assert!(status < 400, "adding {name}: {status}");
        let dir = self.root.join(name);
        let d = dir.to_str().unwrap();
        let r = hostca(
            &[
                "get-ca-certificate",
                "--server",
                &self.base,
                "--dir",
                d,
                "--yes",
            ],
            &[],
        );
        assert!(r.ok, "{}", r.stderr);
        let r = hostca(
            &[
                "get-certificate",
                "--server",
                &self.base,
                "--dir",
                d,
                "--hostname",
                name,
            ],
            &[],
        );
        assert!(r.ok, "{}", r.stderr);
        dir
    }

    fn agent(&self, dir: &Path, extra: &[&str]) -> AgentProcess {
        let log = dir.with_extension("agent.log");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hostca"));
        cmd.args(["agent", "--server", &self.base, "--dir"])
            .arg(dir)
            .args([
                "--poll",
                "2s",
                "--backoff-max",
                "2s",
                "--crl-interval",
                "30s",
            ])
            .args(extra)
            .env_remove("HOSTCA_SERVER")
            .env_remove("HOSTCA_HOST_DIR")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        AgentProcess {
            child: cmd.spawn().unwrap(),
            log,
        }
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        self.server = None;
        if let Some((base, name)) = self.pg.take() {
            use diesel::{Connection, RunQueryDsl};
            if let Ok(mut c) = diesel::PgConnection::establish(&base) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c);
            }
        }
    }
}

struct AgentProcess {
    child: std::process::Child,
    log: PathBuf,
}

impl AgentProcess {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    done()
}

fn serial(dir: &Path) -> String {
    hostca::cli::host::local_cert(dir).unwrap().serial
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The certificate's status as the admin API shows it.
fn cert_status(domain: &Domain, serial: &str) -> Value {
    let r = domain.admin(&["cert", "show", serial]);
    assert!(r.ok, "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

#[test]
fn the_agent_renews_before_expiry_with_the_ca_down_for_a_third_of_the_lifetime() {
    // Two minutes of validity, 12 s backdated: a lifetime of 132 s, a window from 76 s to
    // 120 s after issuance; the agent draws its moment in the first half (76–98 s).
    let mut domain = Domain::start(&["--leaf-validity-minutes", "2"]);
    let dir = domain.host("backup01.example.com");
    let issued = Instant::now();
    let first = hostca::cli::host::local_cert(&dir).unwrap();
    let old_key = read(&dir.join("host.key"));
    let mut agent = domain.agent(&dir, &[]);
    assert!(
        wait_for(Duration::from_secs(20), || agent
            .log()
            .contains("renews at")),
        "{}",
        agent.log()
    );
    // The CA goes down at 60 s for 44 s (a third of the lifetime): over the moment the
    // agent chose, so that its first attempts fail and it retries.
    std::thread::sleep(Duration::from_secs(60).saturating_sub(issued.elapsed()));
    domain.stop();
    std::thread::sleep(Duration::from_secs(44));
    domain.restart();
    assert!(
        wait_for(Duration::from_secs(40), || serial(&dir) != first.serial),
        "not renewed: {}",
        agent.log()
    );
    let renewed = hostca::cli::host::local_cert(&dir).unwrap();
    assert!(
        chrono::Utc::now().naive_utc() < first.not_after,
        "renewed after expiry"
    );
    assert!(renewed.key_matches, "host.key is the new certificate's key");
    assert_ne!(
        read(&dir.join("host.key")),
        old_key,
        "renewed with a new key"
    );
    let log = agent.log();
    assert!(log.contains("renewal-info: failed"), "{log}");
    assert!(log.contains("renew: certificate"), "{log}");
    assert!(agent.running(), "a server that is down is never fatal");
    assert!(!dir.join("host.key.new").exists() && !dir.join("host.pem.new").exists());
    // The CRL was fetched too.
    assert!(dir.join("crl.pem").exists(), "{log}");
}

#[test]
fn a_drill_rekeys_every_agent_within_one_poll_interval_and_runs_the_hooks() {
    let domain = Domain::start(&["--leaf-validity-minutes", "30"]);
    let names = ["nb01.example.com", "nb02.example.com", "nb03.example.com"];
    let dirs: Vec<PathBuf> = names.iter().map(|n| domain.host(n)).collect();
    // A service that reloads on SIGUSR1, for the second agent's --signal.
    let signalled = domain.root.join("signalled");
    // Killed when dropped, even if an assertion fails.
    let service = ServerProcess(
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "trap 'echo reloaded > {}' USR1; while true; do sleep 0.1; done",
                signalled.display()
            ))
            .spawn()
            .unwrap(),
    );
    let pid_file = domain.root.join("service.pid");
    std::fs::write(&pid_file, service.0.id().to_string()).unwrap();
    let pid_file = pid_file.to_str().unwrap().to_string();
    let mut agents: Vec<AgentProcess> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let hook = format!(
                "echo \"$HOSTCA_SERIAL $HOSTCA_CERT $HOSTCA_KEY\" > {}",
                d.join("hook.out").display()
            );
            let mut extra = vec!["--exec", &hook];
            if i == 1 {
                extra.extend(["--signal", "USR1", "--pid-file", &pid_file]);
            }
            domain.agent(d, &extra)
        })
        .collect();
    for a in &agents {
        assert!(
            wait_for(Duration::from_secs(20), || a.log().contains("renews at")),
            "{}",
            a.log()
        );
    }
    let before: Vec<(String, String)> = dirs
        .iter()
        .map(|d| (serial(d), read(&d.join("host.key"))))
        .collect();
    // Without a reason: refused.
    let r = domain.admin(&["host", "renew-all", "--reason", " "]);
    assert!(!r.ok && r.stderr.contains("reason"), "{}", r.stderr);
    let r = domain.admin(&[
        "host",
        "renew-all",
        "--reason",
        "drill: suspected compromise",
    ]);
    assert!(r.ok, "{}", r.stderr);
    let marked: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(marked["marked"], 3, "{marked}");
    let drill = Instant::now();
    // One poll interval (2 s, drifting by up to a tenth) and the renewal's own time.
    for (d, (old_serial, old_key)) in dirs.iter().zip(&before) {
        assert!(
            wait_for(Duration::from_secs(6), || &serial(d) != old_serial),
            "{} not re-keyed within one poll",
            d.display()
        );
        assert_ne!(&read(&d.join("host.key")), old_key, "a new key");
        assert!(hostca::cli::host::local_cert(d).unwrap().key_matches);
        let old = cert_status(&domain, old_serial);
        assert_eq!(old["status"], "superseded", "{old}");
        assert_eq!(old["revocation_reason"], "superseded", "{old}");
        // The exec hook ran with the new files.
        assert!(wait_for(Duration::from_secs(3), || read(
            &d.join("hook.out")
        )
        .starts_with(&serial(d))));
        assert!(read(&d.join("hook.out")).contains("host.key"));
    }
    assert!(drill.elapsed() < Duration::from_secs(8));
    // The second agent signalled the service.
    assert!(
        wait_for(Duration::from_secs(3), || read(&signalled)
            .contains("reloaded")),
        "{}",
        agents[1].log()
    );
    assert!(
        agents[1].log().contains("SIGUSR1 sent"),
        "{}",
        agents[1].log()
    );
    drop(service);
    // The drill is audited with its reason.
    let r = domain.admin(&["audit", "list", "--category", "HOST"]);
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stdout.contains("drill: suspected compromise"),
        "{}",
        r.stdout
    );
    // Renewed once: the agents now wait for the new certificates' windows.
    std::thread::sleep(Duration::from_secs(3));
    for (a, d) in agents.iter_mut().zip(&dirs) {
        assert!(a.running());
        assert_eq!(
            a.log().matches("renew: certificate").count(),
            1,
            "{}",
            a.log()
        );
        assert!(a.log().contains("exec: "), "{}", a.log());
        assert!(!d.join("host.key.new").exists());
    }

    // Revoked: the agent says a reissue token is needed, and keeps running.
    let r = domain.admin(&["host", "revoke", names[0], "--reason", "key_compromise"]);
    assert!(r.ok, "{}", r.stderr);
    let a = &mut agents[0];
    assert!(
        wait_for(Duration::from_secs(8), || a
            .log()
            .contains("reissue token is needed")),
        "{}",
        a.log()
    );
    assert!(a.log().contains("hostca get-certificate"), "{}", a.log());
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        a.running(),
        "a revoked certificate is not fatal: {}",
        a.log()
    );
    assert!(
        a.log().matches("reissue token is needed").count() >= 2,
        "it keeps checking"
    );
}

#[test]
fn a_thousand_agents_spread_their_renewals_over_the_window() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(14);
    let now = chrono::NaiveDate::from_ymd_opt(2026, 12, 2)
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap();
    // 1,000 certificates issued together (a mass enrollment, or the day after a drill):
    // the same window, 60 days from now for 30 days.
    let start = now + chrono::Duration::days(60);
    let end = start + chrono::Duration::days(30);
    let drawn: Vec<chrono::NaiveDateTime> = (0..1000)
        .map(|_| agent::choose_renewal_time(start, end, now, &mut rng))
        .collect();
    // Drawn in the window's first half (the second is left for retries).
    let half = end - (end - start) / 2;
    assert!(drawn.iter().all(|t| *t >= start && *t <= half));
    let buckets = 10;
    let width = (half - start).num_milliseconds() as f64 / buckets as f64;
    let mut counts = vec![0usize; buckets];
    for t in &drawn {
        let i = ((*t - start).num_milliseconds() as f64 / width) as usize;
        counts[i.min(buckets - 1)] += 1;
    }
    let share = drawn.len() / buckets;
    for (i, c) in counts.iter().enumerate() {
        assert!(
            *c <= share + share / 10,
            "bucket {i} holds {c} of 1000 (share {share}): {counts:?}"
        );
    }
    // Deterministic given the RNG: the same seed draws the same moments.
    let mut again = rand::rngs::StdRng::seed_from_u64(14);
    assert_eq!(
        agent::choose_renewal_time(start, end, now, &mut again),
        drawn[0]
    );
    // An open window (a drill) means now; the poll phases spread those.
    assert_eq!(
        agent::choose_renewal_time(now - chrono::Duration::minutes(1), end, now, &mut rng),
        now
    );
    // Backoff doubles with jitter up to its cap.
    let cap = Duration::from_secs(3600);
    assert!(agent::backoff(1, cap, &mut rng) <= Duration::from_secs(1));
    assert!(agent::backoff(5, cap, &mut rng) >= Duration::from_secs(8));
    assert!(agent::backoff(40, cap, &mut rng) <= cap);
    assert!(agent::backoff(40, cap, &mut rng) >= cap / 2);
    // NetBackup's intervals per security level.
    use hostca::models::kinds::SecurityLevel;
    assert_eq!(
        agent::crl_interval(SecurityLevel::VeryHigh),
        Duration::from_secs(3600)
    );
    assert_eq!(
        agent::crl_interval(SecurityLevel::Medium),
        Duration::from_secs(8 * 3600)
    );
    assert_eq!(
        agent::parse_duration("180d").unwrap().as_secs(),
        180 * 86_400
    );
    assert!(agent::parse_duration("5x").is_err() && agent::parse_duration("0s").is_err());
}

#[test]
fn a_misconfigured_agent_exits_non_zero_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("host");
    let d = dir.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["agent", "--server", "http://127.0.0.1:9", "--dir", d];
        args.extend(extra);
        hostca(&args, &[])
    };
    let r = run(&[]);
    assert!(
        !r.ok && r.stderr.contains("is not a directory"),
        "{}",
        r.stderr
    );
    std::fs::create_dir_all(&dir).unwrap();
    let r = run(&[]);
    assert!(
        !r.ok && r.stderr.contains("get-ca-certificate"),
        "{}",
        r.stderr
    );
    std::fs::write(dir.join("ca.pem"), "not a CA").unwrap();
    let r = run(&[]);
    assert!(
        !r.ok && r.stderr.contains("host.pem is missing"),
        "{}",
        r.stderr
    );
    let r = run(&["--poll", "5x"]);
    assert!(!r.ok && r.stderr.contains("unit must be"), "{}", r.stderr);
    let r = hostca(&["agent", "--server", "ftp://x", "--dir", d], &[]);
    assert!(
        !r.ok && r.stderr.contains("--server must start"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_misconfigured_hook_is_refused_and_install_unit_writes_the_flags() {
    let domain = Domain::start(&[]);
    let dir = domain.host("vault.example.com");
    let d = dir.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["agent", "--server", &domain.base, "--dir", d];
        args.extend(extra);
        hostca(&args, &[])
    };
    let r = run(&["--signal", "HUP"]);
    assert!(
        !r.ok && r.stderr.contains("--signal needs --pid-file"),
        "{}",
        r.stderr
    );
    let r = run(&["--signal", "KILLALL", "--pid-file", "/run/x.pid"]);
    assert!(!r.ok && r.stderr.contains("give one of"), "{}", r.stderr);
    // A key that is not the certificate's.
    let key = std::fs::read(dir.join("host.key")).unwrap();
    let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
    std::fs::write(dir.join("host.key"), other).unwrap();
    let r = run(&[]);
    assert!(
        !r.ok && r.stderr.contains("is not the key of"),
        "{}",
        r.stderr
    );
    std::fs::write(dir.join("host.key"), key).unwrap();

    let unit = domain.root.join("hostca-agent.service");
    let r = hostca(
        &[
            "agent",
            "install-unit",
            "--server",
            &domain.base,
            "--dir",
            d,
            "--renew-before",
            "180d",
            "--exec",
            "systemctl reload nginx",
            "--path",
            unit.to_str().unwrap(),
        ],
        &[],
    );
    assert!(r.ok, "{}", r.stderr);
    let text = read(&unit);
    assert!(
        text.contains("[Service]") && text.contains("WantedBy="),
        "{text}"
    );
    let exec = text
        .lines()
        .find(|l| l.starts_with("ExecStart="))
        .unwrap_or_default();
    assert!(exec.contains(" agent --server "), "{exec}");
    assert!(exec.contains(&format!("--dir {d}")), "{exec}");
    assert!(exec.contains("--renew-before 15552000s"), "{exec}");
    assert!(exec.contains("--exec \"systemctl reload nginx\""), "{exec}");
    assert!(text.contains(&format!("ReadWritePaths={d}")), "{text}");

    // renew-certificate --new-key: a new key, proved by the old one.
    let (k1, c1) = (read(&dir.join("host.key")), read(&dir.join("host.pem")));
    let r = hostca(
        &[
            "renew-certificate",
            "--new-key",
            "--server",
            &domain.base,
            "--dir",
            d,
        ],
        &[],
    );
    assert!(r.ok && r.stdout.contains("with a new key"), "{}", r.stderr);
    let (k2, c2) = (read(&dir.join("host.key")), read(&dir.join("host.pem")));
    assert!(k2 != k1 && c2 != c1);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("host.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the new key is private");
    assert!(hostca::cli::host::local_cert(&dir).unwrap().key_matches);
    let put = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    let is_new_pair = || {
        read(&dir.join("host.key")) == k2
            && read(&dir.join("host.pem")) == c2
            && !dir.join("host.key.new").exists()
            && !dir.join("host.pem.new").exists()
    };
    // A crash between the two renames: the new key with the old certificate.
    put("host.pem", &c1);
    put("host.pem.new", &c2);
    assert!(hostca::cli::host::finish_replacement(&dir).unwrap());
    assert!(is_new_pair());
    // A crash before the renames: both .new files in place.
    put("host.key", &k1);
    put("host.pem", &c1);
    put("host.key.new", &k2);
    put("host.pem.new", &c2);
    assert!(hostca::cli::host::finish_replacement(&dir).unwrap());
    assert!(is_new_pair());
    // A crash before the answer: a new key alone is dropped, the pair kept.
    put("host.key.new", &k1);
    assert!(hostca::cli::host::finish_replacement(&dir).unwrap());
    assert!(is_new_pair());
    assert!(!hostca::cli::host::finish_replacement(&dir).unwrap());
}

/// Re-keying renewal through the API, as an attacker would try it.
mod rekey {
    use super::*;
    use crate::common::{spawn_app, TestApp};

    /// A CSR by `key` for `name` with `nonce` in its challengePassword, and its DER.
    fn csr(key: &rcgen::KeyPair, name: &str, nonce: &str) -> (String, Vec<u8>) {
        fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
            assert!(content.len() < 128);
            let mut v = vec![tag, content.len() as u8];
            v.extend_from_slice(content);
            v
        }
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let attr = rcgen::Attribute {
            oid: &[1, 2, 840, 113549, 1, 9, 7],
            values: tlv(0x31, &tlv(0x0c, nonce.as_bytes())),
        };
        let req = params
            .serialize_request_with_attributes(key, vec![attr])
            .unwrap();
        (req.pem().unwrap(), req.der().to_vec())
    }

    fn proof(key: &rcgen::KeyPair, nonce: &str, der: &[u8]) -> String {
        use base64::Engine;
        let sig =
            rcgen::SigningKey::sign(key, &hostca::services::renewal::rekey_message(nonce, der))
                .unwrap();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
    }

    /// A host enrolled with an rcgen key: (key, host ID, serial).
    async fn enrolled(
        app: &TestApp,
        name: &str,
        alg: &'static rcgen::SignatureAlgorithm,
    ) -> (rcgen::KeyPair, String, String) {
        let token = app.token_value(&format!("t-{name}"), "1").await;
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        let (s, b) = app.enroll(name, &pem, Some(&token)).await;
        assert_eq!(s, 201, "{b}");
        (
            key,
            b["host_id"].as_str().unwrap().to_string(),
            b["serial"].as_str().unwrap().to_string(),
        )
    }

    async fn renew(app: &TestApp, host_id: &str, csr: &str, proof: Option<&str>) -> (u16, Value) {
        let mut body = json!({"host_id": host_id, "csr": csr});
        if let Some(p) = proof {
            body["proof"] = json!(p);
        }
        app.post_json("/api/v1/certificates/renew", &body).await
    }

    fn spki_of(pem: &str) -> Vec<u8> {
        use x509_parser::prelude::FromDer;
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let (_, x) = x509_parser::certificate::X509Certificate::from_der(&p.contents).unwrap();
        x.public_key().raw.to_vec()
    }

    #[tokio::test]
    async fn a_new_key_needs_a_proof_by_the_current_one_over_this_nonce_and_csr() {
        let app = spawn_app().await;
        app.login().await;
        app.change_settings(|s| s.renewal_interval_minutes = Some("0".into()));
        let name = "media.example.com";
        let (old, host_id, _) = enrolled(&app, name, &rcgen::PKCS_ECDSA_P256_SHA256).await;
        let (other, _, _) = enrolled(&app, "other.example.com", &rcgen::PKCS_ED25519).await;
        let new = rcgen::KeyPair::generate().unwrap();

        // A new key without a proof: refused, and the message says what to send.
        let nonce = app.renewal_nonce(&host_id).await;
        let (pem, _) = csr(&new, name, &nonce);
        let (s, b) = renew(&app, &host_id, &pem, None).await;
        assert_eq!(s, 403, "{b}");
        assert!(b["message"].as_str().unwrap().contains("proof"), "{b}");

        // A proof by another host's key: refused.
        let (pem, der) = csr(&new, name, &nonce);
        let (s, b) = renew(&app, &host_id, &pem, Some(&proof(&other, &nonce, &der))).await;
        assert_eq!(s, 403, "{b}");
        // A proof by the right key over a different CSR (another new key): refused.
        let (_, other_der) = csr(&rcgen::KeyPair::generate().unwrap(), name, &nonce);
        let (s, b) = renew(&app, &host_id, &pem, Some(&proof(&old, &nonce, &other_der))).await;
        assert_eq!(s, 403, "{b}");
        // A proof over another nonce: refused.
        let (s, b) = renew(&app, &host_id, &pem, Some(&proof(&old, "AAAA", &der))).await;
        assert_eq!(s, 403, "{b}");
        // Not base64url: a 400 that says so.
        let (s, b) = renew(&app, &host_id, &pem, Some("not base64!")).await;
        assert_eq!(s, 400, "{b}");

        // The right proof: a certificate for the new key.
        let good = proof(&old, &nonce, &der);
        let (s, b) = renew(&app, &host_id, &pem, Some(&good)).await;
        assert_eq!(s, 201, "{b}");
        assert_eq!(
            spki_of(b["certificate"].as_str().unwrap()),
            rcgen::PublicKeyData::subject_public_key_info(&new)
        );
        // Replayed: the nonce is used.
        let (s, b) = renew(&app, &host_id, &pem, Some(&good)).await;
        assert_eq!(s, 422, "{b}");
        assert!(
            b["message"].as_str().unwrap().contains("already used"),
            "{b}"
        );
        // The old key is no longer the active certificate's: its proof is refused.
        let nonce = app.renewal_nonce(&host_id).await;
        let newer = rcgen::KeyPair::generate().unwrap();
        let (pem, der) = csr(&newer, name, &nonce);
        let (s, b) = renew(&app, &host_id, &pem, Some(&proof(&old, &nonce, &der))).await;
        assert_eq!(s, 403, "{b}");
        // Same-key renewal still works, without a proof.
        let (pem, _) = csr(&new, name, &nonce);
        let (s, b) = renew(&app, &host_id, &pem, None).await;
        assert_eq!(s, 201, "{b}");
    }

    #[tokio::test]
    async fn a_revoked_certificates_key_proves_nothing() {
        let app = spawn_app().await;
        app.login().await;
        let name = "tape.example.com";
        let (old, host_id, serial) = enrolled(&app, name, &rcgen::PKCS_ED25519).await;
        let r = app
            .post(
                &format!("/security/certificates/{serial}/revoke"),
                &[("reason", "key_compromise")],
            )
            .await;
        assert!(r.status().as_u16() < 400);
        let nonce = app.renewal_nonce(&host_id).await;
        let new = rcgen::KeyPair::generate().unwrap();
        let (pem, der) = csr(&new, name, &nonce);
        let (s, b) = renew(&app, &host_id, &pem, Some(&proof(&old, &nonce, &der))).await;
        assert_eq!(s, 409, "{b}");
        assert!(
            b["message"].as_str().unwrap().contains("reissue token"),
            "{b}"
        );
        // Its renewal-info says so.
        let r = app
            .client
            .get(app.url(&format!("/api/v1/certificates/{serial}/renewal-info")))
            .send()
            .await
            .unwrap();
        let info: Value = r.json().await.unwrap();
        assert_eq!(info["status"], "revoked", "{info}");
    }

    #[tokio::test]
    async fn renewal_info_is_the_last_third_or_now_when_pulled_forward() {
        let app = spawn_app().await;
        app.login().await;
        let (_, host_id, serial) =
            enrolled(&app, "dedup.example.com", &rcgen::PKCS_ECDSA_P384_SHA384).await;
        let get = |path: String| {
            let c = app.client.clone();
            let url = app.url(&path);
            async move {
                let r = c.get(url).send().await.unwrap();
                let status = r.status().as_u16();
                let retry = r
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string());
                (
                    status,
                    retry,
                    r.json::<Value>().await.unwrap_or(Value::Null),
                )
            }
        };
        let (s, retry, info) = get(format!("/api/v1/certificates/{serial}/renewal-info")).await;
        assert_eq!(s, 200, "{info}");
        assert!(retry.is_some());
        let at = |v: &Value| {
            chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
                .unwrap()
                .naive_utc()
        };
        let cert =
            hostca::models::certificate::Certificate::find_by_serial(&mut app.conn(), &serial)
                .unwrap()
                .unwrap();
        let (start, end) =
            hostca::services::renewal::lifetime_window(cert.not_before, cert.not_after);
        assert_eq!(at(&info["start"]), start);
        assert_eq!(at(&info["end"]), end);
        assert_eq!(info["status"], "active");
        assert_eq!(info["security_level"], "high");
        // Pulled forward for this host: now.
        let r = app
            .post(&format!("/security/hosts/{host_id}/allow-renewal"), &[])
            .await;
        assert!(r.status().as_u16() < 400);
        let (_, _, info) = get(format!("/api/v1/certificates/{serial}/renewal-info")).await;
        assert!(
            at(&info["start"]) <= chrono::Utc::now().naive_utc(),
            "{info}"
        );
        // Bad and unknown serials.
        let (s, _, b) = get("/api/v1/certificates/xyz/renewal-info".into()).await;
        assert_eq!(s, 400, "{b}");
        let (s, _, b) = get("/api/v1/certificates/0ABC/renewal-info".into()).await;
        assert_eq!(s, 404, "{b}");
        // Renew every host now from the console: audited, and the window says now.
        let r = app
            .post("/security/hosts/renew-all", &[("reason", "")])
            .await;
        assert_eq!(r.status().as_u16(), 422);
        let r = app
            .post(
                "/security/hosts/renew-all",
                &[("reason", "quarterly drill")],
            )
            .await;
        assert!(r.status().as_u16() < 400);
    }
}
