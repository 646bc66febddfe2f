//! `hostca agent`: the host's certificate kept valid without anyone watching. It runs in the
//! foreground (a systemd unit, `hostca agent install-unit`), and each poll asks the server
//! for its certificate's renewal window (`GET /api/v1/certificates/{serial}/renewal-info`,
//! the window ACME's renewalInfo gives), renews with a new key at a moment drawn once per
//! certificate inside that window (kept in `agent-state.json`, so a restart does not draw
//! again), runs a hook after a renewal, and refreshes the CRL and the CA bundle at the
//! security level's interval. A server that cannot be reached is retried with exponential
//! backoff, never fatal: only a misconfiguration ends the agent (non-zero). One line on
//! standard error per action: time, action, outcome.

use std::path::{Path, PathBuf};
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, NaiveDateTime};
use rand::RngExt;
use serde_json::json;

use super::client::CliResult;
use super::host;
use crate::models::kinds::SecurityLevel;
use crate::services::renewal::lifetime_window;

/// The unit `install-unit` writes; `@EXEC_START@` and `@DIR@` are filled in.
pub const UNIT_TEMPLATE: &str = include_str!("../../contrib/hostca-agent.service");

/// Where the agent keeps the moment it drew for the current certificate.
pub const STATE_FILE: &str = "agent-state.json";

/// Signals `--signal` may send.
pub const SIGNALS: &[&str] = &["HUP", "USR1", "USR2", "TERM", "INT", "QUIT", "WINCH"];

/// The first retry's delay after a failure; it doubles up to `--backoff-max`.
pub const BACKOFF_START: StdDuration = StdDuration::from_secs(1);

/// What the agent was told to do.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    pub server: String,
    pub dir: PathBuf,
    pub poll: StdDuration,
    /// NetBackup's `--renew-before`: renew at not_after minus this, not in the window.
    pub renew_before: Option<StdDuration>,
    pub exec: Option<String>,
    pub signal: Option<String>,
    pub pid_file: Option<PathBuf>,
    pub backoff_max: StdDuration,
    /// Overrides the security level's CRL interval.
    pub crl_interval: Option<StdDuration>,
}

/// "90s", "5m", "4h", "180d" (or a number of seconds).
pub fn parse_duration(text: &str) -> Result<StdDuration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration such as 30s, 5m, 4h or 180d"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("'{text}': the unit must be s, m, h or d")),
    };
    if n == 0 {
        return Err(format!("'{text}': a duration must be more than zero"));
    }
    n.checked_mul(seconds)
        .map(StdDuration::from_secs)
        .ok_or_else(|| format!("'{text}' is too long"))
}

/// How often a host refreshes its CRL at a security level (as NetBackup does).
pub fn crl_interval(level: SecurityLevel) -> StdDuration {
    StdDuration::from_secs(match level {
        SecurityLevel::VeryHigh => 3600,
        SecurityLevel::High => 4 * 3600,
        SecurityLevel::Medium => 8 * 3600,
    })
}

/// The moment to renew a certificate whose suggested window is `start..end`, drawn
/// uniformly from the window's first half: the second half (a sixth of the lifetime, with
/// the server's default window) is left for retries while the CA is down. A window that is
/// already open when the agent first sees it (a drill, an administrator's allow-renewal, a
/// late start) means now: agents poll at independent moments, which spreads a drill over
/// one poll interval.
pub fn choose_renewal_time<R: rand::Rng + ?Sized>(
    start: NaiveDateTime,
    end: NaiveDateTime,
    now: NaiveDateTime,
    rng: &mut R,
) -> NaiveDateTime {
    if start <= now {
        return now;
    }
    let spread = ((end - start) / 2).num_milliseconds().max(0);
    start + Duration::milliseconds(rng.random_range(0..=spread))
}

/// The delay before retry `attempt` (1, 2, ...): doubling from `BACKOFF_START` up to
/// `max`, with jitter (between half and all of it) so that hosts that failed together do
/// not retry together.
pub fn backoff<R: rand::Rng + ?Sized>(attempt: u32, max: StdDuration, rng: &mut R) -> StdDuration {
    let full = BACKOFF_START
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(max);
    let ms = full.as_millis() as u64;
    StdDuration::from_millis(rng.random_range(ms / 2..=ms.max(1)))
}

fn log(action: &str, outcome: &str) {
    eprintln!(
        "{} hostca-agent {action}: {outcome}",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
    );
}

fn now() -> NaiveDateTime {
    chrono::Utc::now().naive_utc()
}

fn parse_time(v: &serde_json::Value) -> Option<NaiveDateTime> {
    chrono::DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|d| d.naive_utc())
}

/// The moment drawn for one certificate and the window it was drawn from.
#[derive(Clone, Debug, PartialEq)]
struct State {
    serial: String,
    start: NaiveDateTime,
    end: NaiveDateTime,
    renew_at: NaiveDateTime,
}

impl State {
    fn load(dir: &Path) -> Option<State> {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(STATE_FILE)).ok()?).ok()?;
        Some(State {
            serial: v["serial"].as_str()?.to_string(),
            start: parse_time(&v["window_start"])?,
            end: parse_time(&v["window_end"])?,
            renew_at: parse_time(&v["renew_at"])?,
        })
    }

    fn save(&self, dir: &Path) {
        let at = |t: NaiveDateTime| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        let v = json!({
            "serial": self.serial,
            "window_start": at(self.start),
            "window_end": at(self.end),
            "renew_at": at(self.renew_at),
        });
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let written = std::fs::write(&tmp, v.to_string())
            .and_then(|_| std::fs::rename(&tmp, dir.join(STATE_FILE)));
        if let Err(e) = written {
            log("state", &format!("cannot write {STATE_FILE}: {e}"));
        }
    }
}

/// The server's answer about the current certificate.
struct Window {
    start: NaiveDateTime,
    end: NaiveDateTime,
    status: String,
    level: Option<SecurityLevel>,
}

fn ask_window(opts: &AgentOptions, serial: &str) -> CliResult<Window> {
    let v = host::client(&opts.server, &opts.dir)?.json(
        "GET",
        &format!("/api/v1/certificates/{serial}/renewal-info"),
        None,
    )?;
    Ok(Window {
        start: parse_time(&v["start"]).ok_or("the renewal-info answer has no start")?,
        end: parse_time(&v["end"]).ok_or("the renewal-info answer has no end")?,
        status: v["status"].as_str().unwrap_or("active").to_string(),
        level: v["security_level"].as_str().and_then(SecurityLevel::parse),
    })
}

/// What one check of the certificate came to.
enum Checked {
    Renewed,
    /// Nothing to do before this moment.
    Waiting(NaiveDateTime),
    Failed,
    NeedsReissue,
}

fn reissue_needed(opts: &AgentOptions, what: &str, name: Option<&str>) {
    log(
        "check",
        &format!(
            "{what}: it cannot be renewed, a reissue token is needed: ask an administrator for one and run 'hostca get-certificate --server {} --dir {} --hostname {} --token-file FILE'; still checking",
            opts.server,
            opts.dir.display(),
            name.unwrap_or("NAME")
        ),
    );
}

struct Agent {
    opts: AgentOptions,
    level: Option<SecurityLevel>,
}

impl Agent {
    fn check(&mut self) -> Checked {
        match host::finish_replacement(&self.opts.dir) {
            Ok(true) => log(
                "recover",
                "finished or undid a replacement a crash interrupted",
            ),
            Ok(false) => {}
            Err(e) => log("recover", &format!("failed: {e}")),
        }
        let local = match host::local_cert(&self.opts.dir) {
            Ok(l) => l,
            Err(e) => {
                log("check", &format!("cannot read the certificate: {e}"));
                return Checked::Failed;
            }
        };
        let now = now();
        if local.not_after <= now {
            reissue_needed(
                &self.opts,
                &format!(
                    "certificate {} expired at {} UTC",
                    local.serial, local.not_after
                ),
                local.name.as_deref(),
            );
            return Checked::NeedsReissue;
        }
        let stored = State::load(&self.opts.dir).filter(|s| s.serial == local.serial);
        let (start, end, from_server) = match ask_window(&self.opts, &local.serial) {
            Ok(w) => {
                if w.level.is_some() {
                    self.level = w.level;
                }
                if w.status != "active" {
                    reissue_needed(
                        &self.opts,
                        &format!("certificate {} is {}", local.serial, w.status),
                        local.name.as_deref(),
                    );
                    return Checked::NeedsReissue;
                }
                (w.start, w.end, true)
            }
            Err(e) => {
                log(
                    "renewal-info",
                    &format!("failed ({e}); using the window already known"),
                );
                match &stored {
                    Some(s) => (s.start, s.end, false),
                    None => {
                        let (s, e) = lifetime_window(local.not_before, local.not_after);
                        (s, e, false)
                    }
                }
            }
        };
        let renew_at = if let Some(before) = self.opts.renew_before {
            let fixed = local.not_after
                - Duration::from_std(before).unwrap_or_else(|_| Duration::days(36_500));
            // The server still says now for a drill or a pulled-forward renewal.
            if from_server && start <= now {
                now
            } else {
                fixed
            }
        } else {
            match &stored {
                Some(s) if !from_server || (s.start, s.end) == (start, end) => s.renew_at,
                _ => {
                    let at = choose_renewal_time(start, end, now, &mut rand::rng());
                    State {
                        serial: local.serial.clone(),
                        start,
                        end,
                        renew_at: at,
                    }
                    .save(&self.opts.dir);
                    at
                }
            }
        };
        if renew_at > now {
            log(
                "check",
                &format!(
                    "certificate {} (valid until {} UTC) renews at {} UTC",
                    local.serial,
                    local.not_after,
                    renew_at.format("%Y-%m-%d %H:%M:%S")
                ),
            );
            return Checked::Waiting(renew_at);
        }
        match host::renew(&self.opts.server, &self.opts.dir, true) {
            Ok(r) => {
                log(
                    "renew",
                    &format!(
                        "certificate {} renewed as {} with a new key{}",
                        local.serial,
                        r.serial,
                        if r.ca_changed { "; ca.pem updated" } else { "" }
                    ),
                );
                self.after_renewal(&r.serial);
                Checked::Renewed
            }
            Err(e) if e.contains("reissue token") => {
                reissue_needed(
                    &self.opts,
                    &format!("renewing certificate {} was refused ({e})", local.serial),
                    local.name.as_deref(),
                );
                Checked::NeedsReissue
            }
            Err(e) => {
                log("renew", &format!("failed: {e}"));
                Checked::Failed
            }
        }
    }

    fn after_renewal(&self, serial: &str) {
        let dir = &self.opts.dir;
        if let Some(cmd) = &self.opts.exec {
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .env("HOSTCA_CERT", dir.join("host.pem"))
                .env("HOSTCA_KEY", dir.join("host.key"))
                .env("HOSTCA_CA", dir.join("ca.pem"))
                .env("HOSTCA_SERIAL", serial)
                .stdin(std::process::Stdio::null())
                .status();
            match status {
                Ok(s) if s.success() => log("exec", &format!("'{cmd}' succeeded")),
                Ok(s) => log("exec", &format!("'{cmd}' failed: {s}")),
                Err(e) => log("exec", &format!("'{cmd}' could not run: {e}")),
            }
        }
        if let (Some(signal), Some(pid_file)) = (&self.opts.signal, &self.opts.pid_file) {
            let pid = std::fs::read_to_string(pid_file)
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok());
            let Some(pid) = pid else {
                log(
                    "signal",
                    &format!(
                        "{} holds no process ID: nothing signalled",
                        pid_file.display()
                    ),
                );
                return;
            };
            let status = std::process::Command::new("kill")
                .args(["-s", signal, &pid.to_string()])
                .status();
            match status {
                Ok(s) if s.success() => log("signal", &format!("SIG{signal} sent to {pid}")),
                Ok(s) => log("signal", &format!("SIG{signal} to {pid} failed: {s}")),
                Err(e) => log("signal", &format!("kill could not run: {e}")),
            }
        }
    }

    fn refresh(&self) -> bool {
        let (server, dir) = (&self.opts.server, &self.opts.dir);
        let bundle = host::refresh_ca_bundle(server, dir);
        match &bundle {
            Ok(true) => log("ca-bundle", "ca.pem updated"),
            Ok(false) => log("ca-bundle", "unchanged"),
            Err(e) => log("ca-bundle", &format!("failed: {e}")),
        }
        let crl = host::fetch_crl(server, dir);
        match &crl {
            Ok((number, revoked)) => log(
                "crl",
                &format!("CRL number {number} ({revoked} revoked) stored"),
            ),
            Err(e) => log("crl", &format!("failed: {e}")),
        }
        bundle.is_ok() && crl.is_ok()
    }

    fn crl_interval(&self) -> StdDuration {
        self.opts
            .crl_interval
            .unwrap_or_else(|| crl_interval(self.level.unwrap_or(SecurityLevel::High)))
    }
}

/// What is wrong with the options or the files, before the loop starts.
pub fn check_config(opts: &AgentOptions) -> CliResult<()> {
    if !opts.server.starts_with("http://") && !opts.server.starts_with("https://") {
        return Err(format!(
            "--server must start with http:// or https://, not '{}'",
            opts.server
        ));
    }
    if !opts.dir.is_dir() {
        return Err(format!(
            "--dir {} is not a directory: enroll first ('hostca get-ca-certificate', then 'hostca get-certificate')",
            opts.dir.display()
        ));
    }
    if !opts.dir.join("ca.pem").exists() {
        return Err(format!(
            "{} is missing: run 'hostca get-ca-certificate --fingerprint SHA256' first",
            opts.dir.join("ca.pem").display()
        ));
    }
    host::finish_replacement(&opts.dir)?;
    let local = host::local_cert(&opts.dir).map_err(|e| {
        format!("{e} (the agent renews a certificate 'hostca get-certificate' got)")
    })?;
    if !local.key_matches {
        return Err(format!(
            "{} is not the key of {}: enroll again",
            opts.dir.join("host.key").display(),
            opts.dir.join("host.pem").display()
        ));
    }
    match (&opts.signal, &opts.pid_file) {
        (Some(s), Some(_)) if !SIGNALS.contains(&s.as_str()) => {
            return Err(format!(
                "--signal {s}: give one of {} (without SIG)",
                SIGNALS.join(", ")
            ))
        }
        (Some(_), None) => return Err("--signal needs --pid-file (the process to signal)".into()),
        (None, Some(_)) => return Err("--pid-file needs --signal (which signal to send)".into()),
        _ => {}
    }
    Ok(())
}

/// Runs the agent until it is stopped; returns only on a misconfiguration.
pub fn run(mut opts: AgentOptions) -> CliResult<()> {
    opts.server = opts.server.trim_end_matches('/').to_string();
    if let Some(s) = &opts.signal {
        opts.signal = Some(s.trim_start_matches("SIG").to_ascii_uppercase());
    }
    check_config(&opts)?;
    log(
        "start",
        &format!(
            "server {}, dir {}, poll every {}s",
            opts.server,
            opts.dir.display(),
            opts.poll.as_secs()
        ),
    );
    let poll = opts.poll;
    let backoff_max = opts.backoff_max;
    let mut agent = Agent { opts, level: None };
    let mut rng = rand::rng();
    let (mut next_check, mut next_refresh) = (Instant::now(), Instant::now());
    let (mut check_failures, mut refresh_failures) = (0u32, 0u32);
    loop {
        let at = Instant::now();
        if at >= next_check {
            // Polls drift by up to a tenth of the interval, so that hosts started together
            // do not stay in step.
            let jittered = poll.mul_f64(rng.random_range(0.9..=1.1));
            next_check = at
                + match agent.check() {
                    Checked::Renewed | Checked::NeedsReissue => {
                        check_failures = 0;
                        jittered
                    }
                    Checked::Waiting(when) => {
                        check_failures = 0;
                        let until = (when - now()).to_std().unwrap_or_default();
                        jittered.min(until.max(StdDuration::from_millis(100)))
                    }
                    Checked::Failed => {
                        check_failures += 1;
                        let wait = backoff(check_failures, backoff_max, &mut rng).min(jittered);
                        log("retry", &format!("next attempt in {}s", wait.as_secs_f32()));
                        wait
                    }
                };
        }
        if at >= next_refresh {
            next_refresh = at
                + if agent.refresh() {
                    refresh_failures = 0;
                    agent.crl_interval()
                } else {
                    refresh_failures += 1;
                    backoff(refresh_failures, backoff_max, &mut rng).min(agent.crl_interval())
                };
        }
        let wake = next_check.min(next_refresh);
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
    }
}

/// One argument of a systemd ExecStart line, quoted when it needs to be.
fn unit_quote(arg: &str) -> String {
    let escaped = arg
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    if escaped.is_empty() || escaped.contains(|c: char| c.is_whitespace() || c == ';') {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

fn seconds(d: StdDuration) -> String {
    format!("{}s", d.as_secs())
}

/// The unit file for these options: `contrib/hostca-agent.service` with ExecStart filled in.
pub fn unit_text(exe: &Path, opts: &AgentOptions) -> String {
    let dir = std::path::absolute(&opts.dir).unwrap_or_else(|_| opts.dir.clone());
    let mut args: Vec<String> = vec![
        exe.display().to_string(),
        "agent".into(),
        "--server".into(),
        opts.server.clone(),
        "--dir".into(),
        dir.display().to_string(),
        "--poll".into(),
        seconds(opts.poll),
        "--backoff-max".into(),
        seconds(opts.backoff_max),
    ];
    let mut add = |flag: &str, value: Option<String>| {
        if let Some(v) = value {
            args.push(flag.into());
            args.push(v);
        }
    };
    add("--renew-before", opts.renew_before.map(seconds));
    add("--crl-interval", opts.crl_interval.map(seconds));
    add("--exec", opts.exec.clone());
    add("--signal", opts.signal.clone());
    add(
        "--pid-file",
        opts.pid_file.as_ref().map(|p| p.display().to_string()),
    );
    let exec: Vec<String> = args.iter().map(|a| unit_quote(a)).collect();
    UNIT_TEMPLATE
        .replace("@EXEC_START@", &exec.join(" "))
        .replace("@DIR@", &unit_quote(&dir.display().to_string()))
}

/// Writes the unit file (the agent's options checked first).
pub fn install_unit(opts: &AgentOptions, path: &Path) -> CliResult<()> {
    check_config(opts)?;
    let exe = std::env::current_exe().map_err(|e| format!("where is this program? {e}"))?;
    std::fs::write(path, unit_text(&exe, opts))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!(
        "Wrote {}: run 'systemctl daemon-reload && systemctl enable --now {}'",
        path.display(),
        path.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    );
    Ok(())
}
