#![no_main]
//! The host's request path under libFuzzer: the input is read as steps
//! (`poskit_host::fuzzing::steps`: bytes on the wire, or a signed-in terminal's request
//! mutated) against one host per process, whose ledger carries over from input to input.
//! The driver asserts; a panic is a finding.

use std::sync::{Mutex, OnceLock};

use poskit_host::fuzzing::{RequestPath, steps};

struct Host {
    _dir: tempfile::TempDir,
    path: RequestPath,
}

fn host() -> &'static Mutex<Host> {
    static HOST: OnceLock<Mutex<Host>> = OnceLock::new();
    HOST.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("poskit-fuzz-request-")
            .tempdir()
            .expect("a temporary directory");
        let mut path = RequestPath::open(dir.path()).expect("the host opens");
        path.sign_in_all();
        Mutex::new(Host { _dir: dir, path })
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut host = host().lock().unwrap_or_else(|e| e.into_inner());
    for step in steps(data) {
        host.path.step(&step);
    }
});
