//! A live source and an interrupted pass:
//! - a writer appends to, rewrites, replaces and truncates files while `copy` runs; the pass
//!   ends with 0, 23 or 24, every destination file is a version the writer produced (or
//!   absent), and a pass after the writer stops brings everything in line;
//! - `kill -9` in the middle of a `sync` leaves only old or new versions at the target names,
//!   and the rerun completes and removes the temporaries.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::{assert_same, bin, code, data, ds_ok, hash, stderr, Scratch, Tree};

const LIVE: [&str; 4] = ["live/a.fdb", "live/b.fdb", "live/c/index.dat", "live/d.log"];

/// Every version of each live file, as content hashes.
type Versions = Arc<Mutex<HashMap<String, HashSet<u64>>>>;

/// Changes the live files until `stop`, one operation at a time, recording each version:
/// append a page, rewrite a page in the middle, replace the whole file (a new file renamed
/// over it, as editors and databases do), truncate to half.
///
/// Each operation is one system call that the kernel applies page-atomically, so every state
/// a reader can see is a recorded version. A rewrite through `O_TRUNC` and a long `write`
/// would not do: a writer preempted half-way leaves a half-written file whose size and mtime
/// then hold still, which no copier can tell from a finished one (this suite saw it happen
/// under load), so the test would be flaky rather than right.
fn writer(
    src: Tree,
    spare: std::path::PathBuf,
    versions: Versions,
    stop: Arc<AtomicBool>,
    seed: u32,
) -> u32 {
    let mut contents: Vec<Vec<u8>> = LIVE.iter().map(|p| src.read(p)).collect();
    let mut ops = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let k = ops as usize % LIVE.len();
        let path = src.path(LIVE[k]);
        let c = &mut contents[k];
        let v = seed.wrapping_mul(1000).wrapping_add(ops);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        match (ops / LIVE.len() as u32) % 4 {
            0 => {
                let more = data(v, 4096);
                f.write_all_at(&more, c.len() as u64).unwrap();
                c.extend_from_slice(&more);
            }
            1 if c.len() > 100_000 => {
                let at = c.len() / 2 / 4096 * 4096;
                let patch = data(v, 4096);
                f.write_all_at(&patch, at as u64).unwrap();
                c[at..at + 4096].copy_from_slice(&patch);
            }
            2 => {
                drop(f);
                *c = data(v, (3 << 20) + (v as usize % 7) * 100_000);
                std::fs::write(&spare, &*c).unwrap();
                #[allow(clippy::disallowed_methods)] // the user's program, not a destination
                std::fs::rename(&spare, &path).unwrap();
            }
            _ => {
                let half = c.len() / 2;
                f.set_len(half as u64).unwrap();
                c.truncate(half);
            }
        }
        versions
            .lock()
            .unwrap()
            .entry(LIVE[k].to_string())
            .or_default()
            .insert(hash(c));
        ops += 1;
        std::thread::sleep(Duration::from_millis(3));
    }
    ops
}

#[test]
fn a_live_source_never_leaves_a_corrupt_file() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    let dst = Tree::existing(sc.path("dst"));
    let versions: Versions = Arc::default();
    for (i, p) in LIVE.iter().enumerate() {
        let c = data(i as u32 + 1, 4 << 20);
        src.file(p, &c);
        versions
            .lock()
            .unwrap()
            .entry(p.to_string())
            .or_default()
            .insert(hash(&c));
    }
    for i in 0..20 {
        src.file(&format!("stable/{i}"), data(100 + i, 20_000));
    }
    let mut codes = Vec::new();
    let mut total_ops = 0;
    let mut present = 0;
    for round in 0..4u32 {
        let stop = Arc::new(AtomicBool::new(false));
        let w = {
            let (src, versions, stop) = (src.clone(), versions.clone(), stop.clone());
            let spare = sc.path("writer-spare");
            std::thread::spawn(move || writer(src, spare, versions, stop, round))
        };
        std::thread::sleep(Duration::from_millis(5));
        let args = [
            "copy",
            "--retries",
            "1",
            "--retry-wait",
            "10ms",
            "--no-whole-file",
            src.arg(),
            dst.arg(),
        ];
        let args: Vec<&str> = if round % 2 == 0 {
            args.to_vec()
        } else {
            args.iter()
                .filter(|a| **a != "--no-whole-file")
                .copied()
                .collect()
        };
        let o = crate::util::ds(&args);
        stop.store(true, Ordering::Relaxed);
        total_ops += w.join().unwrap();
        let c = code(&o);
        assert!(
            [0, 23, 24].contains(&c),
            "round {round}: exit {c}: {}",
            stderr(&o)
        );
        if c == 23 {
            assert!(
                stderr(&o).contains("kept changing"),
                "round {round}: {}",
                stderr(&o)
            );
        }
        codes.push(c);
        // Every destination file is a complete version, or absent.
        let v = versions.lock().unwrap();
        for p in LIVE {
            if dst.exists(p) {
                present += 1;
                let h = hash(&dst.read(p));
                assert!(
                    v[p].contains(&h),
                    "round {round}: {p} at the destination ({} bytes) is no version the writer produced",
                    dst.read(p).len()
                );
            }
        }
        for i in 0..20 {
            assert_eq!(dst.read(&format!("stable/{i}")), data(100 + i, 20_000));
        }
    }
    assert!(
        total_ops > 8,
        "the writer hardly ran ({total_ops} operations)"
    );
    assert!(
        present > 0,
        "no live file was ever copied while the writer ran: nothing checked"
    );
    // The writer has stopped: the next pass brings everything in line.
    ds_ok(&["copy", src.arg(), dst.arg()], 0);
    ds_ok(&["check", src.arg(), dst.arg()], 0);
    ds_ok(&["check", "--checksum", src.arg(), dst.arg()], 0);
    assert_same(&src.list(), &dst.list(), "after a quiet pass");
    eprintln!(
        "live source: exit codes {codes:?}, {total_ops} writer operations, {present} live files checked"
    );
}

fn temporaries(t: &Tree) -> Vec<String> {
    t.list()
        .paths()
        .into_iter()
        .filter(|p| p.rsplit('/').next().unwrap().contains(".dstmp."))
        .collect()
}

#[test]
fn kill_9_mid_pass_leaves_old_or_new_files_and_the_rerun_completes() {
    const N: u32 = 16;
    const SIZE: usize = 6 << 20;
    let sc = Scratch::new();
    let src = sc.tree("src");
    let dst = Tree::existing(sc.path("dst"));
    // The destination holds old versions of the even files; the source has new versions of
    // all of them (other sizes), so the pass both replaces and creates.
    let name = |i: u32| format!("d{}/f{i:02}.dat", i % 3);
    let mut old = HashMap::new();
    let mut new = HashMap::new();
    for i in (0..N).step_by(2) {
        let c = data(1000 + i, SIZE);
        src.file(&name(i), &c);
        old.insert(name(i), hash(&c));
    }
    ds_ok(&["sync", src.arg(), dst.arg()], 0);
    for i in 0..N {
        let c = data(2000 + i, SIZE + 4096 * i as usize);
        src.file(&name(i), &c);
        new.insert(name(i), hash(&c));
    }
    let mut child = Command::new(bin())
        .args(["sync", "--transfers", "2", src.arg(), dst.arg()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the first new file is in place (or a temporary appears).
    let started = Instant::now();
    let killed = loop {
        // Cheap: names only. A temporary, or an odd (new) file at its target name.
        let progressed = (0..3).any(|d| {
            std::fs::read_dir(dst.path(&format!("d{d}")))
                .map(|rd| {
                    rd.filter_map(Result::ok).any(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        n.contains(".dstmp.") || (!old.contains_key(&format!("d{d}/{n}")))
                    })
                })
                .unwrap_or(false)
        });
        if progressed {
            child.kill().unwrap();
            break true;
        }
        if child.try_wait().unwrap().is_some() || started.elapsed() > Duration::from_secs(20) {
            break false;
        }
        std::thread::sleep(Duration::from_micros(500));
    };
    let status = child.wait().unwrap();
    assert!(
        killed,
        "the pass ended ({status}) before it could be interrupted"
    );
    let after = dst.list();
    let mut done = 0;
    for i in 0..N {
        let p = name(i);
        match after.items.get(&p) {
            None => assert!(!old.contains_key(&p), "{p}: the old version disappeared"),
            Some(item) => {
                assert!(
                    Some(&item.hash) == old.get(&p) || Some(&item.hash) == new.get(&p),
                    "{p}: neither the old nor the new version ({} bytes)",
                    item.size
                );
                done += usize::from(Some(&item.hash) == new.get(&p));
            }
        }
    }
    assert!(
        done < N as usize,
        "killed after the pass had finished every file"
    );
    eprintln!(
        "interrupted with {done} of {N} files done, {} temporaries left",
        temporaries(&dst).len()
    );
    ds_ok(&["sync", src.arg(), dst.arg()], 0);
    assert_same(&src.list(), &dst.list(), "after the rerun");
    assert!(
        temporaries(&dst).is_empty(),
        "temporaries left: {:?}",
        temporaries(&dst)
    );
}

#[test]
fn stray_temporaries_are_removed_before_directory_times_are_set() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    let dst = sc.tree("dst");
    src.file("sub/f", "f")
        .mtime("sub", 1_500_000_000, 1)
        .mtime(".", 1_500_000_000, 2);
    // What an interrupted pass leaves: a temporary beside its target.
    dst.file("sub/.f.dstmp.0123abcd", "partial")
        .file(".g.dstmp.89abcdef", "partial");
    let o = ds_ok(&["copy", src.arg(), dst.arg()], 0);
    assert!(
        stderr(&o).contains("removed 2 temporary file(s)"),
        "{}",
        stderr(&o)
    );
    assert_same(&src.list(), &dst.list(), "after a pass that removed strays");
}
