#![no_main]
use libfuzzer_sys::fuzz_target;

// The form and JSON decoders the server runs on every request body.
fuzz_target!(|data: &[u8]| {
    let _: Result<Vec<(String, String)>, _> = serde_urlencoded::from_bytes(data);
    let _: Result<serde_json::Value, _> = serde_json::from_slice(data);
});
