//! Fixture kit for the cross-crate end-to-end suites: deterministic data, temporary files, and
//! running real peers (which must be installed: a missing peer fails the test, it never skips).

use std::path::Path;
use std::process::{Command, Output};

/// Deterministic pseudo-random bytes.
pub fn data(seed: u32, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Fails loudly when a peer is missing: CI installs them, so absence is a broken setup.
pub fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "the peer `{tool}` is not installed; run the README's test command, which installs it"
    );
}

/// Runs a peer and insists it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `rdiff` with arguments, run in `dir`.
pub fn rdiff(dir: &Path, args: &[&str]) -> Output {
    require("rdiff");
    run_ok(Command::new("rdiff").current_dir(dir).args(args))
}
