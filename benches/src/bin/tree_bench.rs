//! The tree benchmark: the guides' workflow, deltasync and rsync side by side.
//!
//! Generates realistic trees (a MailStore-like archive of large `.dat` content files, `index*`
//! files and `.fdb` databases; a Maildir of many small messages; Docker-volume-like trees with
//! owners, symlinks and hard links), then for each runs the guides' passes with both tools on
//! their own destination: an initial copy, live changes, a second copy, more live changes, and
//! a final sync with deletions (`deltasync copy|sync` against `rsync -aH --numeric-ids
//! [--delete]`), plus a pass with nothing changed. After every pass both destinations are
//! checked equal to the source (content, modes, owners, mtimes, link targets, hard-link
//! groups). Prints per-pass wall times, peak memory and the ratio deltasync / rsync.
//!
//! Usage: `cargo run --release -p deltasync-benches --bin tree_bench -- [--scale S] [--work DIR]
//! [--only mailstore,maildir,docker,million]` with S = small | medium | large. `million` builds
//! 1,000,000 entries and measures a copy and a no-change pass with their peak memory.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
    /// Text-like bytes (compressible, like mail).
    fn text(&mut self, n: usize) -> Vec<u8> {
        const WORDS: [&str; 12] = [
            "the ",
            "mail ",
            "archive ",
            "Received: ",
            "from ",
            "server ",
            "To: ",
            "subject ",
            "\r\n",
            "data ",
            "quarterly ",
            "report ",
        ];
        let mut v = Vec::with_capacity(n + 16);
        while v.len() < n {
            v.extend_from_slice(WORDS[self.below(12) as usize].as_bytes());
        }
        v.truncate(n);
        v
    }
}

#[derive(Clone, Copy)]
struct Scale {
    stores: usize,
    dat_mib: usize,
    fdb_mib: usize,
    messages: usize,
    volumes: usize,
    volume_files: usize,
}

fn scale(name: &str) -> Scale {
    match name {
        "small" => Scale {
            stores: 2,
            dat_mib: 16,
            fdb_mib: 8,
            messages: 5_000,
            volumes: 2,
            volume_files: 500,
        },
        "large" => Scale {
            stores: 8,
            dat_mib: 128,
            fdb_mib: 64,
            messages: 300_000,
            volumes: 6,
            volume_files: 5_000,
        },
        _ => Scale {
            stores: 4,
            dat_mib: 64,
            fdb_mib: 32,
            messages: 60_000,
            volumes: 4,
            volume_files: 2_000,
        },
    }
}

fn write(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, data).unwrap();
}

fn set_mtime(path: &Path, secs_ago: u64) {
    let t = SystemTime::now() - Duration::from_secs(secs_ago);
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(t))
        .unwrap();
}

/// MailStore-like: per storage folder, content `.dat` files, `index*` files, one `.fdb`.
fn gen_mailstore(root: &Path, s: Scale, rng: &mut Rng) {
    for i in 0..s.stores {
        let dir = root.join(format!(
            "MailArchive/Archive {:04}-{:02}",
            2020 + i / 12,
            1 + i % 12
        ));
        for c in 0..3 {
            let p = dir.join(format!("Content{c}.dat"));
            write(&p, &rng.bytes(s.dat_mib << 20));
            set_mtime(&p, 86_400 * (30 + i as u64));
        }
        for x in 0..4 {
            write(&dir.join(format!("index{x}.dat")), &rng.bytes(2 << 20));
        }
        write(&dir.join("Recovery Records/rr.dat"), &rng.text(256 << 10));
        write(&dir.join("MailStore.fdb"), &rng.bytes(s.fdb_mib << 20));
    }
    write(
        &root.join("MailArchive/MailStoreMaster.fdb"),
        &rng.bytes(s.fdb_mib << 20),
    );
}

/// A live MailStore: the newest content file grows, databases change a few pages, indexes are
/// rewritten, a new content file appears.
fn live_mailstore(root: &Path, s: Scale, rng: &mut Rng, round: usize) {
    let last = root.join(format!(
        "MailArchive/Archive {:04}-{:02}",
        2020 + (s.stores - 1) / 12,
        1 + (s.stores - 1) % 12
    ));
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(last.join("Content2.dat"))
        .unwrap();
    f.write_all(&rng.bytes(4 << 20)).unwrap();
    for fdb in [
        last.join("MailStore.fdb"),
        root.join("MailArchive/MailStoreMaster.fdb"),
    ] {
        let f = fs::OpenOptions::new().write(true).open(&fdb).unwrap();
        let pages = (s.fdb_mib << 20) / 4096;
        for _ in 0..pages / 100 {
            use std::os::unix::fs::FileExt;
            f.write_all_at(&rng.bytes(4096), rng.below(pages as u64) * 4096)
                .unwrap();
        }
    }
    write(&last.join("index0.dat"), &rng.bytes(2 << 20));
    write(
        &last.join(format!("Content{}.dat", 3 + round)),
        &rng.bytes(8 << 20),
    );
}

/// Maildir: users × folders × {cur,new,tmp} with small messages.
fn gen_maildir(root: &Path, s: Scale, rng: &mut Rng) {
    let users = (s.messages / 1000).max(1);
    for n in 0..s.messages {
        let u = n % users;
        let folder = ["", ".Sent", ".Archive", ".Trash"][n % 4];
        let sub = if n % 10 == 0 { "new" } else { "cur" };
        let name = format!(
            "{}.M{}P{}.mail,S={}:2,S",
            1_600_000_000 + n,
            n,
            u,
            2000 + n % 7000
        );
        let p =
            root.join(format!("vmail/user{u:04}/Maildir/{folder}/{sub}/{name}").replace("//", "/"));
        let len = 1500 + rng.below(6000) as usize;
        write(&p, &rng.text(len));
    }
}

/// A live Maildir: new mail arrives, some moves from new/ to cur/ with a flag rename, some is
/// deleted.
fn live_maildir(root: &Path, s: Scale, rng: &mut Rng, round: usize) {
    let users = (s.messages / 1000).max(1);
    for k in 0..s.messages / 100 {
        let u = rng.below(users as u64);
        let p = root.join(format!(
            "vmail/user{u:04}/Maildir/new/{}.R{round}K{k}.mail",
            1_700_000_000 + k
        ));
        write(&p, &rng.text(3000));
    }
    let mut moved = 0;
    for u in 0..users.min(20) {
        let new = root.join(format!("vmail/user{u:04}/Maildir/new"));
        let Ok(rd) = fs::read_dir(&new) else { continue };
        for e in rd.take(3) {
            let e = e.unwrap();
            let to = root.join(format!(
                "vmail/user{u:04}/Maildir/cur/{}:2,RS",
                e.file_name().to_string_lossy()
            ));
            // The live service moving a message: a plain rename, not our atomic replacement.
            #[allow(clippy::disallowed_methods)]
            let renamed = fs::rename(e.path(), to);
            if renamed.is_ok() {
                moved += 1;
            }
        }
        let cur = root.join(format!("vmail/user{u:04}/Maildir/.Trash/cur"));
        if let Ok(rd) = fs::read_dir(&cur) {
            for e in rd.take(2) {
                let _ = fs::remove_file(e.unwrap().path());
            }
        }
    }
    let _ = moved;
}

/// Docker volumes: files with owners and modes, symlinks, hard links, empty directories.
fn gen_docker(root: &Path, s: Scale, rng: &mut Rng) {
    for v in 0..s.volumes {
        let vol = root.join(format!("volumes/vol{v}/_data"));
        for n in 0..s.volume_files {
            let p = vol.join(format!("d{}/f{n}.bin", n % 37));
            let len = rng.below(64 << 10) as usize;
            write(&p, &rng.bytes(len));
            let uid = 1000 + (n % 5) as u32 * 997;
            std::os::unix::fs::chown(&p, Some(uid), Some(uid + 1)).unwrap();
            fs::set_permissions(
                &p,
                fs::Permissions::from_mode(0o600 | ((n as u32 % 3) << 3)),
            )
            .unwrap();
            if n.is_multiple_of(50) {
                std::os::unix::fs::symlink(
                    format!("f{n}.bin"),
                    vol.join(format!("d{}/link{n}", n % 37)),
                )
                .unwrap();
                fs::hard_link(&p, vol.join(format!("d{}/hard{n}", n % 37))).unwrap();
            }
        }
        fs::create_dir_all(vol.join("empty/dir")).unwrap();
    }
}

fn live_docker(root: &Path, s: Scale, rng: &mut Rng, round: usize) {
    for v in 0..s.volumes {
        let vol = root.join(format!("volumes/vol{v}/_data"));
        for k in 0..s.volume_files / 50 {
            let n = rng.below(s.volume_files as u64) as usize;
            let p = vol.join(format!("d{}/f{n}.bin", n % 37));
            if k % 3 == 0 {
                let _ = std::os::unix::fs::chown(&p, Some(4242), Some(4243));
            } else {
                let len = rng.below(64 << 10) as usize;
                write(&p, &rng.bytes(len));
            }
        }
        write(&vol.join(format!("new{round}.log")), &rng.text(10_000));
    }
}

/// A full description of a tree, for equality checks.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut groups: HashMap<(u64, u64), Vec<String>> = HashMap::new();
    for e in delta_core::scan::WalkBuilder::new(root).build() {
        let e = e.unwrap();
        let path = String::from_utf8_lossy(e.path()).into_owned();
        let m = fs::symlink_metadata(root.join(&path)).unwrap();
        let content = if m.is_file() {
            let mut h = delta_core::checksum::FileHasher::new(0);
            let mut f = fs::File::open(root.join(&path)).unwrap();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = std::io::Read::read(&mut f, &mut buf).unwrap();
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            format!("{:02x?}", &h.finish()[..6])
        } else if m.file_type().is_symlink() {
            fs::read_link(root.join(&path))
                .unwrap()
                .display()
                .to_string()
        } else {
            String::new()
        };
        if m.is_file() && m.nlink() > 1 {
            groups
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(path.clone());
        }
        let mtime = if path.is_empty() {
            0
        } else {
            m.mtime() * 1_000_000_000 + m.mtime_nsec()
        };
        out.push(format!(
            "{path} {:o} {}:{} {} {mtime} {content}",
            m.mode(),
            m.uid(),
            m.gid(),
            if m.is_dir() { 0 } else { m.size() }
        ));
    }
    let mut g: Vec<_> = groups
        .into_values()
        .map(|mut v| {
            v.sort();
            format!("link-group {}", v.join(" "))
        })
        .collect();
    g.sort();
    out.extend(g);
    out
}

/// `b` equals `a` (after a sync), or holds everything `a` does (after a copy, which keeps
/// what the source deleted; directory times then legitimately differ too).
fn same_tree(a: &Path, b: &Path, exact: bool) -> Result<(), String> {
    let (la, lb) = (listing(a), listing(b));
    if la == lb {
        return Ok(());
    }
    if !exact {
        let is_file = |l: &String| {
            !l.starts_with("link-group") && !l.contains(" 40755 ") && !l.contains(" 40700 ")
        };
        let missing: Vec<_> = la
            .iter()
            .filter(|x| is_file(x) && !lb.contains(x))
            .take(3)
            .cloned()
            .collect();
        return if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("{} lacks {}", b.display(), missing.join(" | ")))
        };
    }
    let diff: Vec<_> = la
        .iter()
        .filter(|x| !lb.contains(x))
        .take(3)
        .chain(lb.iter().filter(|x| !la.contains(x)).take(3))
        .cloned()
        .collect();
    Err(format!(
        "{} vs {} differ: {}",
        a.display(),
        b.display(),
        diff.join(" | ")
    ))
}

/// Runs a command under GNU time; returns wall time, peak RSS (KiB) and exit code. (Measuring
/// with `wait4` here would count the pages this process shares with the forked child before
/// it execs.)
fn timed(cmd: &Command) -> (Duration, u64, i32) {
    let rss_file = std::env::temp_dir().join(format!("tree-bench-rss-{}", std::process::id()));
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let t = Instant::now();
    let status = wrapped
        .stdout(std::process::Stdio::null())
        .status()
        .expect("GNU time (apt-get install time)");
    let elapsed = t.elapsed();
    let rss = fs::read_to_string(&rss_file)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    (elapsed, rss, status.code().unwrap_or(-1))
}

/// Reads every file of a tree once so both tools start from a warm page cache, and flushes
/// pending writes.
fn warm(root: &Path) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "find '{}' -type f -exec cat {{}} + > /dev/null",
            root.display()
        ))
        .status();
    // Write back dirty pages (the generator's, the previous pass's) so no run pays for them.
    let _ = Command::new("sync").status();
}

struct Row {
    scenario: &'static str,
    pass: String,
    ds: (Duration, u64),
    ds_inplace: (Duration, u64),
    rs: (Duration, u64),
    target: f64,
}

/// One pass with rsync and with deltasync twice: default (temporary + rename) and `--inplace`
/// (changed blocks rewritten in place, for destinations not yet in service, as in a migration).
#[allow(clippy::too_many_arguments)]
fn pass(
    rows: &mut Vec<Row>,
    scenario: &'static str,
    name: &str,
    target: f64,
    deltasync: &Path,
    src: &Path,
    dsts: [&Path; 3],
    sync: bool,
) {
    let [ds_dst, ip_dst, rs_dst] = dsts;
    let run_ds = |dst: &Path, inplace: bool| {
        warm(src);
        let mut ds = Command::new(deltasync);
        ds.arg(if sync { "sync" } else { "copy" })
            .arg(src)
            .arg(dst)
            .arg("--force-delete");
        if inplace {
            ds.arg("--inplace");
        }
        timed(&ds)
    };
    let (dt, dm, dc) = run_ds(ds_dst, false);
    let (it, im, ic) = run_ds(ip_dst, true);
    warm(src);
    let mut rs = Command::new("rsync");
    rs.args(["-aH", "--numeric-ids"]);
    if sync {
        rs.arg("--delete");
    }
    rs.arg(format!("{}/", src.display()))
        .arg(format!("{}/", rs_dst.display()));
    let (rt, rm, rc) = timed(&rs);
    for (tool, code, dst) in [
        ("deltasync", dc, ds_dst),
        ("deltasync --inplace", ic, ip_dst),
        ("rsync", rc, rs_dst),
    ] {
        if code != 0 {
            eprintln!("warning: {tool} exited {code} on {scenario} {name}");
        }
        if let Err(e) = same_tree(src, dst, sync) {
            eprintln!("MISMATCH after {scenario} {name} ({tool}): {e}");
        }
    }
    println!(
        "  {scenario:9} {name:26} deltasync {:8.3}s (inplace {:8.3}s)  rsync {:8.3}s  ratio {:.2} (inplace {:.2})",
        dt.as_secs_f64(),
        it.as_secs_f64(),
        rt.as_secs_f64(),
        dt.as_secs_f64() / rt.as_secs_f64(),
        it.as_secs_f64() / rt.as_secs_f64()
    );
    rows.push(Row {
        scenario,
        pass: name.into(),
        ds: (dt, dm),
        ds_inplace: (it, im),
        rs: (rt, rm),
        target,
    });
}

type Gen = fn(&Path, Scale, &mut Rng);
type Live = fn(&Path, Scale, &mut Rng, usize);

fn workflow(
    rows: &mut Vec<Row>,
    work: &Path,
    deltasync: &Path,
    scenario: &'static str,
    s: Scale,
    gen: Gen,
    live: Live,
) {
    let src = work.join(format!("{scenario}-src"));
    let dsts = [
        work.join(format!("{scenario}-ds")),
        work.join(format!("{scenario}-ip")),
        work.join(format!("{scenario}-rs")),
    ];
    let d = [dsts[0].as_path(), dsts[1].as_path(), dsts[2].as_path()];
    for p in std::iter::once(&src).chain(&dsts) {
        let _ = fs::remove_dir_all(p);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ scenario.len() as u64);
    let t = Instant::now();
    gen(&src, s, &mut rng);
    eprintln!("generated {scenario} in {:.1}s", t.elapsed().as_secs_f64());
    pass(
        rows,
        scenario,
        "1 initial copy",
        0.7,
        deltasync,
        &src,
        d,
        false,
    );
    live(&src, s, &mut rng, 1);
    pass(
        rows,
        scenario,
        "2 copy after changes",
        0.7,
        deltasync,
        &src,
        d,
        false,
    );
    live(&src, s, &mut rng, 2);
    pass(
        rows,
        scenario,
        "3 final sync (downtime)",
        0.5,
        deltasync,
        &src,
        d,
        true,
    );
    pass(
        rows,
        scenario,
        "4 no-change sync",
        0.5,
        deltasync,
        &src,
        d,
        true,
    );
    for p in std::iter::once(&src).chain(&dsts) {
        let _ = fs::remove_dir_all(p);
    }
}

/// 1,000,000 entries (empty files in a Maildir layout): copy and no-change pass, peak memory.
fn million(rows: &mut Vec<Row>, work: &Path, deltasync: &Path) {
    let src = work.join("million-src");
    let dsts = [
        work.join("million-ds"),
        work.join("million-ip"),
        work.join("million-rs"),
    ];
    let d = [dsts[0].as_path(), dsts[1].as_path(), dsts[2].as_path()];
    for p in std::iter::once(&src).chain(&dsts) {
        let _ = fs::remove_dir_all(p);
    }
    let t = Instant::now();
    for dir_no in 0..1000 {
        let dir = src.join(format!("u{dir_no:03}/cur"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..998 {
            fs::File::create(dir.join(format!("{f}.M{dir_no}:2,S"))).unwrap();
        }
    }
    eprintln!("generated 1M entries in {:.1}s", t.elapsed().as_secs_f64());
    pass(
        rows,
        "million",
        "1 initial copy",
        0.7,
        deltasync,
        &src,
        d,
        false,
    );
    pass(
        rows,
        "million",
        "2 no-change sync",
        0.5,
        deltasync,
        &src,
        d,
        true,
    );
    for p in std::iter::once(&src).chain(&dsts) {
        let _ = fs::remove_dir_all(p);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let scale_name = opt("--scale").unwrap_or_else(|| "medium".into());
    let s = scale(&scale_name);
    let work = PathBuf::from(opt("--work").unwrap_or_else(|| "/tmp/deltasync-tree-bench".into()));
    let only = opt("--only").unwrap_or_else(|| "mailstore,maildir,docker".into());
    let deltasync = PathBuf::from(opt("--deltasync").unwrap_or_else(|| {
        let exe = std::env::current_exe().unwrap();
        exe.parent()
            .unwrap()
            .join("deltasync")
            .display()
            .to_string()
    }));
    assert!(
        deltasync.is_file(),
        "build deltasync first: cargo build --release -p delta-cli ({})",
        deltasync.display()
    );
    fs::create_dir_all(&work).unwrap();
    println!(
        "tree benchmark, scale {scale_name}, {} cores, work dir {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        work.display()
    );
    let mut rows = Vec::new();
    for scenario in only.split(',') {
        match scenario {
            "mailstore" => workflow(
                &mut rows,
                &work,
                &deltasync,
                "mailstore",
                s,
                gen_mailstore,
                live_mailstore,
            ),
            "maildir" => workflow(
                &mut rows,
                &work,
                &deltasync,
                "maildir",
                s,
                gen_maildir,
                live_maildir,
            ),
            "docker" => workflow(
                &mut rows,
                &work,
                &deltasync,
                "docker",
                s,
                gen_docker,
                live_docker,
            ),
            "million" => million(&mut rows, &work, &deltasync),
            other => eprintln!("unknown scenario {other}"),
        }
    }
    println!();
    println!("| scenario | pass | deltasync | deltasync --inplace | rsync -aH | ratio | ratio --inplace | target | peak RSS deltasync / rsync |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let ratio = r.ds.0.as_secs_f64() / r.rs.0.as_secs_f64();
        let ratio_ip = r.ds_inplace.0.as_secs_f64() / r.rs.0.as_secs_f64();
        let mark = |x: f64| if x <= r.target { "✓" } else { "✗" };
        println!(
            "| {} | {} | {:.3} s | {:.3} s | {:.3} s | {:.2} {} | {:.2} {} | ≤ {} | {} / {} MiB |",
            r.scenario,
            r.pass,
            r.ds.0.as_secs_f64(),
            r.ds_inplace.0.as_secs_f64(),
            r.rs.0.as_secs_f64(),
            ratio,
            mark(ratio),
            ratio_ip,
            mark(ratio_ip),
            r.target,
            r.ds.1.max(r.ds_inplace.1) / 1024,
            r.rs.1 / 1024
        );
    }
}
