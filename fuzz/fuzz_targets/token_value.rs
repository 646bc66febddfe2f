#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    if let Some(c) = hostca::token_value::canonical(s) {
        assert_eq!(hostca::token_value::canonical(&c), Some(c.clone()));
    }
});
