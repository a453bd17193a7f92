//! The Prometheus rules and the Grafana dashboard under deploy/: the rules pass
//! `promtool test rules`, and every metric the rules and the dashboard's queries name is one
//! the host exports (a renamed metric breaks this test, not a dashboard in production).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn deploy() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy"))
}

/// Every `poskit_*` / `process_*` metric name in `text` (histogram series named by family).
fn names_in(text: &str) -> BTreeSet<String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = text.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        let starts = rest.starts_with(b"poskit_") || rest.starts_with(b"process_");
        if starts && (i == 0 || !(word(bytes[i - 1]) || bytes[i - 1] == b':')) {
            let len = rest.iter().position(|b| !word(*b)).unwrap_or(rest.len());
            // ASCII only: a valid boundary.
            let name = std::str::from_utf8(&rest[..len]).unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            out.insert(family.to_owned());
            i += len;
        } else {
            i += 1;
        }
    }
    out
}

fn exported() -> BTreeSet<String> {
    poskit_monitor::Metrics::new()
        .unwrap()
        .names()
        .into_iter()
        .collect()
}

#[test]
fn every_metric_the_rules_and_the_dashboard_read_is_exported() {
    let exported = exported();
    for file in ["prometheus/poskit-rules.yml", "grafana/poskit-host.json"] {
        let text = std::fs::read_to_string(deploy().join(file)).unwrap();
        let used = names_in(&text);
        assert!(!used.is_empty(), "{file} names no metric");
        let unknown: Vec<_> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} reads metrics the host does not export: {unknown:?}"
        );
    }
}

#[test]
fn the_alerting_rules_pass_their_promtool_unit_tests() {
    let found = Command::new("promtool").arg("--version").output();
    if found.is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs promtool (.ci/run)"
        );
        return;
    }
    let dir = deploy().join("prometheus");
    for args in [
        vec!["check", "rules", "poskit-rules.yml"],
        vec!["test", "rules", "poskit-rules.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
