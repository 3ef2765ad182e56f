//! Fuzzes the upload check and text-layer extraction (`lector::engines::validate_and_extract`).
//!
//! The parser's panics are caught by Lector (`catch_unwind`) and turned into a readable
//! reason, so the panic hook that libFuzzer installs (abort on any panic, even a caught one)
//! is replaced by a silent one: what this target reports is what Lector does *not* handle —
//! a panic that escapes, a hang (`-timeout`), a stack overflow, or memory beyond `-rss_limit_mb`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        std::panic::set_hook(Box::new(|_| {}));
    },
    |data: &[u8]| {
        let _ = lector::engines::validate_and_extract(data, 50);
    }
);
