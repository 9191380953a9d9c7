//! Engine benchmarks: signature, delta and patch throughput of delta-core beside fast_rsync 0.2,
//! on the data sets of `deltasync_benches` (256 MiB unless `DELTASYNC_BENCH_MIB` says
//! otherwise).
//!
//! Groups (throughput in bytes of basis for signatures, of new file for deltas, of output for
//! patches):
//! - `signature/{rdiff-md4,rdiff,native,native-4096}` on all cores, `…-1t` on one thread, and
//!   `signature/fast_rsync` (single-threaded, MD4, same 4096-byte blocks);
//! - `delta/{a,b,c}/{native,native-4096,rdiff,rdiff-md4}` on all cores and
//!   `delta/{a,b,c}/fast_rsync` against the same MD4 signature as `rdiff-md4`;
//! - `patch/{a,c}/{native,rdiff}` and `patch/{a,c}/fast_rsync` applying the very delta that
//!   `rdiff` applies;
//! - `threads/{native,rdiff-md4}/{1,2}`: the delta of (a) on one and two threads.
//!
//! `native` uses the native block-size rule (16 KiB at 256 MiB); every other variant uses
//! 4096-byte blocks. Signatures and their indexes are built once, outside the delta timings (the
//! receiver builds the signature, the sender the index; both are measured in their own groups),
//! and only when a selected benchmark needs them, so a filter such as `-- delta/c` stays cheap.
//! For profiling, criterion's `--profile-time <s>` runs one benchmark without analysis.
//! After each delta benchmark its last output is patched and compared with the new file, so a
//! fast wrong answer cannot pass unnoticed.

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use delta_core::delta::{self, ApplyOptions, Basis, BlockIndex, DeltaOptions};
use delta_core::{Signature, SignatureFormat, SignatureOptions};
use deltasync_benches::DataSets;

const BLOCK: u32 = 4096;
const SEED: u64 = 0x5eed;

/// One of our signature variants.
#[derive(Clone, Copy)]
struct Variant {
    label: &'static str,
    format: SignatureFormat,
    block_len: Option<u32>,
}

const VARIANTS: [Variant; 4] = [
    Variant {
        label: "native",
        format: SignatureFormat::Native,
        block_len: None,
    },
    Variant {
        label: "native-4096",
        format: SignatureFormat::Native,
        block_len: Some(BLOCK),
    },
    Variant {
        label: "rdiff",
        format: SignatureFormat::Rdiff,
        block_len: Some(BLOCK),
    },
    Variant {
        label: "rdiff-md4",
        format: SignatureFormat::RdiffMd4,
        block_len: Some(BLOCK),
    },
];

impl Variant {
    fn options(self, threads: Option<usize>) -> SignatureOptions {
        SignatureOptions {
            block_len: self.block_len,
            seed: Some(SEED),
            threads,
            ..SignatureOptions::new(self.format)
        }
    }

    fn signature(self, basis: &[u8]) -> Signature {
        Signature::from_slice(basis, &self.options(None)).expect("signature")
    }

    fn find(label: &str) -> Self {
        *VARIANTS.iter().find(|v| v.label == label).expect("variant")
    }
}

fn fast_options() -> fast_rsync::SignatureOptions {
    fast_rsync::SignatureOptions {
        block_size: BLOCK,
        crypto_hash_size: 16,
    }
}

fn configure(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
}

fn data() -> &'static DataSets {
    static DATA: OnceLock<DataSets> = OnceLock::new();
    DATA.get_or_init(|| {
        let d = DataSets::from_env();
        eprintln!(
            "data sets: {} MiB; native default block length {}",
            d.len() >> 20,
            SignatureFormat::Native.default_block_len(Some(d.len() as u64))
        );
        d
    })
}

/// Patches `delta` onto the basis with our code and checks the result is case `case`'s new
/// file. An empty `delta` means the benchmark was filtered out.
fn check(what: &str, case: &str, delta: &[u8]) {
    if delta.is_empty() {
        return;
    }
    let new = new_file(case);
    let mut out = Vec::with_capacity(new.len());
    delta::apply(
        Basis::Slice(data().basis()),
        &mut &delta[..],
        &mut out,
        &ApplyOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{what}: delta does not apply: {e}"));
    assert!(
        out == new,
        "{what}: patched output differs from the new file"
    );
    eprintln!(
        "{what}: delta {} bytes ({:.3}% of new)",
        delta.len(),
        delta.len() as f64 * 100.0 / new.len() as f64
    );
}

/// Our signature and index for each variant, built on first use and shared by all groups.
fn prepared(v: Variant) -> &'static (Signature, BlockIndex) {
    static CELLS: [OnceLock<(Signature, BlockIndex)>; VARIANTS.len()] =
        [const { OnceLock::new() }; VARIANTS.len()];
    let i = VARIANTS
        .iter()
        .position(|w| w.label == v.label)
        .expect("variant");
    CELLS[i].get_or_init(|| {
        let sig = v.signature(data().basis());
        let index = BlockIndex::new(&sig);
        (sig, index)
    })
}

fn fast_signature() -> &'static fast_rsync::Signature {
    static SIG: OnceLock<fast_rsync::Signature> = OnceLock::new();
    SIG.get_or_init(|| fast_rsync::Signature::calculate(data().basis(), fast_options()))
}

/// The new file of case `a`, `b` or `c`.
fn new_file(case: &str) -> &'static [u8] {
    let d = data();
    match case {
        "a" => d.scattered(),
        "b" => d.appended(),
        _ => d.unrelated(),
    }
}

fn new_len(case: &str) -> u64 {
    let len = data().len() as u64;
    if case == "b" {
        len + len / 100
    } else {
        len
    }
}

// Setup happens inside each benchmark's closure (before `iter`, so untimed) and is cached:
// with a filter on the command line only what the selected benchmarks need is built.

fn signatures(c: &mut Criterion) {
    let len = data().len() as u64;
    let mut g = c.benchmark_group("signature");
    configure(&mut g);
    g.throughput(Throughput::Bytes(len));
    for label in ["rdiff-md4", "rdiff", "native", "native-4096"] {
        let v = Variant::find(label);
        for (suffix, threads) in [("", None), ("-1t", Some(1))] {
            let opts = v.options(threads);
            g.bench_function(format!("{label}{suffix}"), |b| {
                let basis = data().basis();
                b.iter(|| black_box(Signature::from_slice(basis, &opts).expect("signature")))
            });
        }
    }
    g.bench_function("fast_rsync", |b| {
        let basis = data().basis();
        b.iter(|| black_box(fast_rsync::Signature::calculate(basis, fast_options())))
    });
    g.finish();

    // Index building, for completeness: it is part of every delta but not of the timings below.
    let mut g = c.benchmark_group("index");
    configure(&mut g);
    g.throughput(Throughput::Bytes(len));
    for label in ["rdiff-md4", "native"] {
        g.bench_function(label, |b| {
            let sig = &prepared(Variant::find(label)).0;
            b.iter(|| black_box(BlockIndex::new(sig)))
        });
    }
    g.bench_function("fast_rsync", |b| {
        let sig = fast_signature();
        b.iter(|| black_box(sig.index()))
    });
    g.finish();
}

fn deltas(c: &mut Criterion) {
    let mut out = Vec::new();
    for case in ["a", "b", "c"] {
        let mut g = c.benchmark_group(format!("delta/{case}"));
        configure(&mut g);
        g.throughput(Throughput::Bytes(new_len(case)));
        for v in VARIANTS {
            out.clear();
            g.bench_function(v.label, |b| {
                let (sig, index) = prepared(v);
                let new = new_file(case);
                out.reserve(new.len() + new.len() / 32 + 1024);
                b.iter(|| {
                    out.clear();
                    delta::delta_slice(sig, index, new, &mut out, &DeltaOptions::default())
                        .expect("delta")
                })
            });
            check(&format!("delta/{case}/{}", v.label), case, &out);
        }
        out.clear();
        g.bench_function("fast_rsync", |b| {
            let index = fast_signature().index();
            let new = new_file(case);
            out.reserve(new.len() + new.len() / 32 + 1024);
            b.iter(|| {
                out.clear();
                fast_rsync::diff(&index, new, &mut out).expect("fast_rsync diff")
            })
        });
        check(&format!("delta/{case}/fast_rsync"), case, &out);
        g.finish();
    }
}

fn patches(c: &mut Criterion) {
    let mut out = Vec::new();
    for case in ["a", "c"] {
        // The librsync-format delta comes from the MD4 signature, so fast_rsync could have
        // made it too; patching does not depend on the signature's hashes.
        let make = |label: &str| {
            let (sig, index) = prepared(Variant::find(label));
            let mut d = Vec::new();
            delta::delta_slice(sig, index, new_file(case), &mut d, &DeltaOptions::default())
                .expect("delta");
            d
        };
        let native_delta = OnceLock::new();
        let rs_delta = OnceLock::new();
        let mut g = c.benchmark_group(format!("patch/{case}"));
        configure(&mut g);
        g.throughput(Throughput::Bytes(new_len(case)));
        for (label, delta) in [("native", &native_delta), ("rdiff", &rs_delta)] {
            out.clear();
            g.bench_function(label, |b| {
                let delta: &Vec<u8> = delta.get_or_init(|| {
                    make(if label == "native" {
                        "native"
                    } else {
                        "rdiff-md4"
                    })
                });
                let basis = data().basis();
                out.reserve(new_file(case).len());
                b.iter(|| {
                    out.clear();
                    delta::apply(
                        Basis::Slice(basis),
                        &mut &delta[..],
                        &mut out,
                        &ApplyOptions::default(),
                    )
                    .expect("apply")
                })
            });
            assert!(
                out.is_empty() || out == new_file(case),
                "patch/{case}/{label} is wrong"
            );
        }
        out.clear();
        g.bench_function("fast_rsync", |b| {
            let delta: &Vec<u8> = rs_delta.get_or_init(|| make("rdiff-md4"));
            let basis = data().basis();
            out.reserve(new_file(case).len());
            b.iter(|| {
                out.clear();
                fast_rsync::apply(basis, delta, &mut out).expect("fast_rsync apply")
            })
        });
        assert!(
            out.is_empty() || out == new_file(case),
            "patch/{case}/fast_rsync is wrong"
        );
        g.finish();
    }
}

fn threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("threads");
    configure(&mut g);
    g.throughput(Throughput::Bytes(new_len("a")));
    let mut out = Vec::new();
    for label in ["native", "rdiff-md4"] {
        for n in [1, 2] {
            let opts = DeltaOptions {
                threads: Some(n),
                ..DeltaOptions::default()
            };
            g.bench_function(format!("{label}/{n}"), |b| {
                let (sig, index) = prepared(Variant::find(label));
                let new = new_file("a");
                out.reserve(new.len() / 16);
                b.iter(|| {
                    out.clear();
                    delta::delta_slice(sig, index, new, &mut out, &opts).expect("delta")
                })
            });
        }
    }
    g.finish();
}

criterion_group!(engine, signatures, deltas, patches, threads);
criterion_main!(engine);
