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
//! [--only mailstore,maildir,docker,million] [--ssh | --legs local,push,pull] [--rsync-z]
//! [--no-count] [--timeout SECONDS] [--repeat N] [--deltasync PATH]` with S = small | medium |
//! large. `million` builds 1,000,000 entries and measures a copy and a no-change pass with
//! their peak memory.
//!
//! `--repeat N` runs every tool N times on every pass, each time from the same starting tree
//! (each destination is copied aside with `cp -a` before the pass and put back before every
//! repetition; the three tools take turns going first, deltasync in the first repetition, so
//! that its one run that logs in is also its one run that goes first), and shows the run of
//! median time: on a shared machine a single run of a short pass moves 0.1–0.2 of a ratio
//! either way.
//!
//! # Over SSH
//!
//! `--ssh` (the same as `--legs push`) runs the workflows over SSH to 127.0.0.1 instead of
//! between local trees; `--legs` picks any of `local`, `push` (source local, destination
//! `127.0.0.1:DST`: what the guides do, run on the old server and push to the new one) and
//! `pull` (source `127.0.0.1:SRC`). The runner starts its own OpenSSH server
//! (`sshd -D -e -f CONFIG` on a free port, fresh ed25519 host and user keys, config and log in
//! `WORK/ssh`) and kills it at the end, also when it panics; sshd also ends when the runner is
//! killed (parent-death signal). Both tools use the same remote
//! shell, `ssh_count ssh -p PORT -i KEY -o StrictHostKeyChecking=no ...`: deltasync as
//! `deltasync copy|sync SRC 127.0.0.1:DST -e RSH --remote-bin BIN`, rsync as
//! `rsync -aH --numeric-ids [--delete] -e RSH SRC/ 127.0.0.1:DST/` (`--rsync-z` adds `-z`).
//! `ssh_count` (a bench binary beside this one) relays the ssh pipe and records the bytes each
//! way; the table shows, per pass, both tools' times and their ratio, the bytes that crossed
//! the pipe (sent + received, before ssh's encryption) and their ratio, and the number of
//! direction changes on the pipe. deltasync's passes after its first reach the far deltasync
//! it kept (`delta_core::transport::kept`) through a forward on the kept ssh login, which the
//! relay does not see: for those, the bytes are the ones deltasync's JSON report counted on
//! its connection (where both counts exist they agree, the relay's being larger by the helper
//! that keeps the far server; a warning says otherwise), and the turns show as 0. The relay
//! costs a tool some time (about 10 % on a tree of small files), so it costs rsync on every
//! pass and deltasync on its first only: `--no-count` leaves it out for both and shows times
//! only, the fair comparison of times. Targets: time ≤ 0.7× rsync's for the
//! copies, ≤ 0.5× for the final and the no-change syncs; bytes ≤ 1.0× rsync's. Peak memory is
//! not shown there: the far side's processes are not children of the runner. On a shared
//! machine the disk's writeback dominates the file-creating passes and varies several-fold
//! between runs; `--work /dev/shm/NAME` (about 5 GiB at medium scale) takes it out and leaves
//! the protocols and ssh.
//!
//! A run that takes more than 20× rsync's time on the same pass (and at least `--timeout`
//! seconds, default 60) is declared hung: it is killed with the far-side processes of our
//! sshd, and the table says `hung`. Before rsync's first run of a pass, the limit is four
//! times `--timeout`.
//!
//! deltasync is copied into `WORK` first (the shared target directory may be rebuilt during a
//! run), and that copy is both the local and the far binary.

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

/// Runs a command under GNU time, its standard output into `out` (or nowhere); returns wall
/// time, peak RSS (KiB) and exit code, or `None` if it ran past `timeout`: then it is killed
/// with everything it started, and `on_timeout` runs first (to kill what it started
/// elsewhere, such as a far side that hangs too). (Measuring with `wait4` here would count the
/// pages this process shares with the forked child before it execs.)
fn timed(
    cmd: &Command,
    out: Option<&Path>,
    timeout: Duration,
    on_timeout: &dyn Fn(),
) -> Option<(Duration, u64, i32)> {
    let rss_file = std::env::temp_dir().join(format!("tree-bench-rss-{}", std::process::id()));
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            wrapped.env(k, v);
        }
    }
    let t = Instant::now();
    let stdout = match out {
        Some(p) => std::process::Stdio::from(fs::File::create(p).expect("the output file")),
        None => std::process::Stdio::null(),
    };
    let mut child = wrapped
        .stdout(stdout)
        .spawn()
        .expect("GNU time (apt-get install time)");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(timeout) {
        Ok(status) => status.expect("wait for the timed command"),
        Err(_) => {
            on_timeout();
            kill_descendants(pid);
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            let _ = rx.recv();
            return None;
        }
    };
    let elapsed = t.elapsed();
    let rss = fs::read_to_string(&rss_file)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    Some((elapsed, rss, status.code().unwrap_or(-1)))
}

/// Kills every process descended from `ancestor` (by id, children first): the sessions of our
/// own sshd, whose far-side processes would otherwise outlive a killed client.
fn kill_descendants(ancestor: u32) {
    let mut parent = HashMap::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces, so split after the last ')'.
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent.insert(pid, ppid);
        }
    }
    let descends = |mut p: u32| {
        while let Some(&pp) = parent.get(&p) {
            if pp == ancestor {
                return true;
            }
            if pp <= 1 {
                return false;
            }
            p = pp;
        }
        false
    };
    let mut victims: Vec<u32> = parent.keys().copied().filter(|&p| descends(p)).collect();
    victims.sort_unstable_by(|a, b| b.cmp(a));
    for pid in victims {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status();
    }
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

/// Where the tools run: both trees local, or one of them reached over SSH to 127.0.0.1.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Leg {
    Local,
    /// Source local, destination `127.0.0.1:DST` (the guides: run on the old server, push).
    Push,
    /// Source `127.0.0.1:SRC`, destination local.
    Pull,
}

impl Leg {
    fn name(self) -> &'static str {
        match self {
            Leg::Local => "local",
            Leg::Push => "push",
            Leg::Pull => "pull",
        }
    }
}

/// A throwaway OpenSSH server on 127.0.0.1 with fresh host and user keys, killed on drop
/// (also when the benchmark panics).
struct Sshd {
    child: std::process::Child,
    port: u16,
    key: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(path.with_extension("pub"));
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path),
        "ssh-keygen (apt-get install openssh-client)",
    );
}

/// Runs a helper command to completion; panics with its error output if it fails.
fn run_ok(cmd: &mut Command, what: &str) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        o.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A port nobody listens on now (the kernel's choice; sshd binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1")
}

/// Starts `sshd -D -e -f CONFIG` on a free port, its keys and log under `work/ssh`, and waits
/// for its banner.
fn start_sshd(work: &Path) -> Sshd {
    let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("sshd (apt-get install openssh-server)");
    // Privilege separation needs this directory.
    let _ = fs::create_dir_all("/run/sshd");
    let dir = work.join("ssh");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    keygen(&dir.join("host"));
    keygen(&dir.join("user"));
    fs::copy(dir.join("user.pub"), dir.join("authorized_keys")).unwrap();
    fs::set_permissions(
        dir.join("authorized_keys"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    for _ in 0..10 {
        let port = free_port();
        let config = dir.join("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin yes\n\
                 StrictModes no\nUsePAM no\nPidFile none\nLogLevel ERROR\n",
                dir.join("host").display(),
                dir.join("authorized_keys").display()
            ),
        )
        .unwrap();
        let log = fs::File::create(dir.join("sshd.log")).unwrap();
        let mut cmd = Command::new(&sshd);
        cmd.arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .stderr(log);
        // sshd ends with this process however it ends (also killed by a signal, when Drop
        // does not run): the kernel sends it SIGTERM when its parent goes.
        let parent = std::process::id();
        // SAFETY: runs in the child between fork and exec; prctl and getppid are
        // async-signal-safe and touch no memory of ours.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have gone before prctl took effect.
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::other("tree_bench ended"));
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("start sshd");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let mut banner = [0u8; 4];
                if std::io::Read::read_exact(&mut c, &mut banner).is_ok() && &banner == b"SSH-" {
                    return Sshd {
                        child,
                        port,
                        key: dir.join("user"),
                    };
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!(
        "could not start sshd on 127.0.0.1 (see {})",
        dir.join("sshd.log").display()
    );
}

/// Bytes that crossed the ssh pipe in one run, as `ssh_count` saw them.
#[derive(Clone, Copy, Default)]
struct Wire {
    sent: u64,
    received: u64,
    turns: u64,
}

impl Wire {
    fn total(self) -> u64 {
        self.sent + self.received
    }
    /// The bytes deltasync's JSON report says its session sent and received (no turns: the
    /// relay alone sees them).
    fn reported(path: &Path) -> Option<Wire> {
        let text = fs::read_to_string(path).ok()?;
        let field = |name: &str| -> Option<u64> {
            let at = text.find(&format!("\"{name}\": "))? + name.len() + 4;
            let digits: String = text[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        };
        let w = Wire {
            sent: field("wire_sent")?,
            received: field("wire_received")?,
            turns: 0,
        };
        (w.total() > 0).then_some(w)
    }

    /// Sums the lines `ssh_count` appended (one per ssh connection).
    fn read(path: &Path) -> Option<Wire> {
        let text = fs::read_to_string(path).ok()?;
        let mut w = Wire::default();
        for line in text.lines() {
            let f: Vec<u64> = line
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            w.sent += f.first().copied().unwrap_or(0);
            w.received += f.get(1).copied().unwrap_or(0);
            w.turns += f.get(4).copied().unwrap_or(0);
        }
        Some(w)
    }
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", b / (1u64 << 30) as f64)
    } else if b >= (1u64 << 20) as f64 {
        format!("{:.2} MiB", b / (1u64 << 20) as f64)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// What every pass needs: the binaries, the leg, the SSH server when there is one.
struct Bench<'a> {
    deltasync: &'a Path,
    work: &'a Path,
    leg: Leg,
    /// The remote shell for `-e`: `ssh_count ssh -p PORT -i KEY ...`.
    rsh: Option<String>,
    /// Whether `rsh` goes through `ssh_count` (not with `--no-count`).
    count: bool,
    /// Our sshd's process id: its sessions are killed when a run times out.
    sshd_pid: Option<u32>,
    rsync_z: bool,
    /// The least time a run may take before it is declared hung (see [`Bench::timeout`]).
    min_timeout: Duration,
    /// Runs of each tool per pass, each from the same starting tree; the median is shown.
    repeat: usize,
}

/// The three tools of a pass.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    Deltasync,
    DeltasyncInplace,
    Rsync,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Deltasync => "deltasync",
            Tool::DeltasyncInplace => "deltasync --inplace",
            Tool::Rsync => "rsync",
        }
    }
}

struct Run {
    time: Duration,
    rss: u64,
    code: i32,
    wire: Option<Wire>,
    /// Killed after running this long without finishing.
    hung: bool,
}

impl Bench<'_> {
    /// The operands for this leg: local paths, or `127.0.0.1:PATH` on the far side.
    fn operands(&self, src: &Path, dst: &Path, slash: &str) -> (String, String) {
        let (s, d) = (
            format!("{}{slash}", src.display()),
            format!("{}{slash}", dst.display()),
        );
        match self.leg {
            Leg::Local => (s, d),
            Leg::Push => (s, format!("127.0.0.1:{d}")),
            Leg::Pull => (format!("127.0.0.1:{s}"), d),
        }
    }

    /// How long a run may take: 20× rsync's time on the same pass, at least `min_timeout`.
    fn timeout(&self, rsync: Option<&Run>) -> Duration {
        rsync.map_or(self.min_timeout * 4, |r| {
            (r.time * 20).max(self.min_timeout)
        })
    }

    fn run(&self, tool: Tool, src: &Path, dst: &Path, sync: bool, timeout: Duration) -> Run {
        warm(src);
        let cmd = match tool {
            Tool::Deltasync | Tool::DeltasyncInplace => {
                let (from, to) = self.operands(src, dst, "");
                let mut ds = Command::new(self.deltasync);
                ds.arg(if sync { "sync" } else { "copy" })
                    .arg(from)
                    .arg(to)
                    .arg("--force-delete");
                if matches!(tool, Tool::DeltasyncInplace) {
                    ds.arg("--inplace");
                }
                if let Some(rsh) = &self.rsh {
                    // The JSON report carries the bytes the session itself counted: a pass
                    // through the kept far server does not pass the relay.
                    ds.arg("-e")
                        .arg(rsh)
                        .arg("--remote-bin")
                        .arg(self.deltasync)
                        .arg("--json");
                }
                ds
            }
            Tool::Rsync => {
                let (from, to) = self.operands(src, dst, "/");
                let mut rs = Command::new("rsync");
                rs.args(["-aH", "--numeric-ids"]);
                if sync {
                    rs.arg("--delete");
                }
                if self.rsync_z {
                    rs.arg("-z");
                }
                if let Some(rsh) = &self.rsh {
                    rs.arg("-e").arg(rsh);
                }
                rs.arg(from).arg(to);
                rs
            }
        };
        let count_file = self.work.join("wire.count");
        let _ = fs::remove_file(&count_file);
        let mut cmd = cmd;
        if self.rsh.is_some() && self.count {
            cmd.env("SSH_COUNT_FILE", &count_file);
        }
        let kill_far = || {
            if let Some(pid) = self.sshd_pid {
                kill_descendants(pid);
            }
        };
        let report = self.work.join("report.json");
        let _ = fs::remove_file(&report);
        let out = (self.rsh.is_some() && tool != Tool::Rsync).then_some(report.as_path());
        let Some((time, rss, code)) = timed(&cmd, out, timeout, &kill_far) else {
            eprintln!(
                "HUNG: {} ran past {:.0} s; killed",
                tool.name(),
                timeout.as_secs_f64()
            );
            return Run {
                time: timeout,
                rss: 0,
                code: -1,
                wire: Wire::read(&count_file),
                hung: true,
            };
        };
        let wire = self.rsh.as_ref().filter(|_| self.count).map(|_| {
            let relayed = Wire::read(&count_file);
            let reported = out.and_then(Wire::reported);
            match (relayed, reported) {
                (Some(r), Some(own)) => {
                    // Both: the relay also carried the helper that keeps a far server.
                    if r.total() < own.total() || r.total() > own.total() + (64 << 10) {
                        eprintln!(
                            "warning: {} counted {} bytes on the wire, the relay {}",
                            tool.name(),
                            own.total(),
                            r.total()
                        );
                    }
                    r
                }
                (Some(r), None) => r,
                (None, Some(own)) => own,
                (None, None) => {
                    eprintln!("warning: no byte counts for {}", tool.name());
                    Wire::default()
                }
            }
        });
        Run {
            time,
            rss,
            code,
            wire,
            hung: false,
        }
    }
}

struct Row {
    leg: Leg,
    scenario: &'static str,
    pass: String,
    /// deltasync, deltasync --inplace, rsync.
    runs: [Run; 3],
    target: f64,
}

/// One pass with rsync and with deltasync twice: default (temporary + rename) and `--inplace`
/// (changed blocks rewritten in place, for destinations not yet in service, as in a migration).
#[allow(clippy::too_many_arguments)]
fn pass(
    rows: &mut Vec<Row>,
    b: &Bench,
    scenario: &'static str,
    name: &str,
    target: f64,
    src: &Path,
    dsts: [&Path; 3],
    sync: bool,
) {
    let tools = [Tool::Deltasync, Tool::DeltasyncInplace, Tool::Rsync];
    // With repetitions, each destination is kept as it was before the pass and put back
    // before every repetition, so all runs of a tool do the same work.
    let before: Vec<PathBuf> = if b.repeat > 1 {
        dsts.iter().map(|d| snapshot(d)).collect()
    } else {
        Vec::new()
    };
    let mut all: [Vec<Run>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let mut limit = None;
    for rep in 0..b.repeat {
        // With repetitions every one starts from a restore, the first too: each begins with
        // the same memory just freed and written again, which on a VM decides what fresh
        // pages cost the tool that runs first.
        if b.repeat > 1 {
            for (d, snap) in dsts.iter().zip(&before) {
                restore(snap, d);
            }
        }
        // Each tool goes first once in three repetitions. deltasync goes first in the first:
        // its very first run of the benchmark logs in (later ones reuse that login), and
        // both handicaps then fall on one run, which the median of three leaves out. Until
        // rsync has run, a hang is declared only after the default timeout.
        let order = [[0, 1, 2], [1, 2, 0], [2, 0, 1]][rep % 3];
        for i in order {
            let timeout = limit.unwrap_or_else(|| b.timeout(None));
            let run = b.run(tools[i], src, dsts[i], sync, timeout);
            if i == 2 && limit.is_none() {
                limit = Some(b.timeout(Some(&run)));
            }
            if run.code != 0 {
                eprintln!(
                    "warning: {} exited {} on {scenario} {name}",
                    tools[i].name(),
                    run.code
                );
            }
            if let Err(e) = same_tree(src, dsts[i], sync) {
                eprintln!(
                    "MISMATCH after {scenario} {name} ({}): {e}",
                    tools[i].name()
                );
            }
            all[i].push(run);
        }
    }
    for snap in before {
        let _ = fs::remove_dir_all(snap);
    }
    let runs = all.map(median);
    let [ds, ip, rs] = &runs;
    let secs = |r: &Run| r.time.as_secs_f64();
    print!(
        "  {:5} {scenario:9} {name:26} deltasync {:8.3}s (inplace {:8.3}s)  rsync {:8.3}s  ratio {:.2} (inplace {:.2})",
        b.leg.name(),
        secs(ds),
        secs(ip),
        secs(rs),
        secs(ds) / secs(rs),
        secs(ip) / secs(rs)
    );
    if let (Some(d), Some(i), Some(r)) = (ds.wire, ip.wire, rs.wire) {
        print!(
            "  wire sent/received/turns: deltasync {}/{}/{} inplace {}/{}/{} rsync {}/{}/{}",
            d.sent, d.received, d.turns, i.sent, i.received, i.turns, r.sent, r.received, r.turns
        );
    }
    println!();
    rows.push(Row {
        leg: b.leg,
        scenario,
        pass: name.into(),
        runs,
        target,
    });
}

/// Lets the clock move past the second of the latest source change. rsync decides whether to
/// set a new entry's time by comparing whole seconds, so a symlink it creates within the same
/// second as its source keeps its creation time's nanoseconds, and the exact check fails.
fn settle() {
    std::thread::sleep(Duration::from_millis(1100));
}

/// The run of median time (the later of the two middle ones for an even count).
fn median(mut runs: Vec<Run>) -> Run {
    runs.sort_by_key(|r| r.time);
    let mid = runs.len() / 2;
    runs.swap_remove(mid)
}

/// Copies `dst` (if it exists) beside itself as it is now, with `cp -a` (owners, modes,
/// nanosecond times, links and hard links kept); returns where.
fn snapshot(dst: &Path) -> PathBuf {
    let mut name = dst.as_os_str().to_owned();
    name.push(".before");
    let snap = PathBuf::from(name);
    let _ = fs::remove_dir_all(&snap);
    if dst.exists() {
        cp_a(dst, &snap);
    }
    snap
}

/// Puts `dst` back as [`snapshot`] found it (absent if it was absent).
fn restore(snap: &Path, dst: &Path) {
    let _ = fs::remove_dir_all(dst);
    if snap.exists() {
        cp_a(snap, dst);
    }
}

fn cp_a(from: &Path, to: &Path) {
    run_ok(
        Command::new("cp").arg("-a").arg(from).arg(to),
        &format!("cp -a {} {}", from.display(), to.display()),
    );
}

type Gen = fn(&Path, Scale, &mut Rng);
type Live = fn(&Path, Scale, &mut Rng, usize);

fn workflow(
    rows: &mut Vec<Row>,
    b: &Bench,
    scenario: &'static str,
    s: Scale,
    gen: Gen,
    live: Live,
) {
    let work = b.work;
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
    settle();
    pass(rows, b, scenario, "1 initial copy", 0.7, &src, d, false);
    live(&src, s, &mut rng, 1);
    settle();
    pass(
        rows,
        b,
        scenario,
        "2 copy after changes",
        0.7,
        &src,
        d,
        false,
    );
    live(&src, s, &mut rng, 2);
    settle();
    pass(
        rows,
        b,
        scenario,
        "3 final sync (downtime)",
        0.5,
        &src,
        d,
        true,
    );
    pass(rows, b, scenario, "4 no-change sync", 0.5, &src, d, true);
    for p in std::iter::once(&src).chain(&dsts) {
        let _ = fs::remove_dir_all(p);
    }
}

/// 1,000,000 entries (empty files in a Maildir layout): copy and no-change pass, peak memory.
fn million(rows: &mut Vec<Row>, b: &Bench) {
    let work = b.work;
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
    pass(rows, b, "million", "1 initial copy", 0.7, &src, d, false);
    pass(rows, b, "million", "2 no-change sync", 0.5, &src, d, true);
    for p in std::iter::once(&src).chain(&dsts) {
        let _ = fs::remove_dir_all(p);
    }
}

/// A run's time for the tables: seconds, or how long it ran before it was killed.
fn shown(r: &Run) -> String {
    if r.hung {
        format!("hung (> {:.0} s)", r.time.as_secs_f64())
    } else {
        format!("{:.3} s", r.time.as_secs_f64())
    }
}

fn print_local_table(rows: &[&Row]) {
    println!("| scenario | pass | deltasync | deltasync --inplace | rsync -aH | ratio | ratio --inplace | target | peak RSS deltasync / rsync |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let [ds, ip, rs] = &r.runs;
        let ratio = ds.time.as_secs_f64() / rs.time.as_secs_f64();
        let ratio_ip = ip.time.as_secs_f64() / rs.time.as_secs_f64();
        let mark = |x: f64| if x <= r.target { "✓" } else { "✗" };
        println!(
            "| {} | {} | {} | {} | {} | {:.2} {} | {:.2} {} | ≤ {} | {} / {} MiB |",
            r.scenario,
            r.pass,
            shown(ds),
            shown(ip),
            shown(rs),
            ratio,
            mark(ratio),
            ratio_ip,
            mark(ratio_ip),
            r.target,
            ds.rss.max(ip.rss) / 1024,
            rs.rss / 1024
        );
    }
}

/// Times and bytes on the wire; time targets as locally, bytes at most rsync's.
fn print_ssh_table(rows: &[&Row], rsync_name: &str) {
    println!("| leg | scenario | pass | deltasync | deltasync --inplace | {rsync_name} | ratio | ratio --inplace | time target | wire deltasync | wire --inplace | wire rsync | bytes ratio | bytes ratio --inplace | turns deltasync / rsync |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let [ds, ip, rs] = &r.runs;
        let mark = |ok: bool| if ok { "✓" } else { "✗" };
        // A hung run has no time, and its bytes are what crossed before it was killed.
        let ratio = |a: &Run| {
            let x = a.time.as_secs_f64() / rs.time.as_secs_f64();
            if a.hung {
                format!("> {x:.0} ✗")
            } else {
                format!("{x:.2} {}", mark(x <= r.target))
            }
        };
        let wire = |a: &Run| a.wire.unwrap_or_default();
        let uncounted = |a: &Run| a.hung || a.wire.is_none() || rs.wire.is_none();
        let bytes = |a: &Run| {
            if uncounted(a) {
                "–".to_string()
            } else {
                human(wire(a).total())
            }
        };
        let bytes_ratio = |a: &Run| {
            if uncounted(a) {
                "–".to_string()
            } else {
                let x = wire(a).total() as f64 / wire(rs).total().max(1) as f64;
                format!("{x:.3} {}", mark(x <= 1.0))
            }
        };
        let turns = |a: &Run| {
            if uncounted(a) {
                "–".to_string()
            } else {
                wire(a).turns.to_string()
            }
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | ≤ {} | {} | {} | {} | {} | {} | {} / {} |",
            r.leg.name(),
            r.scenario,
            r.pass,
            shown(ds),
            shown(ip),
            shown(rs),
            ratio(ds),
            ratio(ip),
            r.target,
            bytes(ds),
            bytes(ip),
            bytes(rs),
            bytes_ratio(ds),
            bytes_ratio(ip),
            turns(ds),
            turns(rs),
        );
    }
}

/// Options that take a value, and flags; anything else is refused before any work starts.
const VALUE_OPTIONS: [&str; 7] = [
    "--scale",
    "--work",
    "--only",
    "--legs",
    "--repeat",
    "--timeout",
    "--deltasync",
];
const FLAGS: [&str; 3] = ["--ssh", "--rsync-z", "--no-count"];
/// What `--only` picks from.
const SCENARIOS: [&str; 4] = ["mailstore", "maildir", "docker", "million"];
const USAGE: &str = "usage: tree_bench [--scale small|medium|large] [--work DIR] \
[--only mailstore,maildir,docker,million] [--ssh | --legs local,push,pull] [--rsync-z] \
[--no-count] [--timeout SECONDS] [--repeat N] [--deltasync PATH]";

/// Checks the command line: `Err` names the first word that is neither a known option (with
/// its value) nor a known flag.
fn check_args(args: &[String]) -> Result<(), String> {
    let mut words = args.iter();
    while let Some(w) = words.next() {
        if VALUE_OPTIONS.contains(&w.as_str()) {
            if words.next().is_none() {
                return Err(format!("{w} needs a value"));
            }
        } else if !FLAGS.contains(&w.as_str()) {
            return Err(format!("unknown argument {w}"));
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().skip(1).any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return;
    }
    if let Err(e) = check_args(&args[1..]) {
        eprintln!("tree_bench: {e}\n{USAGE}");
        std::process::exit(2);
    }
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let flag = |name: &str| args.iter().any(|a| a == name);
    let scale_name = opt("--scale").unwrap_or_else(|| "medium".into());
    let s = scale(&scale_name);
    let work = PathBuf::from(opt("--work").unwrap_or_else(|| "/tmp/deltasync-tree-bench".into()));
    let only = opt("--only").unwrap_or_else(|| "mailstore,maildir,docker".into());
    if let Some(other) = only.split(',').find(|s| !SCENARIOS.contains(s)) {
        eprintln!(
            "tree_bench: unknown scenario {other} ({})",
            SCENARIOS.join(", ")
        );
        std::process::exit(2);
    }
    let legs = opt("--legs").unwrap_or_else(|| if flag("--ssh") { "push" } else { "local" }.into());
    let legs: Vec<Leg> = legs
        .split(',')
        .map(|l| match l {
            "local" => Leg::Local,
            "push" => Leg::Push,
            "pull" => Leg::Pull,
            other => panic!("unknown leg {other} (local, push, pull)"),
        })
        .collect();
    let rsync_z = flag("--rsync-z");
    let repeat: usize = opt("--repeat")
        .map(|n| n.parse().expect("--repeat N"))
        .unwrap_or(1)
        .max(1);
    let min_timeout = Duration::from_secs(
        opt("--timeout")
            .map(|t| t.parse().expect("--timeout SECONDS"))
            .unwrap_or(60),
    );
    let exe_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let built = PathBuf::from(
        opt("--deltasync").unwrap_or_else(|| exe_dir.join("deltasync").display().to_string()),
    );
    assert!(
        built.is_file(),
        "build deltasync first: cargo build --release -p delta-cli ({})",
        built.display()
    );
    fs::create_dir_all(&work).unwrap();
    // A private copy: the shared target directory may be rebuilt while we run, and over SSH the
    // far side must run the very same binary.
    let deltasync = work.join("deltasync");
    let _ = fs::remove_file(&deltasync);
    fs::copy(&built, &deltasync).unwrap();
    println!(
        "tree benchmark, scale {scale_name}, {} cores, work dir {}, deltasync copied from {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        work.display(),
        built.display()
    );
    let sshd = legs
        .iter()
        .any(|l| *l != Leg::Local)
        .then(|| start_sshd(&work));
    let count = !flag("--no-count");
    let rsh = sshd.as_ref().map(|d| {
        let relay = exe_dir.join("ssh_count");
        assert!(
            !count || relay.is_file(),
            "build the relay first: cargo build --release -p deltasync-benches ({})",
            relay.display()
        );
        let rsh = format!(
            "{}ssh -p {} -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR",
            if count {
                format!("{} ", relay.display())
            } else {
                String::new()
            },
            d.port,
            d.key.display()
        );
        println!("sshd on 127.0.0.1:{}; -e \"{rsh}\"", d.port);
        rsh
    });
    let mut rows = Vec::new();
    for &leg in &legs {
        let b = Bench {
            deltasync: &deltasync,
            work: &work,
            leg,
            rsh: if leg == Leg::Local { None } else { rsh.clone() },
            count,
            sshd_pid: sshd.as_ref().map(|d| d.child.id()),
            rsync_z,
            min_timeout,
            repeat,
        };
        for scenario in only.split(',') {
            match scenario {
                "mailstore" => {
                    workflow(&mut rows, &b, "mailstore", s, gen_mailstore, live_mailstore)
                }
                "maildir" => workflow(&mut rows, &b, "maildir", s, gen_maildir, live_maildir),
                "docker" => workflow(&mut rows, &b, "docker", s, gen_docker, live_docker),
                "million" => million(&mut rows, &b),
                other => unreachable!("{other} was checked against SCENARIOS"),
            }
        }
    }
    drop(sshd);
    let local: Vec<&Row> = rows.iter().filter(|r| r.leg == Leg::Local).collect();
    let remote: Vec<&Row> = rows.iter().filter(|r| r.leg != Leg::Local).collect();
    if !local.is_empty() {
        println!();
        print_local_table(&local);
    }
    if !remote.is_empty() {
        println!();
        print_ssh_table(&remote, if rsync_z { "rsync -aHz" } else { "rsync -aH" });
    }
}

#[cfg(test)]
mod tests {
    use super::check_args;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_documented_command_lines_are_accepted() {
        for line in [
            "",
            "--scale medium --legs push,pull --repeat 3 --no-count --work /dev/shm/dsb",
            "--ssh --rsync-z --only million --timeout 600 --deltasync /bin/true",
        ] {
            assert_eq!(check_args(&words(line)), Ok(()), "{line}");
        }
    }

    #[test]
    fn an_unknown_word_or_a_missing_value_is_refused() {
        assert_eq!(
            check_args(&words("--scale medium --fast")),
            Err("unknown argument --fast".into())
        );
        assert_eq!(
            check_args(&words("--legs push medium")),
            Err("unknown argument medium".into())
        );
        assert_eq!(
            check_args(&words("--no-count --repeat")),
            Err("--repeat needs a value".into())
        );
    }
}
