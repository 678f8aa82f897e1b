#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| disttags_core_fuzz::names_target(data));
