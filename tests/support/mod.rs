//! Test support shared by the integration tests, the demo and the benchmark: a loopback
//! stand-in forge, a sandboxed home with fake programs, and real git fixtures.
#![allow(dead_code, clippy::unwrap_used)]

pub mod env;
pub mod fakes;
pub mod fixture;
pub mod forge;
pub mod git_http;
pub mod pty;
pub mod sandbox;
pub mod scenario;
pub mod sshd;
pub mod tls;

use std::path::PathBuf;

/// Compares generated text with `tests/snapshots/<name>`; `UPDATE_SNAPSHOTS=1` rewrites it
/// (review the diff).
#[track_caller]
pub fn assert_snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).expect("write snapshot");
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing snapshot {}; run with UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "{name} changed; review it and run with UPDATE_SNAPSHOTS=1"
    );
}

/// The heph-selfupdate binary under test.
pub fn binary() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_heph-selfupdate") {
        return PathBuf::from(p);
    }
    // Examples live in target/<profile>/examples/; the binary one level up.
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("heph-selfupdate"))
        .expect("target dir")
}
