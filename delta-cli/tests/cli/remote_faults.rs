//! A far side that stops answering (stopped, not closed): `--timeout` gives up with a clear
//! message, tears the connection down, and leaves no partial file behind.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::remote_ssh::bin_path;
use crate::util::{code, data, s, stderr, Scratch};

/// A remote shell that passes the far side's first `bytes` bytes through, then goes silent
/// while keeping the connection open: what a hung host or a dead network path looks like.
fn freezing_rsh(sc: &Scratch, bytes: u64) -> String {
    let p = sc.path("freezing-rsh");
    // perl-base is part of every Debian system. perl replaces the shell, starts the far
    // command with its output piped to perl, relays `bytes` of it without buffering, then
    // sleeps with every pipe open; killing it (the remote shell) closes them, as with ssh.
    let relay = "$n = shift; $c = shift; open(my $s, q(-|), q(sh), q(-c), $c) or die; \
                 while ($n > 0) { $r = sysread($s, $b, 65536) or last; syswrite(STDOUT, $b); \
                 $n -= $r } sleep 20";
    fs::write(
        &p,
        format!("#!/bin/sh\nshift\nexec perl -e '{relay}' {bytes} \"$1\" 2>/dev/null\n"),
    )
    .unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

#[test]
fn a_frozen_far_side_times_out_cleanly() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    for i in 0..40 {
        src.file(&format!("d/f{i:02}"), data(i, 400_000));
    }
    let dst = sc.tree("dst");
    dst.file("d/f00", "old version");
    // The listing and part of the data get through, then nothing.
    let rsh = freezing_rsh(&sc, 3 << 20);
    let started = Instant::now();
    let o = Command::new(bin_path())
        .args(["sync", &format!("somehost:{}", src.arg()), dst.arg()])
        .args(["-e", &rsh, "--remote-bin", s(bin_path()), "--timeout", "1s"])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_ne!(code(&o), 0, "a timed-out pass fails");
    assert_eq!(
        stderr(&o).matches("--timeout").count(),
        1,
        "said once, not once per pending file: {}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains("cannot start a session"),
        "the session started, then stalled: {}",
        stderr(&o)
    );
    assert!(took < Duration::from_secs(15), "gave up in time: {took:?}");
    // Only complete files: the old version or a whole new one, no temporaries.
    let old = fs::read(dst.path("d/f00")).unwrap();
    assert!(old == b"old version" || old == data(0, 400_000));
    for e in fs::read_dir(dst.path("d")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".dstmp."), "temporary left: {name}");
        let i: u32 = name.trim_start_matches('f').parse().unwrap();
        let want = if i == 0 && old == b"old version" {
            11
        } else {
            400_000
        };
        assert_eq!(
            fs::read(dst.path(&format!("d/{name}"))).unwrap().len(),
            want
        );
    }
}

#[test]
fn rsync_dialect_timeout_is_seconds() {
    let o = Command::new(bin_path())
        .args(["rsync", "-a", "--timeout=soon", "a/", "b/"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("--timeout"), "{}", stderr(&o));
}
