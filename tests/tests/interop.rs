//! delta-core against the real peers: Debian's `rdiff` (librsync 2.3) in both of its formats,
//! and the fast_rsync crate. Formats must interoperate byte for byte where they are defined to.

use std::fs;

use delta_core::delta::{apply, delta_slice, ApplyOptions, Basis, BlockIndex, DeltaOptions};
use delta_core::{Signature, SignatureFormat, SignatureLimits, SignatureOptions};
use deltasync_tests::{data, rdiff};

/// Basis/new pairs covering the edits users make: appends, inserts, deletes, scattered
/// changes, a shift, an empty side, unrelated content.
fn cases() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let basis = data(1, 300_000);
    let mut scattered = basis.clone();
    for i in (0..scattered.len()).step_by(37_000) {
        scattered[i] ^= 0xa5;
    }
    vec![
        ("same", basis.clone(), basis.clone()),
        (
            "append",
            basis.clone(),
            [&basis[..], &data(2, 7_000)].concat(),
        ),
        (
            "insert",
            basis.clone(),
            [&basis[..100_000], &data(3, 5_000), &basis[100_000..]].concat(),
        ),
        (
            "delete",
            basis.clone(),
            [&basis[..50_000], &basis[90_001..]].concat(),
        ),
        ("scattered", basis.clone(), scattered),
        ("shift", basis.clone(), [&b"x"[..], &basis].concat()),
        ("empty-new", basis.clone(), Vec::new()),
        ("empty-basis", Vec::new(), data(4, 10_000)),
        ("unrelated", basis.clone(), data(5, 200_000)),
        ("tiny", b"hello".to_vec(), b"hello world".to_vec()),
    ]
}

const RDIFF_FORMATS: [(SignatureFormat, &[&str]); 2] = [
    (SignatureFormat::Rdiff, &[]),
    (SignatureFormat::RdiffMd4, &["-H", "md4", "-R", "rollsum"]),
];

#[test]
fn our_signatures_equal_rdiffs() {
    let dir = tempfile::tempdir().unwrap();
    for (name, basis, _) in cases() {
        fs::write(dir.path().join("basis"), &basis).unwrap();
        for (format, flags) in RDIFF_FORMATS {
            for block in [None, Some(64u32), Some(2048)] {
                let mut args: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
                if let Some(b) = block {
                    args.extend(["-b".into(), b.to_string()]);
                }
                args.extend(["-f", "signature", "basis", "rdiff.sig"].map(String::from));
                rdiff(
                    dir.path(),
                    &args.iter().map(String::as_str).collect::<Vec<_>>(),
                );
                let theirs = fs::read(dir.path().join("rdiff.sig")).unwrap();
                let opts = SignatureOptions {
                    block_len: block,
                    ..SignatureOptions::new(format)
                };
                // rdiff picks its block length from the file size, as from_path does.
                let ours = Signature::from_path(
                    &dir.path().join("basis"),
                    delta_core::Access::Live,
                    &opts,
                )
                .unwrap();
                assert!(
                    ours.to_bytes() == theirs,
                    "{name} {format:?} block {block:?}: signature differs from rdiff's"
                );
            }
        }
    }
}

#[test]
fn rdiff_patches_our_deltas_and_we_patch_rdiffs() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    for (name, basis, new) in cases() {
        fs::write(p("basis"), &basis).unwrap();
        fs::write(p("new"), &new).unwrap();
        for (format, flags) in RDIFF_FORMATS {
            let mut args: Vec<&str> = flags.to_vec();
            args.extend(["-f", "signature", "basis", "rdiff.sig"]);
            rdiff(dir.path(), &args);
            // Their signature → our delta → their patch.
            let sig = Signature::from_bytes(
                &fs::read(p("rdiff.sig")).unwrap(),
                &SignatureLimits::default(),
            )
            .unwrap();
            assert_eq!(sig.format(), format);
            let mut ours = Vec::new();
            delta_slice(
                &sig,
                &BlockIndex::new(&sig),
                &new,
                &mut ours,
                &DeltaOptions::default(),
            )
            .unwrap();
            fs::write(p("ours.delta"), &ours).unwrap();
            rdiff(dir.path(), &["-f", "patch", "basis", "ours.delta", "out"]);
            assert!(
                fs::read(p("out")).unwrap() == new,
                "{name} {format:?}: rdiff's patch of our delta is wrong"
            );
            // Their delta → our patch.
            rdiff(
                dir.path(),
                &["-f", "delta", "rdiff.sig", "new", "rdiff.delta"],
            );
            let theirs = fs::read(p("rdiff.delta")).unwrap();
            let mut out = Vec::new();
            apply(
                Basis::Slice(&basis),
                &mut &theirs[..],
                &mut out,
                &ApplyOptions::default(),
            )
            .unwrap();
            assert!(
                out == new,
                "{name} {format:?}: our patch of rdiff's delta is wrong"
            );
            // Our delta is never larger than rdiff's by more than a couple of commands.
            assert!(
                ours.len() <= theirs.len() + 16,
                "{name} {format:?}: ours {} vs rdiff {}",
                ours.len(),
                theirs.len()
            );
        }
    }
}

#[test]
fn md4_signatures_equal_fast_rsyncs_and_deltas_cross_apply() {
    for (name, basis, new) in cases() {
        for (block, hash) in [(4096u32, 16u32), (1024, 8), (333, 5)] {
            let theirs = fast_rsync::Signature::calculate(
                &basis,
                fast_rsync::SignatureOptions {
                    block_size: block,
                    crypto_hash_size: hash,
                },
            );
            let opts = SignatureOptions {
                block_len: Some(block),
                strong_len: Some(hash),
                ..SignatureOptions::new(SignatureFormat::RdiffMd4)
            };
            let ours = Signature::from_slice(&basis, &opts).unwrap();
            assert!(
                ours.to_bytes() == theirs.serialized(),
                "{name} block {block}: signature differs from fast_rsync's"
            );

            // Our delta applied by fast_rsync, and theirs by us.
            let mut our_delta = Vec::new();
            delta_slice(
                &ours,
                &BlockIndex::new(&ours),
                &new,
                &mut our_delta,
                &DeltaOptions::default(),
            )
            .unwrap();
            let mut out = Vec::new();
            fast_rsync::apply(&basis, &our_delta, &mut out).unwrap();
            assert!(out == new, "{name}: fast_rsync cannot apply our delta");
            let mut their_delta = Vec::new();
            fast_rsync::diff(&theirs.index(), &new, &mut their_delta).unwrap();
            let mut out = Vec::new();
            apply(
                Basis::Slice(&basis),
                &mut &their_delta[..],
                &mut out,
                &ApplyOptions::default(),
            )
            .unwrap();
            assert!(out == new, "{name}: we cannot apply fast_rsync's delta");
        }
    }
}

#[test]
fn corrupt_deltas_from_rdiff_give_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let basis = data(9, 50_000);
    let new = [&basis[..20_000], &data(10, 3000), &basis[20_000..]].concat();
    fs::write(p("basis"), &basis).unwrap();
    fs::write(p("new"), &new).unwrap();
    rdiff(dir.path(), &["signature", "basis", "sig"]);
    rdiff(dir.path(), &["delta", "sig", "new", "delta"]);
    let delta = fs::read(p("delta")).unwrap();
    // Every truncation is an error, never a panic or a silently short file.
    for cut in 0..delta.len() {
        let r = apply(
            Basis::Slice(&basis),
            &mut &delta[..cut],
            &mut Vec::new(),
            &ApplyOptions::default(),
        );
        assert!(r.is_err(), "truncation at {cut} accepted");
    }
    // Every single-byte corruption either errors or yields output of bounded size.
    for i in 0..delta.len().min(400) {
        let mut bad = delta.clone();
        bad[i] ^= 0xff;
        let mut out = Vec::new();
        let _ = apply(
            Basis::Slice(&basis),
            &mut &bad[..],
            &mut out,
            &ApplyOptions {
                max_output: 1 << 20,
            },
        );
        assert!(out.len() <= 1 << 20);
    }
}
