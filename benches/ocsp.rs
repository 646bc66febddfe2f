//! OCSP throughput: concurrent clients POST OCSP requests (SHA-1 CertIDs, no nonce: the
//! RFC 5019 profile that pre-produced responses answer) for certificates issued beforehand,
//! against a release build of hostca on SQLite, alternating in one run with the responder
//! an easy-rsa folder offers, `openssl ocsp -index` (it signs every answer; `-multi 2`, one
//! process per core), A B A B A B: each pair's ratio, the median and the range.
//!
//!     cargo bench --bench ocsp
//!
//! Environment: BENCH_CLIENTS (default 32), BENCH_ROUNDS (3), BENCH_SECONDS (5 per run),
//! BENCH_CERTS (64 certificates, one request each, asked in turn), BENCH_OPENSSL=0 to
//! measure hostca alone.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hostca::config::Config;
use hostca::models::user::Role;
use hostca::pki::ocsp::{request_der, HashAlg};
use hostca::services::{tokens, Actor};
use hostca::startup::Application;

#[allow(dead_code)]
mod support;
use support::{collect, env_or, median, range, Run};

/// `clients` keep-alive clients POST `requests` in turn to `url` for `seconds`; an answer
/// counts when it is a 200 with a successful OCSP response (its first bytes say so).
async fn drive(
    label: &str,
    url: &str,
    requests: Arc<Vec<Vec<u8>>>,
    clients: usize,
    seconds: u64,
) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (requests, next, url) = (requests.clone(), next.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let (mut latencies, mut failed) = (Vec::new(), 0usize);
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed) % requests.len();
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("Content-Type", "application/ocsp-request")
                    .body(requests[i].clone())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().as_u16() == 200 => match r.bytes().await {
                        Ok(b) if successful(&b) => latencies.push(t.elapsed()),
                        _ => failed += 1,
                    },
                    _ => failed += 1,
                }
            }
            (latencies, failed)
        }));
    }
    collect(label, tasks, start).await
}

/// OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED successful(0), responseBytes }
fn successful(der: &[u8]) -> bool {
    let header = match der.get(1) {
        Some(l) if l & 0x80 != 0 => 2 + (l & 0x7f) as usize,
        Some(_) => 2,
        None => return false,
    };
    der.len() > header + 20 && der[0] == 0x30 && der[header..header + 3] == [0x0a, 0x01, 0x00]
}

/// hostca on SQLite with `n` certificates enrolled through its API; returns the OCSP URL
/// and one request per certificate.
async fn start_hostca(dir: &std::path::Path, n: usize) -> (String, Vec<Vec<u8>>) {
    let mut config = Config::new(dir.join("data"));
    config.listen = "127.0.0.1:0".into();
    config.admin_password = Some("bench password".into());
    config.workers = Some(env_or("BENCH_WORKERS", 2));
    let app = Application::build(&config).unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let ctx = app.ctx.clone();
    tokio::spawn(app.run_until_stopped());
    let admin = Actor {
        username: "admin".into(),
        role: Role::Administrator,
    };
    let input = tokens::TokenInput {
        name: "bench".into(),
        max_uses: n.to_string(),
        valid_for: "1d".into(),
        reason: "benchmark".into(),
    };
    let c = ctx.clone();
    let value = tokio::task::spawn_blocking(move || {
        tokens::create(&c, &admin, &input).unwrap();
        tokens::reveal(&c, &admin, "bench").unwrap().1
    })
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let issuer = ctx.pki.signing();
    let mut requests = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("o{i}.bench.example");
        let key = rcgen::KeyPair::generate().unwrap();
        let csr = rcgen::CertificateParams::new(vec![name.clone()])
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let issued: serde_json::Value = client
            .post(format!("{base}/api/v1/certificates"))
            .json(&serde_json::json!({"hostname": name, "csr": csr, "token": value}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let serial = hex::decode(issued["serial"].as_str().expect("issued")).unwrap();
        requests.push(request_der(HashAlg::Sha1, &issuer, &serial, None));
    }
    (format!("{base}/ocsp"), requests)
}

struct Responder(Child);

impl Drop for Responder {
    fn drop(&mut self) {
        // `-multi` forks workers that outlive their parent (spinning on the closed socket,
        // half a core each, seen): the responder leads its own process group, and the
        // whole group goes.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An easy-rsa-style CA folder (P-256 CA, an index.txt of `n` valid certificates) served by
/// `openssl ocsp`, the CA signing its own responses; returns the URL and the requests.
fn start_openssl(dir: &std::path::Path, n: usize) -> Option<(Responder, String, Vec<Vec<u8>>)> {
    Command::new("openssl").arg("version").output().ok()?;
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=bench openssl CA",
        ],
    );
    let mut index = String::new();
    let mut requests = Vec::with_capacity(n);
    for i in 0..n {
        let serial = format!(
            "{:032X}",
            0x4000_0000_0000_0000_0000_0000_0000_0000u128 + i as u128
        );
        index.push_str(&format!(
            "V\t301231000000Z\t\t{serial}\tunknown\t/CN=o{i}.bench.example\n"
        ));
        let out = format!("r{i}.der");
        openssl(
            dir,
            &[
                "ocsp",
                "-issuer",
                "ca.pem",
                "-serial",
                &format!("0x{serial}"),
                "-no_nonce",
                "-reqout",
                &out,
            ],
        );
        requests.push(std::fs::read(dir.join(&out)).unwrap());
    }
    std::fs::write(dir.join("index.txt"), index).unwrap();
    std::fs::write(dir.join("index.txt.attr"), "unique_subject = no\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("openssl")
        .args([
            "ocsp",
            "-index",
            "index.txt",
            "-CA",
            "ca.pem",
            "-rsigner",
            "ca.pem",
            "-rkey",
            "ca.key",
            "-nmin",
            "60",
            "-multi",
            "2",
            "-ignore_err",
            "-port",
        ])
        .arg(port.to_string())
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .ok()?;
    let responder = Responder(child);
    for _ in 0..100 {
        // Ready once it answers a whole request: a connection closed without one leaves
        // the `-multi` worker that accepted it spinning (about 0.6 of a core, seen), which
        // took that much from the server in every later round.
        if answers(port, &requests[0]) {
            return Some((responder, format!("http://127.0.0.1:{port}/"), requests));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Whether the responder at `port` answers `request` with a 200 and a successful response.
fn answers(port: u16, request: &[u8]) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let head = format!(
        "POST / HTTP/1.0\r\nContent-Type: application/ocsp-request\r\nContent-Length: {}\r\n\r\n",
        request.len()
    );
    let mut reply = Vec::new();
    let sent = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(request))
        .and_then(|()| stream.read_to_end(&mut reply));
    let body = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| &reply[at + 4..]);
    sent.is_ok() && reply.starts_with(b"HTTP/1.0 200") && body.is_some_and(successful)
}

fn print(round: usize, r: &Run) {
    println!(
        "  round {round}: {:<16} {:>9.0} responses/s   p50 {:>6.2} ms   p99 {:>6.2} ms   ({} failed)",
        r.label,
        r.rate(),
        r.p50_ms,
        r.p99_ms,
        r.failed
    );
}

fn main() {
    let clients = env_or("BENCH_CLIENTS", 32);
    let rounds = env_or("BENCH_ROUNDS", 3).max(1);
    let seconds = env_or("BENCH_SECONDS", 5) as u64;
    let n = env_or("BENCH_CERTS", 64).max(1);
    let with_openssl = std::env::var("BENCH_OPENSSL").map_or(true, |v| v != "0");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(env_or("BENCH_CLIENT_THREADS", 2))
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (hostca_url, hostca_requests) = start_hostca(dir.path(), n).await;
        let hostca_requests = Arc::new(hostca_requests);
        let folder = dir.path().join("easy-rsa");
        std::fs::create_dir_all(&folder).unwrap();
        let competitor = if with_openssl {
            start_openssl(&folder, n)
        } else {
            None
        };
        println!(
            "OCSP: {clients} concurrent clients, {n} certificates, SHA-1 CertIDs without a nonce, \
             {rounds} rounds of {seconds} s each, alternating"
        );
        // Warm-up: hostca's responses are made (they were at issue) and cached.
        drive("warm-up", &hostca_url, hostca_requests.clone(), clients, 1).await;
        let (mut rates, mut p99s, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 1..=rounds {
            let a = drive("hostca", &hostca_url, hostca_requests.clone(), clients, seconds).await;
            print(round, &a);
            rates.push(a.rate());
            p99s.push(a.p99_ms);
            if let Some((_, url, requests)) = &competitor {
                let b = drive("openssl ocsp", url, Arc::new(requests.clone()), clients, seconds).await;
                print(round, &b);
                if b.rate() > 0.0 {
                    println!("  round {round}: hostca / openssl ocsp {:.1}", a.rate() / b.rate());
                    ratios.push(a.rate() / b.rate());
                }
            }
        }
        let (lo, hi) = range(&rates);
        let (plo, phi) = range(&p99s);
        println!(
            "hostca: median {:.0} responses/s (range {lo:.0}–{hi:.0}), p99 median {:.2} ms (range {plo:.2}–{phi:.2})",
            median(&rates),
            median(&p99s),
        );
        if !ratios.is_empty() {
            let (rlo, rhi) = range(&ratios);
            println!(
                "hostca / openssl ocsp: median {:.1} (range {rlo:.1}–{rhi:.1})",
                median(&ratios)
            );
        } else if with_openssl {
            println!("openssl ocsp could not be started: hostca alone");
        }
    });
}
