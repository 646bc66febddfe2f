//! The CA's signer: signatures per second and enrollments per second with the issuing
//! key in a key file and in a PKCS#11 token (SoftHSMv2), measured in one run, alternating
//! the two (A B A B A B) on this shared machine, each pair's ratio printed, then the median
//! and the range.
//!
//!     cargo bench --bench signers
//!
//! Environment: BENCH_SIGNATURES (default 5000 a round), BENCH_ENROLLMENTS (2000 a round),
//! BENCH_ROUNDS (3), BENCH_THREADS (8 for enrollments). Needs Debian's softhsm2.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use hostca::config::Config;
use hostca::models::user::Role;
use hostca::services::{enroll, tokens, Actor, Ctx};
use hostca::startup::Application;
use rcgen::SigningKey;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

#[allow(dead_code)]
mod support;
use support::{env_or, median, range};

/// A SoftHSMv2 token for this run; the PIN file's path.
fn token(dir: &std::path::Path) -> std::path::PathBuf {
    let out = std::process::Command::new("sh")
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/softhsm-token.sh"),
            dir.to_str().unwrap(),
            "hostca-bench",
            "1234",
            "5678",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::env::set_var("SOFTHSM2_CONF", dir.join("softhsm2.conf"));
    let pin = dir.join("pin");
    std::fs::write(&pin, "1234\n").unwrap();
    pin
}

/// An installation whose issuing key is a file, or (with `pin`) in the token.
fn start(dir: &std::path::Path, pin: Option<&std::path::Path>) -> (Ctx, String) {
    let mut config = Config::new(dir.join("data"));
    config.listen = "127.0.0.1:0".into();
    config.admin_password = Some("bench password".into());
    config.workers = Some(2);
    if let Some(pin) = pin {
        config.ca.issuing_key = Some("pkcs11:token=hostca-bench;object=issuing".into());
        config.ca.pkcs11_module = Some(MODULE.into());
        config.ca.pkcs11_pin_file = Some(pin.to_path_buf());
    }
    let app = Application::build(&config).unwrap();
    let ctx = app.ctx.clone();
    actix_web::rt::spawn(app.run_until_stopped());
    let admin = Actor {
        username: "admin".into(),
        role: Role::Administrator,
    };
    let input = tokens::TokenInput {
        name: "bench".into(),
        max_uses: "99999".into(),
        valid_for: "1d".into(),
        reason: "benchmark".into(),
    };
    tokens::create(&ctx, &admin, &input).unwrap();
    let value = tokens::reveal(&ctx, &admin, "bench").unwrap().1;
    (ctx, value)
}

/// Signatures per second with the CA's signer, on every core.
fn signatures(ctx: &Ctx, n: usize) -> f64 {
    let ca = ctx.pki.signing();
    let key = ca.signer().unwrap();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicUsize::new(0);
    let message = [7u8; 300];
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    key.sign(&message).unwrap();
                }
            });
        }
    });
    n as f64 / start.elapsed().as_secs_f64()
}

/// Enrollments per second through the enrollment service (CSR verified, token used,
/// certificate signed, stored and audited, committed), `threads` at a time.
fn enrollments(ctx: &Ctx, token: &str, round: &str, n: usize, threads: usize) -> f64 {
    let csrs: Vec<(String, String)> = (0..n)
        .map(|i| {
            let name = format!("{round}-{i}.bench.example");
            let key = rcgen::KeyPair::generate().unwrap();
            let csr = rcgen::CertificateParams::new(vec![name.clone()])
                .unwrap()
                .serialize_request(&key)
                .unwrap()
                .pem()
                .unwrap();
            (name, csr)
        })
        .collect();
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((name, csr)) = csrs.get(i) else {
                    break;
                };
                enroll::enroll(
                    ctx,
                    &enroll::EnrollRequest {
                        hostname: name.clone(),
                        csr: csr.clone(),
                        token: Some(token.to_string()),
                        peer: None,
                    },
                )
                .unwrap();
            });
        }
    });
    n as f64 / start.elapsed().as_secs_f64()
}

/// Runs `a` and `b` alternately `rounds` times; prints each pair and the summary.
fn alternate(
    what: &str,
    rounds: usize,
    mut a: impl FnMut(usize) -> f64,
    mut b: impl FnMut(usize) -> f64,
) {
    let (mut ra, mut rb, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let x = a(round);
        let y = b(round);
        println!(
            "  round {}: key file {x:>9.0}/s   PKCS#11 {y:>9.0}/s   ratio {:.3}",
            round + 1,
            y / x
        );
        ra.push(x);
        rb.push(y);
        ratios.push(y / x);
    }
    let (lo, hi) = range(&ratios);
    println!(
        "{what}: key file median {:.0}/s, PKCS#11 (SoftHSMv2) median {:.0}/s; PKCS#11 / file median {:.3} (range {lo:.3}–{hi:.3})",
        median(&ra),
        median(&rb),
        median(&ratios)
    );
}

fn main() {
    if !std::path::Path::new(MODULE).exists() {
        println!("SoftHSMv2 is not installed ({MODULE}): apt-get install softhsm2");
        return;
    }
    let sigs = env_or("BENCH_SIGNATURES", 5_000);
    let n = env_or("BENCH_ENROLLMENTS", 2_000);
    let rounds = env_or("BENCH_ROUNDS", 3);
    let threads = env_or("BENCH_THREADS", 8);
    let dir = tempfile::tempdir().unwrap();
    let pin = token(&dir.path().join("hsm"));
    actix_web::rt::System::new().block_on(async move {
        let (file, file_token) = start(&dir.path().join("file"), None);
        let (hsm, hsm_token) = start(&dir.path().join("pkcs11"), Some(&pin));
        println!(
            "ECDSA P-256 issuing keys; {sigs} signatures and {n} enrollments ({threads} threads) a round, {rounds} rounds, alternating"
        );
        let (f, h) = (file.clone(), hsm.clone());
        actix_web::web::block(move || {
            alternate("signatures", rounds, |_| signatures(&f, sigs), |_| signatures(&h, sigs));
            alternate(
                "enrollments",
                rounds,
                |r| enrollments(&f, &file_token, &format!("f{r}"), n, threads),
                |r| enrollments(&h, &hsm_token, &format!("h{r}"), n, threads),
            );
        })
        .await
        .unwrap();
        drop((file, hsm));
    });
    // The PKCS#11 module is finalised at exit (an atexit handler hostca registers).
}
