//! What the benchmarks share: their knobs from the environment, the clients' latencies
//! summed up into one run, and the median and range over alternating rounds.

use std::time::{Duration, Instant};

pub fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One target driven by concurrent clients for one round.
pub struct Run {
    pub label: String,
    pub ok: usize,
    pub failed: usize,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.seconds
    }
}

/// Waits for the clients (each: its latencies and its failures) and sums them up.
pub async fn collect(
    label: &str,
    tasks: Vec<tokio::task::JoinHandle<(Vec<Duration>, usize)>>,
    start: Instant,
) -> Run {
    let mut all = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (l, f) = t.await.unwrap();
        all.extend(l);
        failed += f;
    }
    let seconds = start.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    Run {
        label: label.to_string(),
        ok: all.len(),
        failed,
        seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

/// The middle value (the upper one of an even count).
pub fn median<T: PartialOrd + Copy>(v: &[T]) -> T {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN among the measurements"));
    v[v.len() / 2]
}

/// The lowest and the highest value.
pub fn range(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::MAX, f64::MIN), |(l, h), x| (l.min(*x), h.max(*x)))
}
