//! Times the real `rdiff` (librsync) against delta-core on data set (a) of `deltasync_benches`:
//! the same rdiff-made signature (rdiff's default format and block length), the same files on
//! disk, both deltas checked by patching them with the other tool.
//!
//! Both sides are timed end to end: read the signature file, build the lookup, read the new file,
//! write the delta file. Each is run `RUNS` times (default 3) and the best time is kept. Files go
//! to a fresh directory under `TMPDIR`, removed at the end.
//!
//! Usage: `cargo run --release -p deltasync-benches --bin rdiff_compare`
//! (`DELTASYNC_BENCH_MIB` sets the size, default 256; `RDIFF` the binary, default `rdiff`).

use std::error::Error;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use delta_core::delta::{self, ApplyOptions, Basis, BlockIndex, DeltaOptions};
use delta_core::{Access, Signature, SignatureFormat, SignatureLimits, SignatureOptions};
use deltasync_benches::DataSets;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Removes the scratch directory however `main` ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn rdiff(args: &[&Path]) -> Result<()> {
    let bin = std::env::var("RDIFF").unwrap_or_else(|_| "rdiff".into());
    let status = Command::new(&bin).arg("--force").args(args).status()?;
    if !status.success() {
        return Err(format!("{bin} {args:?} failed: {status}").into());
    }
    Ok(())
}

/// Best of `runs` timings of `f`.
fn best(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed());
    }
    Ok(best)
}

fn gib_s(bytes: usize, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64() / (1u64 << 30) as f64
}

/// Our delta, end to end: signature file → index → new file → delta file.
fn our_delta(sig_path: &Path, new_path: &Path, out: &Path, threads: Option<usize>) -> Result<()> {
    let sig = Signature::from_bytes(&fs::read(sig_path)?, &SignatureLimits::default())?;
    let index = BlockIndex::new(&sig);
    let mut w = BufWriter::with_capacity(1 << 20, File::create(out)?);
    let opts = DeltaOptions {
        threads,
        ..DeltaOptions::default()
    };
    delta::delta_path(&sig, &index, new_path, Access::Live, &mut w, &opts)?;
    w.into_inner().map_err(|e| e.into_error())?.sync_data()?;
    Ok(())
}

fn main() -> Result<()> {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let d = DataSets::from_env();
    let (basis, new) = (d.basis(), d.scattered());
    let dir = std::env::temp_dir().join(format!("deltasync-rdiff-compare-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let scratch = Scratch(dir);
    let p = |name: &str| scratch.0.join(name);
    fs::write(p("basis"), basis)?;
    fs::write(p("new"), new)?;

    // The signature: rdiff's, checked against ours byte for byte.
    let rdiff_sig_t = best(1, || {
        rdiff(&[Path::new("signature"), &p("basis"), &p("sig")])
    })?;
    let sig_bytes = fs::read(p("sig"))?;
    let sig = Signature::from_bytes(&sig_bytes, &SignatureLimits::default())?;
    let t = Instant::now();
    let ours = Signature::from_path(
        &p("basis"),
        Access::Owned,
        &SignatureOptions::new(SignatureFormat::Rdiff),
    )?;
    let our_sig_t = t.elapsed();
    let same_sig = ours.to_bytes() == sig_bytes;

    let rdiff_t = best(runs, || {
        rdiff(&[Path::new("delta"), &p("sig"), &p("new"), &p("rdiff.delta")])
    })?;
    let ours_t = best(runs, || {
        our_delta(&p("sig"), &p("new"), &p("ours.delta"), None)
    })?;
    let ours_1t = best(runs, || {
        our_delta(&p("sig"), &p("new"), &p("ours1.delta"), Some(1))
    })?;

    // Each tool patches the other's delta.
    rdiff(&[Path::new("patch"), &p("basis"), &p("ours.delta"), &p("out")])?;
    let rdiff_patches_ours = fs::read(p("out"))? == new;
    let mut out = Vec::with_capacity(new.len());
    let rdiff_delta = fs::read(p("rdiff.delta"))?;
    delta::apply(
        Basis::Slice(basis),
        &mut &rdiff_delta[..],
        &mut out,
        &ApplyOptions::default(),
    )?;
    let we_patch_rdiff = out == new;
    let our_len = fs::metadata(p("ours.delta"))?.len();

    println!(
        "data set (a): {} MiB, {:?} signature, block length {}, strong length {}",
        new.len() >> 20,
        sig.format(),
        sig.block_len(),
        sig.strong_len()
    );
    println!(
        "signature: rdiff {:.3} s, ours (all cores) {:.3} s ({:.2} GiB/s); identical bytes: {same_sig}",
        rdiff_sig_t.as_secs_f64(),
        our_sig_t.as_secs_f64(),
        gib_s(basis.len(), our_sig_t)
    );
    println!("delta (best of {runs}):");
    for (who, t) in [
        ("rdiff delta", rdiff_t),
        ("deltasync, all cores", ours_t),
        ("deltasync, 1 thread", ours_1t),
    ] {
        println!(
            "  {who:<22} {:>8.3} s  {:>6.3} GiB/s  {:>6.3}x rdiff's time",
            t.as_secs_f64(),
            gib_s(new.len(), t),
            t.as_secs_f64() / rdiff_t.as_secs_f64()
        );
    }
    println!(
        "delta size: rdiff {} bytes, ours {our_len} bytes; rdiff patches ours: {rdiff_patches_ours}; we patch rdiff's: {we_patch_rdiff}",
        rdiff_delta.len()
    );
    if !(same_sig && rdiff_patches_ours && we_patch_rdiff) {
        return Err("interoperability check failed".into());
    }
    Ok(())
}
