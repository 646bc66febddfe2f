#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    if let Ok(d) = hostca::valid_for::parse(s) {
        assert!(d.num_minutes() >= 1 && d.num_minutes() <= 999 * 1440);
    }
    let _ = hostca::services::hosts::normalize_hostname(s);
});
