//! Untrusted signature bytes: parsing never panics and never allocates beyond the limits; what
//! parses re-serialises to the bytes it came from and parses back equal; a hostile signature
//! (inconsistent basis length, repeated sums, odd block lengths) can drive a delta without
//! panicking.

#![no_main]

use delta_core::delta::{self, BlockIndex, DeltaOptions};
use delta_core::{Signature, SignatureLimits};
use libfuzzer_sys::fuzz_target;

const LIMITS: SignatureLimits = SignatureLimits {
    max_blocks: 1 << 12,
};

fuzz_target!(|data: &[u8]| {
    let Ok(sig) = Signature::from_bytes(data, &LIMITS) else {
        return;
    };
    assert!(sig.block_count() as u64 <= LIMITS.max_blocks);
    let bytes = sig.to_bytes();
    // Native signatures stop after the declared count, so trailing input is ignored; librsync
    // signatures run to the end of input.
    assert!(
        data.starts_with(&bytes),
        "re-serialised bytes differ from the input"
    );
    if !sig.format().is_native() {
        assert_eq!(bytes.len(), data.len());
    }
    let back = Signature::from_bytes(&bytes, &LIMITS).expect("re-parse");
    assert_eq!(back, sig);

    // The index and the match loop accept whatever parsed. Huge blocks only slow the fuzzer.
    if sig.block_len() <= 1 << 16 {
        let index = BlockIndex::new(&sig);
        let mut out = Vec::new();
        let opts = DeltaOptions {
            threads: Some(1),
            segment_len: 0,
            ..DeltaOptions::default()
        };
        // The signature's own bytes make a new file whose blocks the fuzzer controls.
        let stats = delta::delta_slice(&sig, &index, data, &mut out, &opts).expect("delta");
        assert_eq!(stats.new_len, data.len() as u64);
        assert_eq!(stats.literal_bytes + stats.copied_bytes, stats.new_len);
        assert_eq!(stats.delta_len, out.len() as u64);
    }
});
