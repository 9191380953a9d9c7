//! patch(delta(signature(basis), new)) == new, for every format, any block length, small
//! segments (so the parallel stitching is exercised), slice and stream inputs.
//!
//! Input layout: `[format, block_len_hi, block_len_lo, flags, split_hi, split_lo, rest…]`.
//! The basis is the first `split` bytes of `rest`. The new file is either the remaining bytes
//! as they are, or (flag bit 0) built by an edit script read from them: a byte below 0x80 copies
//! `basis[off..off + len]` (offset and length in the next three bytes), a byte `b` from 0x80
//! inserts the next `b - 0x7f` bytes. Edit scripts make new files that share many blocks with the
//! basis, at shifted offsets, which random bytes almost never do.

#![no_main]

use delta_core::delta::{self, ApplyOptions, Basis, BlockIndex, DeltaOptions};
use delta_core::{Signature, SignatureFormat, SignatureLimits, SignatureOptions};
use libfuzzer_sys::fuzz_target;

const MAX_OUTPUT: u64 = 1 << 24;
/// Edit scripts stop growing the new file here, to keep executions fast.
const MAX_NEW: usize = 1 << 18;

fn edit_script(basis: &[u8], mut script: &[u8]) -> Vec<u8> {
    let mut new = Vec::new();
    while let Some((&op, rest)) = script.split_first() {
        if new.len() > MAX_NEW {
            break;
        }
        script = rest;
        if op < 0x80 {
            let Some((p, rest)) = script.split_first_chunk::<3>() else {
                break;
            };
            script = rest;
            if basis.is_empty() {
                continue;
            }
            let off = (usize::from(op) << 8 | usize::from(p[0])) % basis.len();
            let len = (usize::from(p[1]) << 8 | usize::from(p[2])).min(basis.len() - off);
            // Repeat the copy a few times when the script asks for it (low bits of `op`), so
            // long runs of matching blocks appear.
            for _ in 0..=(op & 3) {
                new.extend_from_slice(&basis[off..off + len]);
            }
        } else {
            let n = usize::from(op - 0x7f).min(script.len());
            new.extend_from_slice(&script[..n]);
            script = &script[n..];
        }
    }
    new
}

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<6>() else {
        return;
    };
    let format = match head[0] % 3 {
        0 => SignatureFormat::Rdiff,
        1 => SignatureFormat::RdiffMd4,
        _ => SignatureFormat::Native,
    };
    let block_len = match head[0] / 3 % 4 {
        // The format's own rule.
        0 => None,
        _ => Some(1 + u32::from(u16::from_be_bytes([head[1], head[2]])) % 2048),
    };
    let flags = head[3];
    let split = usize::from(u16::from_be_bytes([head[4], head[5]])).min(rest.len());
    let (basis, tail) = rest.split_at(split);
    let new = if flags & 1 != 0 {
        edit_script(basis, tail)
    } else {
        tail.to_vec()
    };
    let strong_len = (flags & 2 != 0).then_some(1 + u32::from(flags >> 4));

    let opts = SignatureOptions {
        block_len,
        strong_len: strong_len.map(|s| s.min(format.strong().max_len() as u32)),
        seed: Some(u64::from(head[1])),
        threads: None,
        ..SignatureOptions::new(format)
    };
    let sig = Signature::from_slice(basis, &opts).expect("signature");
    // What the sender sees is the signature read back from its bytes.
    let sig = Signature::from_bytes(&sig.to_bytes(), &SignatureLimits::default()).expect("parse");
    let index = BlockIndex::new(&sig);
    // The global pool: a pool per call would cost more than the work on these small inputs.
    let dopts = DeltaOptions {
        threads: None,
        // 0 means "as small as allowed": four blocks per segment, many boundaries.
        segment_len: if flags & 4 != 0 { 0 } else { 64 << 10 },
        max_candidates: if flags & 8 != 0 { 1 } else { 64 },
        // Checkpoints split copies: every 997, 1994 or 2991 bytes, or the default, per head[1].
        checkpoint_len: match head[1] % 4 {
            0 => DeltaOptions::default().checkpoint_len,
            n => u64::from(n) * 997,
        },
    };
    let mut d = Vec::new();
    let stats = delta::delta_slice(&sig, &index, &new, &mut d, &dopts).expect("delta");
    assert_eq!(stats.new_len, new.len() as u64);
    assert_eq!(stats.literal_bytes + stats.copied_bytes, stats.new_len);
    assert_eq!(stats.delta_len, d.len() as u64);

    if !format.is_native() {
        // The stream path reads in batches with carried overshoot; its delta must be the same.
        let mut d2 = Vec::new();
        delta::delta_reader(&sig, &index, &mut &new[..], &mut d2, &dopts).expect("delta");
        assert!(d2 == d, "stream and slice deltas differ");
    }

    let mut out = Vec::new();
    let applied = delta::apply(
        Basis::Slice(basis),
        &mut &d[..],
        &mut out,
        &ApplyOptions {
            max_output: MAX_OUTPUT,
        },
    )
    .expect("our own delta must apply");
    assert!(out == new, "patched output differs from the new file");
    assert_eq!(applied.verified, format.is_native());
});
