//! `deltasync signature|delta|patch`: rdiff's argument order, `-` for standard streams,
//! interchangeable files with the real rdiff, one-line errors with rdiff's exit codes.

use std::fs;

use crate::util::{data, peer, run, stderr};

fn setup() -> (tempfile::TempDir, Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let basis = data(1, 400_000);
    let new = [&basis[..123_456], &data(2, 4321), &basis[130_000..]].concat();
    fs::write(dir.path().join("basis"), &basis).unwrap();
    fs::write(dir.path().join("new"), &new).unwrap();
    (dir, basis, new)
}

#[test]
fn round_trip_in_every_format_through_files() {
    let (dir, _, new) = setup();
    for format in ["rdiff", "rdiff-md4", "native"] {
        for (a, args) in [
            (
                "signature",
                vec!["signature", "--format", format, "-f", "basis", "sig"],
            ),
            ("delta", vec!["delta", "-f", "sig", "new", "delta"]),
            ("patch", vec!["patch", "-f", "basis", "delta", "out"]),
        ] {
            let o = run(dir.path(), &args, None);
            assert!(o.status.success(), "{format} {a}: {}", stderr(&o));
            assert!(o.stdout.is_empty());
        }
        assert!(
            fs::read(dir.path().join("out")).unwrap() == new,
            "{format}: round trip differs"
        );
    }
}

#[test]
fn standard_streams_with_dash_and_omitted_arguments() {
    let (dir, basis, new) = setup();
    let sig = run(dir.path(), &["signature", "-"], Some(&basis));
    assert!(sig.status.success(), "{}", stderr(&sig));
    // From a pipe the length is unknown: rdiff then uses 2048-byte blocks.
    assert_eq!(
        &sig.stdout[..12],
        &[0x72, 0x73, 0x01, 0x47, 0, 0, 8, 0, 0, 0, 0, 32]
    );
    fs::write(dir.path().join("sig"), &sig.stdout).unwrap();
    let delta = run(dir.path(), &["delta", "sig"], Some(&new));
    assert!(delta.status.success(), "{}", stderr(&delta));
    let out = run(
        dir.path(),
        &["patch", "basis", "-", "-"],
        Some(&delta.stdout),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == new);
}

#[test]
fn files_interchange_with_real_rdiff() {
    let (dir, _, new) = setup();
    let d = dir.path();
    for flags in [&[][..], &["-H", "md4", "-R", "rollsum"][..]] {
        // rdiff signature → our delta → rdiff patch
        peer(
            d,
            "rdiff",
            &[flags, &["-f", "signature", "basis", "r.sig"]].concat(),
        );
        assert!(run(d, &["delta", "-f", "r.sig", "new", "o.delta"], None)
            .status
            .success());
        peer(d, "rdiff", &["-f", "patch", "basis", "o.delta", "r.out"]);
        assert!(fs::read(d.join("r.out")).unwrap() == new);
        // our signature → rdiff delta → our patch; and our signature is rdiff's, byte for byte
        let mut args = vec!["signature", "-f"];
        args.extend_from_slice(flags);
        args.extend(["basis", "o.sig"]);
        assert!(run(d, &args, None).status.success());
        assert_eq!(
            fs::read(d.join("o.sig")).unwrap(),
            fs::read(d.join("r.sig")).unwrap()
        );
        peer(d, "rdiff", &["-f", "delta", "o.sig", "new", "r.delta"]);
        assert!(run(d, &["patch", "-f", "basis", "r.delta", "o.out"], None)
            .status
            .success());
        assert!(fs::read(d.join("o.out")).unwrap() == new);
    }
}

#[test]
fn bad_input_gives_one_line_and_rdiffs_exit_codes() {
    let (dir, _, _) = setup();
    let d = dir.path();
    fs::write(d.join("garbage"), b"garbage!").unwrap();
    fs::write(d.join("trunc"), [0x72, 0x73, 0x02, 0x36, 0x45]).unwrap();
    fs::write(
        d.join("oob"),
        [
            0x72, 0x73, 0x02, 0x36, 0x4f, 0, 0x10, 0, 0, 0, 0, 0, 0x10, 0,
        ],
    )
    .unwrap();
    for (args, code, msg) in [
        (
            &["patch", "basis", "garbage", "o1"][..],
            104,
            "bad delta magic 0x67617262",
        ),
        (
            &["patch", "basis", "trunc", "o2"][..],
            103,
            "delta truncated",
        ),
        (
            &["patch", "basis", "oob", "o3"][..],
            106,
            "outside the basis of 400000 bytes",
        ),
        (
            &["delta", "garbage", "new", "o4"][..],
            104,
            "bad signature magic",
        ),
        (
            &["signature", "missing", "o5"][..],
            100,
            "cannot open missing",
        ),
        (
            &["signature", "basis", "new"][..],
            101,
            "new exists; use -f to overwrite",
        ),
        (
            &["signature", "-S", "99", "basis", "o6"][..],
            101,
            "bad --sum-size 99",
        ),
        (
            &["patch", "-", "new", "o7"][..],
            101,
            "basis must be a file",
        ),
    ] {
        let o = run(d, args, None);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    // No failed command left an output file or a temporary behind.
    let mut names: Vec<_> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["basis", "garbage", "new", "oob", "trunc"]);
    // Usage errors from the parser exit 1 with clap's message.
    let o = run(d, &["signature", "--format", "nope"], None);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn native_delta_detects_a_corrupted_literal() {
    let (dir, _, _) = setup();
    let d = dir.path();
    assert!(run(
        d,
        &["signature", "--format", "native", "basis", "sig"],
        None
    )
    .status
    .success());
    assert!(run(d, &["delta", "sig", "new", "delta"], None)
        .status
        .success());
    let mut delta = fs::read(d.join("delta")).unwrap();
    // Flip a byte inside the literal data (after the header and the first copy command).
    let at = delta.len() / 2;
    delta[at] ^= 1;
    fs::write(d.join("bad"), &delta).unwrap();
    let o = run(d, &["patch", "basis", "bad", "out"], None);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        !d.join("out").exists(),
        "a failed patch must not leave its output"
    );
}
