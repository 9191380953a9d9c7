//! One tester for every code path: each input pair goes through all three formats, several
//! block and segment lengths, one and several threads, in-memory, file (positioned reads),
//! mapped and stream inputs, and slice and file bases. Every path must rebuild the new file
//! exactly, and the delta must not depend on the thread count or the input path.

use std::io::Write;

use proptest::prelude::*;

use super::*;
use crate::input::Access;
use crate::signature::{SignatureFormat, SignatureOptions};

const FORMATS: [SignatureFormat; 3] = [
    SignatureFormat::Rdiff,
    SignatureFormat::RdiffMd4,
    SignatureFormat::Native,
];

fn temp_with(data: &[u8]) -> tempfile::NamedTempFile {
    let mut t = tempfile::NamedTempFile::new().unwrap();
    t.write_all(data).unwrap();
    t
}

/// Runs every path; returns the delta length of the default path per format.
pub(crate) fn check_all_paths(
    basis: &[u8],
    new: &[u8],
    block_len: Option<u32>,
    segment_len: usize,
) -> Vec<u64> {
    let basis_file = temp_with(basis);
    let new_file = temp_with(new);
    let mut sizes = Vec::new();
    for format in FORMATS {
        let sig_opts = SignatureOptions {
            block_len,
            seed: Some(42),
            ..SignatureOptions::new(format)
        };
        let sig = Signature::from_slice(basis, &sig_opts).unwrap();
        // The signature read back from its bytes behaves like the original.
        let sig = Signature::from_bytes(&sig.to_bytes(), &Default::default()).unwrap();
        let index = BlockIndex::new(&sig);
        let mut reference: Option<Vec<u8>> = None;
        for threads in [1, 3] {
            let opts = DeltaOptions {
                threads: Some(threads),
                segment_len,
                // Small and unaligned, so copies are split and the writer flushed often.
                checkpoint_len: 1000,
                ..DeltaOptions::default()
            };
            let mut deltas = Vec::new();
            let mut d = Vec::new();
            delta_slice(&sig, &index, new, &mut d, &opts).unwrap();
            deltas.push(("slice", d));
            for access in [Access::Live, Access::Owned] {
                let mut d = Vec::new();
                delta_path(&sig, &index, new_file.path(), access, &mut d, &opts).unwrap();
                deltas.push(("file", d));
            }
            // A reused buffer, longer than the file and holding another file's bytes.
            let live = crate::input::InputFile::open(new_file.path(), Access::Live).unwrap();
            let mut stale = vec![0xAB; new.len() + 4099];
            let mut d = Vec::new();
            delta_file_reusing(&sig, &index, &live, &mut d, &opts, &mut stale).unwrap();
            deltas.push(("file, reused buffer", d));
            if !format.is_native() {
                let mut d = Vec::new();
                delta_reader(&sig, &index, &mut &new[..], &mut d, &opts).unwrap();
                deltas.push(("reader", d));
            }
            for (path, d) in &deltas {
                let want = reference.get_or_insert_with(|| d.clone());
                assert_eq!(
                    d, want,
                    "{format:?} threads={threads} path={path}: delta differs"
                );
            }
        }
        let delta = reference.unwrap();
        sizes.push(delta.len() as u64);
        let basis_in = crate::input::InputFile::open(basis_file.path(), Access::Live).unwrap();
        for b in [Basis::Slice(basis), Basis::File(&basis_in)] {
            let mut out = Vec::new();
            let st = apply(b, &mut &delta[..], &mut out, &ApplyOptions::default()).unwrap();
            assert!(
                out == new,
                "{format:?}: patch result differs ({} vs {} bytes)",
                out.len(),
                new.len()
            );
            assert_eq!(st.verified, format.is_native());
        }
    }
    sizes
}

fn data(seed: u32, n: usize) -> Vec<u8> {
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

/// How the new file is made from the basis.
#[derive(Debug, Clone)]
enum Edit {
    Same,
    Empty,
    OneByte,
    Unrelated,
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Overwrite(usize, Vec<u8>),
    Shift(usize),
    Repeat(usize),
    Append(Vec<u8>),
    Truncate(usize),
}

fn apply_edit(basis: &[u8], e: &Edit) -> Vec<u8> {
    let n = basis.len();
    let at = |p: usize| if n == 0 { 0 } else { p % (n + 1) };
    match e {
        Edit::Same => basis.to_vec(),
        Edit::Empty => Vec::new(),
        Edit::OneByte => vec![7],
        Edit::Unrelated => data(99, n + 13),
        Edit::Insert(p, v) => [&basis[..at(*p)], v, &basis[at(*p)..]].concat(),
        Edit::Delete(p, l) => {
            let s = at(*p);
            let e = (s + l).min(n);
            [&basis[..s], &basis[e..]].concat()
        }
        Edit::Overwrite(p, v) => {
            let mut b = basis.to_vec();
            let s = at(*p);
            for (i, x) in v.iter().enumerate() {
                if s + i < n {
                    b[s + i] = *x;
                }
            }
            b
        }
        Edit::Shift(k) => [&data(5, *k % 300)[..], basis].concat(),
        Edit::Repeat(k) => basis.repeat(1 + k % 3),
        Edit::Append(v) => [basis, v].concat(),
        Edit::Truncate(p) => basis[..at(*p)].to_vec(),
    }
}

fn edit() -> impl Strategy<Value = Edit> {
    let bytes = proptest::collection::vec(any::<u8>(), 1..600);
    prop_oneof![
        Just(Edit::Same),
        Just(Edit::Empty),
        Just(Edit::OneByte),
        Just(Edit::Unrelated),
        (any::<usize>(), bytes.clone()).prop_map(|(p, v)| Edit::Insert(p, v)),
        (any::<usize>(), 1..3000usize).prop_map(|(p, l)| Edit::Delete(p, l)),
        (any::<usize>(), bytes.clone()).prop_map(|(p, v)| Edit::Overwrite(p, v)),
        any::<usize>().prop_map(Edit::Shift),
        any::<usize>().prop_map(Edit::Repeat),
        bytes.prop_map(Edit::Append),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn patch_of_delta_rebuilds_new(
        seed in any::<u32>(),
        len in prop_oneof![Just(0usize), 1..64usize, 64..20_000usize],
        edits in proptest::collection::vec(edit(), 1..3),
        block_len in prop_oneof![Just(None), (1u32..700).prop_map(Some), Just(Some(256)), Just(Some(1024))],
        segment_len in prop_oneof![Just(1usize), 1000..5000usize, Just(16 << 20)],
    ) {
        let basis = data(seed, len);
        let mut new = basis.clone();
        for e in &edits {
            new = apply_edit(&new, e);
        }
        check_all_paths(&basis, &new, block_len, segment_len);
    }
}

#[test]
fn block_aligned_and_edge_cases() {
    let basis = data(1, 8192);
    for new in [
        basis.clone(),
        basis[1024..].to_vec(),
        [&basis[..4096], &basis[..4096]].concat(),
        basis[..4095].to_vec(),
        vec![],
        vec![0],
    ] {
        check_all_paths(&basis, &new, Some(1024), 4096);
        check_all_paths(&[], &new, Some(1024), 4096);
    }
}

#[test]
fn segmented_delta_stays_close_to_unsegmented() {
    // 1% of 1 KiB blocks changed, and a shifted copy: segments of 4 blocks must not lose more
    // than a few blocks in total compared with a single range over the whole file.
    let basis = data(3, 512 << 10);
    let mut new = basis.clone();
    for i in (0..new.len()).step_by(100 << 10) {
        new[i + 17] ^= 0x55;
    }
    new.splice(200_000..200_000, data(8, 333));
    for format in FORMATS {
        let sig = Signature::from_slice(
            &basis,
            &SignatureOptions {
                block_len: Some(1024),
                seed: Some(1),
                ..SignatureOptions::new(format)
            },
        )
        .unwrap();
        let index = BlockIndex::new(&sig);
        let len = |segment_len| {
            let mut d = Vec::new();
            delta_slice(
                &sig,
                &index,
                &new,
                &mut d,
                &DeltaOptions {
                    segment_len,
                    threads: Some(2),
                    ..Default::default()
                },
            )
            .unwrap()
            .literal_bytes
        };
        let (whole, split) = (len(usize::MAX / 2), len(4096));
        assert!(
            split <= whole + 3 * 1024,
            "{format:?}: segmented {split} vs whole {whole}"
        );
    }
}

#[test]
fn native_multi_segment_file_hash() {
    // Larger than two 8 MiB hash segments, so ranges hash separately and are combined.
    let basis = data(4, 17 << 20);
    let mut new = basis.clone();
    new[9 << 20] ^= 1;
    new.extend_from_slice(b"tail");
    let sizes = check_all_paths(&basis, &new, None, 8 << 20);
    assert!(sizes[2] < 300 << 10, "native delta too big: {}", sizes[2]);
}

#[test]
fn truncated_live_source_is_an_error_not_a_crash() {
    let basis = data(1, 100_000);
    let t = temp_with(&basis);
    let input = crate::input::InputFile::open(t.path(), Access::Live).unwrap();
    t.as_file().set_len(50_000).unwrap();
    let sig =
        Signature::from_slice(&basis, &SignatureOptions::new(SignatureFormat::Native)).unwrap();
    let err = delta_file(
        &sig,
        &BlockIndex::new(&sig),
        &input,
        &mut Vec::new(),
        &DeltaOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            crate::DeltaError::SourceTruncated {
                expected: 100_000,
                got: 50_000
            }
        ),
        "{err}"
    );
}
