//! Untrusted delta bytes: patching never panics, never writes past `max_output`, and reports
//! what it wrote. The first input byte picks the basis and a prefix, so both the librsync and
//! the native formats are reached without the fuzzer having to guess a magic; in the "forged"
//! mode a valid native header and whole-file hash are wrapped around commands that patch as a
//! librsync delta, and both patchers must then agree.

#![no_main]

use delta_core::checksum::FileHasher;
use delta_core::delta::{self, ApplyOptions, Basis};
use libfuzzer_sys::fuzz_target;

const MAX_OUTPUT: u64 = 1 << 24;
const RS_MAGIC: [u8; 4] = 0x7273_0236u32.to_be_bytes();

fn basis(kind: u8) -> Vec<u8> {
    let len = [0usize, 1, 300, 4096][usize::from(kind & 3)];
    (0..len).map(|i| (i.wrapping_mul(131) >> 3) as u8).collect()
}

fn native_header(seed: u64, len: u64) -> Vec<u8> {
    let mut h = b"DSdl\x01\0\0\0".to_vec();
    h.extend_from_slice(&seed.to_be_bytes());
    h.extend_from_slice(&len.to_be_bytes());
    h
}

fn patch(basis: &[u8], delta: &[u8]) -> Result<(Vec<u8>, delta::ApplyStats), String> {
    let mut out = Vec::new();
    let opts = ApplyOptions {
        max_output: MAX_OUTPUT,
    };
    let res = delta::apply(Basis::Slice(basis), &mut &delta[..], &mut out, &opts);
    assert!(
        out.len() as u64 <= MAX_OUTPUT,
        "wrote past the output limit"
    );
    match res {
        Ok(stats) => {
            assert_eq!(stats.output_len, out.len() as u64);
            assert_eq!(stats.copied_bytes + stats.literal_bytes, stats.output_len);
            Ok((out, stats))
        }
        Err(e) => Err(e.to_string()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let basis = basis(sel >> 2);
    let seed = u64::from(sel);
    match sel & 3 {
        // librsync magic, then the fuzzer's commands.
        0 => {
            let mut d = RS_MAGIC.to_vec();
            d.extend_from_slice(rest);
            let _ = patch(&basis, &d);
        }
        // Native header declaring a length taken from the input, then commands and a hash.
        1 => {
            let Some((len, body)) = rest.split_first_chunk::<2>() else {
                return;
            };
            let mut d = native_header(seed, u64::from(u16::from_be_bytes(*len)));
            d.extend_from_slice(body);
            if let Ok((_, stats)) = patch(&basis, &d) {
                assert!(stats.verified);
            }
        }
        // Raw bytes: any magic, any header.
        2 => {
            let _ = patch(&basis, rest);
        }
        // Forged native delta: must patch exactly as the librsync one does.
        _ => {
            let mut d = RS_MAGIC.to_vec();
            d.extend_from_slice(rest);
            let Ok((want, _)) = patch(&basis, &d) else {
                return;
            };
            let mut hasher = FileHasher::new(seed);
            hasher.update(&want);
            let mut n = native_header(seed, want.len() as u64);
            n.extend_from_slice(rest);
            n.extend_from_slice(&hasher.finish());
            let (got, stats) = patch(&basis, &n).expect("forged native delta must apply");
            assert!(stats.verified);
            assert!(got == want, "native and librsync patching disagree");
        }
    }
});
