#![no_main]
use libfuzzer_sys::fuzz_target;
fuzz_target!(|data: &[u8]| ecoedge_tests::fuzzing::trace_file(data));
