#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hostca::pki::csr::verify_der(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = hostca::pki::csr::verify_pem(s);
    }
});
