//! MD4 (RFC 1320), the strong block hash of librsync's legacy signature format.
//!
//! MD4 is broken as a cryptographic hash; it is here only so that `rdiff -H md4` signatures
//! and fast_rsync's can be read and written. This is the scalar reference; the multi-lane
//! version that hashes many blocks at once lives in [`super::simd`].

/// Digest length in bytes.
pub const MD4_LEN: usize = 16;

/// The initial state of MD4.
pub(crate) const MD4_INIT: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// MD4 of `data`.
pub fn md4(data: &[u8]) -> [u8; MD4_LEN] {
    let mut state = MD4_INIT;
    let mut chunks = data.chunks_exact(64);
    for chunk in &mut chunks {
        compress(&mut state, chunk.try_into().expect("64-byte chunk"));
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 128];
    tail[..rest.len()].copy_from_slice(rest);
    tail[rest.len()] = 0x80;
    let tail_len = if rest.len() < 56 { 64 } else { 128 };
    let bits = (data.len() as u64).wrapping_mul(8);
    tail[tail_len - 8..tail_len].copy_from_slice(&bits.to_le_bytes());
    for chunk in tail[..tail_len].chunks_exact(64) {
        compress(&mut state, chunk.try_into().expect("64-byte chunk"));
    }
    let mut out = [0u8; MD4_LEN];
    for (o, s) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&s.to_le_bytes());
    }
    out
}

/// One MD4 compression of a 64-byte chunk into `state`.
pub(crate) fn compress(state: &mut [u32; 4], chunk: &[u8; 64]) {
    let mut x = [0u32; 16];
    for (w, c) in x.iter_mut().zip(chunk.chunks_exact(4)) {
        *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    let [mut a, mut b, mut c, mut d] = *state;
    let f = |x: u32, y: u32, z: u32| (x & y) | (!x & z);
    let g = |x: u32, y: u32, z: u32| (x & y) | (x & z) | (y & z);
    let h = |x: u32, y: u32, z: u32| x ^ y ^ z;
    for &i in &[0usize, 4, 8, 12] {
        a = a.wrapping_add(f(b, c, d)).wrapping_add(x[i]).rotate_left(3);
        d = d
            .wrapping_add(f(a, b, c))
            .wrapping_add(x[i + 1])
            .rotate_left(7);
        c = c
            .wrapping_add(f(d, a, b))
            .wrapping_add(x[i + 2])
            .rotate_left(11);
        b = b
            .wrapping_add(f(c, d, a))
            .wrapping_add(x[i + 3])
            .rotate_left(19);
    }
    const K2: u32 = 0x5a82_7999;
    for &i in &[0usize, 1, 2, 3] {
        a = a
            .wrapping_add(g(b, c, d))
            .wrapping_add(x[i])
            .wrapping_add(K2)
            .rotate_left(3);
        d = d
            .wrapping_add(g(a, b, c))
            .wrapping_add(x[i + 4])
            .wrapping_add(K2)
            .rotate_left(5);
        c = c
            .wrapping_add(g(d, a, b))
            .wrapping_add(x[i + 8])
            .wrapping_add(K2)
            .rotate_left(9);
        b = b
            .wrapping_add(g(c, d, a))
            .wrapping_add(x[i + 12])
            .wrapping_add(K2)
            .rotate_left(13);
    }
    const K3: u32 = 0x6ed9_eba1;
    for &i in &[0usize, 2, 1, 3] {
        a = a
            .wrapping_add(h(b, c, d))
            .wrapping_add(x[i])
            .wrapping_add(K3)
            .rotate_left(3);
        d = d
            .wrapping_add(h(a, b, c))
            .wrapping_add(x[i + 8])
            .wrapping_add(K3)
            .rotate_left(9);
        c = c
            .wrapping_add(h(d, a, b))
            .wrapping_add(x[i + 4])
            .wrapping_add(K3)
            .rotate_left(11);
        b = b
            .wrapping_add(h(c, d, a))
            .wrapping_add(x[i + 12])
            .wrapping_add(K3)
            .rotate_left(15);
    }
    state[0] = state[0].wrapping_add(a);
    state[1] = state[1].wrapping_add(b);
    state[2] = state[2].wrapping_add(c);
    state[3] = state[3].wrapping_add(d);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: [u8; 16]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn rfc1320_vectors() {
        assert_eq!(hex(md4(b"")), "31d6cfe0d16ae931b73c59d7e0c089c0");
        assert_eq!(hex(md4(b"a")), "bde52cb31de33e46245e05fbdbd6fb24");
        assert_eq!(hex(md4(b"abc")), "a448017aaf21d8525fc10ae87aa6729d");
        assert_eq!(
            hex(md4(b"message digest")),
            "d9130a8164549fe818874806e1c7014b"
        );
        assert_eq!(
            hex(md4(
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"
            )),
            "e33b4ddc9c38f2199c3e7b164fcc0536"
        );
    }

    #[test]
    fn matches_rustcrypto_at_every_length() {
        use md4::Digest;
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in 0..data.len() {
            let want: [u8; 16] = md4::Md4::digest(&data[..n]).into();
            assert_eq!(md4(&data[..n]), want, "length {n}");
        }
    }
}
