//! What `GET /metrics` reports, in the Prometheus text format (the `prometheus` crate
//! writes it): counters of what this process did, histograms of request latency and of
//! the group writer's batches, and gauges read from the database at each scrape.
//!
//! Counters of database changes (issued, revoked, token uses) count only what committed:
//! a change notes its count in the transaction (`count_on_commit`), and the transaction's
//! end (`db::write_tx`, the group writer) keeps or forgets the notes, as it does for audit
//! events. They are this process's own, since it started: Prometheus adds up the processes.

use std::cell::RefCell;
use std::sync::LazyLock;

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::models::kinds::{CertStatus, IssuedVia, RevocationReason};

/// What a committed change adds to the counters.
#[derive(Clone, Copy, Debug)]
pub enum Count {
    Issued(IssuedVia),
    Revoked(RevocationReason),
    TokenUse,
}

/// The gauges of one scrape, as read from the database and the CA set.
#[derive(Clone, Debug, Default)]
pub struct Gauges {
    pub certificates: Vec<(CertStatus, i64)>,
    /// Active certificates expiring within so many days: (days, count).
    pub expiring: Vec<(u32, i64)>,
    /// Each CA still in the trust bundle: (issuers row id, role key, not-after as Unix time).
    pub ca_not_after: Vec<(i64, &'static str, i64)>,
    /// Each CA that publishes a CRL: (issuers row id, next-update as Unix time).
    pub crl_next_update: Vec<(i64, i64)>,
}

struct Metrics {
    registry: Registry,
    issued: IntCounterVec,
    revoked: IntCounterVec,
    token_uses: IntCounter,
    refused: IntCounterVec,
    requests: HistogramVec,
    batch: Histogram,
}

/// Registers a collector; the names are fixed here, so a failure is a programming error
/// that the first test finds.
fn registered<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    r.register(Box::new(c.clone()))
        .expect("each metric is registered once");
    c
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let counter = |name: &str, help: &str, label: &str| {
            registered(
                &r,
                IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric"),
            )
        };
        Metrics {
            issued: counter(
                "hostca_issued_total",
                "Certificates issued by this process, by how they were asked for",
                "method",
            ),
            revoked: counter(
                "hostca_revoked_total",
                "Certificates revoked by this process, by reason (superseded: replaced by a renewal or reissue)",
                "reason",
            ),
            token_uses: registered(
                &r,
                IntCounter::new(
                    "hostca_token_uses_total",
                    "Uses of authorization and reissue tokens committed by this process",
                )
                .expect("valid metric"),
            ),
            refused: counter(
                "hostca_refused_total",
                "Requests refused with a 4xx, by the error code in the answer",
                "reason",
            ),
            requests: registered(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "hostca_http_request_duration_seconds",
                        "Time to answer a request, by route pattern and method",
                    )
                    .buckets(vec![
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                        2.5,
                    ]),
                    &["route", "method"],
                )
                .expect("valid metric"),
            ),
            batch: registered(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "hostca_group_commit_batch_size",
                        "Writes committed together by the enrollment writer, per batch",
                    )
                    .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
                )
                .expect("valid metric"),
            ),
            registry: r,
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

thread_local! {
    /// Counts noted by the transaction running on this thread, not yet committed.
    static PENDING: RefCell<Vec<Count>> = const { RefCell::new(Vec::new()) };
}

/// Notes a count that the current transaction makes true if it commits.
pub fn count_on_commit(count: Count) {
    PENDING.with(|p| p.borrow_mut().push(count));
}

pub(crate) fn pending_mark() -> usize {
    PENDING.with(|p| p.borrow().len())
}

/// The transaction begun at `mark` is over: on commit its counts are added; otherwise
/// the counts it noted are forgotten.
pub(crate) fn pending_done(mark: usize, committed: bool) {
    let counts = PENDING.with(|p| crate::db::settle_pending(p, mark, committed));
    let m = &*METRICS;
    for c in counts {
        match c {
            Count::Issued(via) => m.issued.with_label_values(&[via.key()]).inc(),
            Count::Revoked(reason) => m.revoked.with_label_values(&[reason.key()]).inc(),
            Count::TokenUse => m.token_uses.inc(),
        }
    }
}

/// A request was refused with a 4xx; `code` is the answer's error code.
pub fn refused(code: &str) {
    METRICS.refused.with_label_values(&[code]).inc();
}

/// A request matched `route` (its pattern, never the raw path: the label set stays small).
pub fn observe_request(route: &str, method: &str, seconds: f64) {
    METRICS
        .requests
        .with_label_values(&[route, method])
        .observe(seconds);
}

/// The group writer committed a batch of `jobs` writes.
pub fn observe_batch(jobs: usize) {
    METRICS.batch.observe(jobs as f64);
}

/// The text of one scrape: the counters and histograms, and `gauges` as read just now.
/// The gauges live in a registry of their own, made for this scrape: they are the
/// database's state at this moment, so nothing of them is kept between scrapes.
pub fn render(gauges: &Gauges) -> String {
    let r = Registry::new();
    let int = |name: &str, help: &str, label: &str| {
        registered(
            &r,
            IntGaugeVec::new(Opts::new(name, help), &[label]).expect("valid metric"),
        )
    };
    let time = |name: &str, help: &str, labels: &[&str]| {
        registered(
            &r,
            GaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
        )
    };
    let certificates = int(
        "hostca_certificates",
        "Certificates in the database, by state",
        "state",
    );
    for (state, n) in &gauges.certificates {
        certificates.with_label_values(&[state.key()]).set(*n);
    }
    let expiring = int(
        "hostca_certificates_expiring",
        "Active certificates that expire within the window",
        "within",
    );
    for (days, n) in &gauges.expiring {
        expiring
            .with_label_values(&[format!("{days}d").as_str()])
            .set(*n);
    }
    let ca = time(
        "hostca_ca_not_after_timestamp_seconds",
        "When each CA in the trust bundle expires (Unix time)",
        &["issuer", "role"],
    );
    for (id, role, at) in &gauges.ca_not_after {
        ca.with_label_values(&[id.to_string().as_str(), role])
            .set(*at as f64);
    }
    let crl = time(
        "hostca_crl_next_update_timestamp_seconds",
        "The next-update time of each CA's current CRL (Unix time)",
        &["issuer"],
    );
    for (id, at) in &gauges.crl_next_update {
        crl.with_label_values(&[id.to_string().as_str()])
            .set(*at as f64);
    }
    let mut families = METRICS.registry.gather();
    families.extend(r.gather());
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out = Vec::new();
    // The text encoder writes to memory: it fails only on a metric it cannot name, and
    // every name here is fixed.
    let _ = TextEncoder::new().encode(&families, &mut out);
    String::from_utf8(out).unwrap_or_default()
}
