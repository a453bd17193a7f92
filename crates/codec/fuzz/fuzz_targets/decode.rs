#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| poskit_codec::fuzzing::decode_everything(data));
