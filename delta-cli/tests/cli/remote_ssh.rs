//! Pulling from a far tree: through a stand-in remote shell (fast, every run) and through a
//! real OpenSSH server on 127.0.0.1 that the test starts with throwaway host and user keys.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{
    assert_same, bin, code, data, ds, full_tree, require, s, stderr, Listing, Scratch, Tree,
};

/// A remote shell that ignores the host and runs the remote command here.
fn fake_rsh(scratch: &Scratch) -> PathBuf {
    let p = scratch.path("fake-rsh");
    fs::write(&p, "#!/bin/sh\nshift\nexec sh -c \"$1\"\n").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn pull(rsh: &str, cmd: &str, src: &Tree, dst: &Tree, extra: &[&str]) -> std::process::Output {
    over(
        rsh,
        cmd,
        &format!("somehost:{}", src.arg()),
        dst.arg(),
        extra,
    )
}

/// `deltasync CMD FROM TO -e RSH --remote-bin <this build> EXTRA...`.
fn over(rsh: &str, cmd: &str, from: &str, to: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![cmd, from, to, "-e", rsh, "--remote-bin", s(bin_path())];
    args.extend_from_slice(extra);
    ds(&args)
}

pub(crate) fn bin_path() -> &'static Path {
    Box::leak(bin().into_boxed_path())
}

#[test]
fn the_report_counts_the_bytes_on_the_wire() {
    let sc = Scratch::new();
    let rsh = fake_rsh(&sc);
    let src = sc.tree("src");
    src.file("big.bin", data(5, 1 << 20));
    let dst = sc.tree("dst");
    let o = pull(s(&rsh), "copy", &src, &dst, &["--json", "--no-compress"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let (sent, received) = (
        v["stats"]["wire_sent"].as_u64().unwrap(),
        v["stats"]["wire_received"].as_u64().unwrap(),
    );
    assert!(
        (1 << 20..(1 << 20) + (64 << 10)).contains(&received),
        "the file's MiB and a little framing came in: {received}"
    );
    assert!((1..4096).contains(&sent), "requests went out: {sent}");
    // --stats shows them; a local pass has none.
    let o = pull(s(&rsh), "sync", &src, &dst, &["--stats"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(" bytes received"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let local = sc.tree("local");
    let o = ds(&["copy", src.arg(), local.arg(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["stats"]["wire_sent"], 0);
    assert_eq!(v["stats"]["wire_received"], 0);
}

#[test]
fn json_output_asks_a_far_receiver_for_problems_only() {
    let sc = Scratch::new();
    let rsh = fake_rsh(&sc);
    let src = sc.tree("src");
    for i in 0..400 {
        src.file(&format!("d{}/m{i}.eml", i % 7), format!("message {i}"));
    }
    let dst = sc.tree("dst");
    let to = format!("somehost:{}", dst.arg());
    let received = |extra: &[&str]| {
        let o = over(s(&rsh), "sync", src.arg(), &to, extra);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            v["stats"]["source_entries"], 407,
            "the report came back whole"
        );
        v["stats"]["wire_received"].as_u64().unwrap()
    };
    received(&["--json"]);
    // Nothing changed: with --progress every entry's event comes back, with --json alone not.
    let all = received(&["--json", "--progress"]);
    let json = received(&["--json"]);
    assert!(
        json * 2 < all,
        "--json received {json} bytes, --json --progress {all}"
    );
}

#[test]
fn pull_copy_sync_check_through_a_remote_shell() {
    let sc = Scratch::new();
    let rsh = fake_rsh(&sc);
    let rsh = s(&rsh);
    let src = sc.tree("src");
    full_tree(&src);
    let dst = sc.tree("dst");
    let o = pull(rsh, "copy", &src, &dst, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_same(
        &Listing::of(&src.root),
        &Listing::of(&dst.root),
        "after a pull",
    );

    // Changes on the far side: a large file is updated by delta, extras are deleted by sync.
    let big = data(9, 3 << 20);
    src.file("huge.bin", &big);
    assert_eq!(code(&pull(rsh, "sync", &src, &dst, &[])), 0);
    let mut changed = big.clone();
    changed[1 << 20] ^= 1;
    changed.extend_from_slice(b"appended");
    src.replace("huge.bin", &changed);
    dst.file("extra", "x");
    let o = pull(rsh, "sync", &src, &dst, &["--stats"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let literal: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("Literal data: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(
        literal < 1 << 20,
        "a small change moves little over the wire: {out}"
    );
    assert!(!dst.exists("extra"));
    assert_same(
        &Listing::of(&src.root),
        &Listing::of(&dst.root),
        "after sync",
    );

    // Running the same command twice transfers nothing the second time.
    let o = pull(rsh, "sync", &src, &dst, &["--stats"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Files transferred: 0"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(code(&pull(rsh, "check", &src, &dst, &[])), 0);
    dst.replace("a.txt", "different content!!");
    assert_eq!(code(&pull(rsh, "check", &src, &dst, &["--checksum"])), 1);
}

#[test]
fn filters_and_dry_run_work_across_the_session() {
    let sc = Scratch::new();
    let rsh = fake_rsh(&sc);
    let src = sc.tree("src");
    src.file("a.dat", "a")
        .file("index1.dat", "i")
        .file("db.fdb", "d")
        .file("sub/b.dat", "b");
    let dst = sc.tree("dst");
    let o = pull(s(&rsh), "copy", &src, &dst, &["--filter", "- *.fdb", "-n"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!dst.exists("a.dat"), "dry run writes nothing");
    let o = pull(s(&rsh), "copy", &src, &dst, &["--filter", "- *.fdb"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        Listing::of(&dst.root).files(),
        ["a.dat", "index1.dat", "sub/b.dat"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
}

#[test]
fn a_missing_far_binary_or_source_is_a_clear_error() {
    let sc = Scratch::new();
    let rsh = fake_rsh(&sc);
    let src = sc.tree("src");
    src.file("a", "a");
    let dst = sc.tree("dst");
    let from = format!("h:{}", src.arg());
    let o = ds(&[
        "copy",
        &from,
        dst.arg(),
        "-e",
        s(&rsh),
        "--remote-bin",
        "/nonexistent/deltasync",
    ]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("is deltasync installed there"),
        "{}",
        stderr(&o)
    );
    let from = format!("h:{}/missing", src.arg());
    let o = over(s(&rsh), "copy", &from, dst.arg(), &[]);
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("cannot open source"), "{}", stderr(&o));
    let to = format!("h:{}", dst.arg());
    let from = format!("h:{}", src.arg());
    let o = ds(&["copy", &from, &to, "-e", s(&rsh)]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("one side must be local"),
        "{}",
        stderr(&o)
    );
}

fn push(rsh: &str, cmd: &str, src: &Tree, dst: &Tree, extra: &[&str]) -> std::process::Output {
    over(
        rsh,
        cmd,
        src.arg(),
        &format!("somehost:{}", dst.arg()),
        extra,
    )
}

#[test]
fn push_copy_sync_with_filters_and_rails_through_a_remote_shell() {
    let sc = Scratch::new();
    let rsh = fake_rsh(&sc);
    let rsh = s(&rsh);
    let src = sc.tree("src");
    full_tree(&src);
    let dst = sc.tree("dst");
    let o = push(rsh, "copy", &src, &dst, &["-i"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(">f+++++++++ a.txt"),
        "the far side's changes are itemized here"
    );
    assert_same(
        &Listing::of(&src.root),
        &Listing::of(&dst.root),
        "after a push",
    );

    // A large change travels as a delta; extras go; excluded extras stay protected.
    let big = data(5, 3 << 20);
    src.file("huge.bin", &big);
    assert_eq!(code(&push(rsh, "sync", &src, &dst, &[])), 0);
    let mut changed = big.clone();
    changed[2 << 20] ^= 1;
    src.replace("huge.bin", &changed);
    dst.file("extra.txt", "x").file("keep.fdb", "k");
    let o = push(rsh, "sync", &src, &dst, &["--filter", "- *.fdb", "--stats"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("Deleted: 1"), "{out}");
    let literal: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("Literal data: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(literal < 1 << 20, "{out}");
    assert!(!dst.exists("extra.txt") && dst.exists("keep.fdb"));
    assert!(dst.read("huge.bin") == changed);

    // The far side keeps the rails: an empty source deletes nothing there.
    let empty = sc.tree("empty");
    let o = push(rsh, "sync", &empty, &dst, &[]);
    assert_eq!(code(&o), 25, "{}", stderr(&o));
    assert!(dst.exists("a.txt"));
}

/// An OpenSSH server on 127.0.0.1 with throwaway keys, stopped on drop.
pub(crate) struct Sshd {
    child: Child,
    pub(crate) port: u16,
    pub(crate) key: PathBuf,
}

impl Sshd {
    /// The `-e` command that reaches this server as the current user with its throwaway key.
    pub(crate) fn rsh(&self) -> String {
        format!(
            "ssh -p {} -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR",
            self.port,
            self.key.display()
        )
    }
}

impl Drop for Sshd {
    /// Stops the server and its connections: deltasync keeps an ssh login open for the next
    /// pass (`--ssh-reuse`), and a master left connected to this server's session process
    /// would outlive the test.
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid ...: the comm may hold spaces, so split after its ')'.
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1));
            if ppid == Some(pid.as_str()) {
                let _ = Command::new("kill").arg(e.file_name()).status();
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn keygen(path: &Path) {
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

pub(crate) fn start_sshd(sc: &Scratch) -> Sshd {
    let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            require("sshd");
            unreachable!()
        });
    require("ssh");
    require("ssh-keygen");
    // Privilege separation needs this directory.
    let _ = fs::create_dir_all("/run/sshd");
    let dir = sc.path("ssh");
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
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    // Several servers may start at once in this process: each call takes its own ports.
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    for attempt in 0..20u16 {
        let port = 20000 + (std::process::id() as u16 % 20000) + call * 211 + attempt * 7;
        let config = dir.join("sshd_config");
        fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nAllowUsers {user}\nStrictModes no\nUsePAM no\nPidFile none\nLogLevel ERROR\n",
                dir.join("host").display(),
                dir.join("authorized_keys").display()
            ),
        )
        .unwrap();
        let mut child = Command::new(&sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Sshd {
                    child,
                    port,
                    key: dir.join("user"),
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("could not start sshd on 127.0.0.1");
}

#[test]
fn pull_through_a_real_openssh_server_on_loopback() {
    let sc = Scratch::new();
    let sshd = start_sshd(&sc);
    let rsh = format!(
        "ssh -p {} -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR",
        sshd.port,
        sshd.key.display()
    );
    let src = sc.tree("src");
    full_tree(&src);
    src.file("big.dat", data(11, 2 << 20));
    let dst = sc.tree("dst");
    let from = format!("127.0.0.1:{}", src.arg());
    let o = over(&rsh, "sync", &from, dst.arg(), &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_same(
        &Listing::of(&src.root),
        &Listing::of(&dst.root),
        "pulled over ssh",
    );
    let o = over(&rsh, "check", &from, dst.arg(), &["--checksum"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // The connection is killed mid-transfer: a clear error, no partial file, and the rerun
    // completes.
    for i in 0..8 {
        src.file(&format!("slow/{i}.bin"), data(20 + i, 4 << 20));
    }
    let child = Command::new(bin())
        .args([
            "sync",
            &from,
            dst.arg(),
            "-e",
            &rsh,
            "--remote-bin",
            s(bin_path()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !dst.exists("slow") && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Kill every ssh client of this session: the connection drops under deltasync. (The
    // login kept for the next pass is a master named "ssh: PATH [mux]": not matched.)
    let _ = Command::new("pkill")
        .args(["-f", &format!("^ssh .*-p {} ", sshd.port)])
        .status();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        assert!(
            !String::from_utf8_lossy(&out.stderr).is_empty(),
            "a failure says why"
        );
    }
    for i in 0..8 {
        let p = format!("slow/{i}.bin");
        if dst.exists(&p) {
            assert!(
                dst.read(&p) == src.read(&p),
                "{p} is either absent or complete"
            );
        }
    }
    let o = over(&rsh, "sync", &from, dst.arg(), &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_same(
        &Listing::of(&src.root),
        &Listing::of(&dst.root),
        "rerun after the kill",
    );

    // And the other way: push the tree to a new destination over the same server.
    let pushed = sc.tree("pushed");
    let to = format!("127.0.0.1:{}", pushed.arg());
    let o = over(&rsh, "sync", src.arg(), &to, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_same(
        &Listing::of(&src.root),
        &Listing::of(&pushed.root),
        "pushed over ssh",
    );
}

/// `deltasync VERB FROM TO -e RSH --remote-bin REMOTE_BIN` with `XDG_RUNTIME_DIR` set to
/// `runtime` (where the kept logins' sockets go) and `DELTASYNC_SSH_REUSE` as given.
fn with_remote_bin(
    runtime: &Path,
    reuse: Option<&str>,
    verb: &str,
    from: &str,
    to: &str,
    rsh: &str,
    remote_bin: &str,
) -> std::process::Output {
    let mut c = Command::new(bin());
    c.args([verb, from, to, "-e", rsh, "--remote-bin", remote_bin])
        .env("XDG_RUNTIME_DIR", runtime);
    match reuse {
        Some(v) => c.env("DELTASYNC_SSH_REUSE", v),
        None => c.env_remove("DELTASYNC_SSH_REUSE"),
    };
    c.output().unwrap()
}

fn sockets(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Ends a kept login (`ssh -O exit`).
fn end_master(socket: &Path) {
    let _ = Command::new("ssh")
        .args(["-O", "exit", "-S"])
        .arg(socket)
        .arg("127.0.0.1")
        .stderr(Stdio::null())
        .status();
}

#[test]
fn later_passes_reuse_the_first_passs_ssh_login() {
    let sc = Scratch::new();
    let sshd = start_sshd(&sc);
    let rsh = sshd.rsh();
    let runtime = sc.path("runtime");
    fs::create_dir_all(&runtime).unwrap();
    // The far binary behind a wrapper that logs each start over ssh; a kept server starts the
    // binary itself, so passes through it leave no line.
    let log = sc.path("far-starts.log");
    let wrapper = sc.path("far-deltasync");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            bin_path().display()
        ),
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let starts = || fs::read_to_string(&log).unwrap_or_default();
    let src = sc.tree("src");
    full_tree(&src);
    let dst = sc.tree("dst");
    let to = format!("127.0.0.1:{}", dst.arg());
    let push = |verb: &str, reuse: Option<&str>| {
        with_remote_bin(&runtime, reuse, verb, src.arg(), &to, &rsh, s(&wrapper))
    };
    let o = push("copy", None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let dir = runtime.join("deltasync");
    let kept = sockets(&dir);
    assert_eq!(
        kept.len(),
        2,
        "one kept login and one forward to a kept far server: {kept:?}"
    );
    let (master, forward) = (kept[0].clone(), kept[1].clone());
    assert!(
        forward
            .to_str()
            .unwrap()
            .starts_with(master.to_str().unwrap()),
        "the forward sits beside its master: {kept:?}"
    );
    let mode = fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "the socket directory is private");
    let first = starts();
    let mut lines: Vec<&str> = first.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        ["server", "server --keep 600"],
        "the pass and its helper (in either order) started the far binary over ssh"
    );

    // No new login is possible any more: the next passes can only run over the kept login.
    fs::write(sshd.key.with_file_name("authorized_keys"), "").unwrap();
    src.file("later.txt", b"written between passes");
    let o = push("sync", None);
    assert_eq!(code(&o), 0, "the second pass is served: {}", stderr(&o));
    assert_same(
        &Listing::of(&src.root),
        &Listing::of(&dst.root),
        "after the second pass",
    );
    assert_eq!(
        starts(),
        first,
        "the second pass reached the kept far server"
    );

    // A forward whose far end is gone (here: a socket that closes at once): the pass starts
    // over the kept login instead, and keeps a far server again.
    fs::remove_file(&forward).unwrap();
    let dead = std::os::unix::net::UnixListener::bind(&forward).unwrap();
    let closer = std::thread::spawn(move || drop(dead.accept()));
    src.file("later2.txt", b"written after the far server went");
    let o = push("sync", None);
    assert_eq!(code(&o), 0, "falls back to ssh: {}", stderr(&o));
    closer.join().unwrap();
    assert_same(
        &Listing::of(&src.root),
        &Listing::of(&dst.root),
        "after the fallback",
    );
    assert_eq!(starts().lines().count(), 4, "started over ssh again");
    assert!(
        std::os::unix::net::UnixStream::connect(&forward).is_ok(),
        "the forward is back"
    );

    // Reuse switched off: a fresh login, refused.
    let o = push("sync", Some("0"));
    assert_ne!(code(&o), 0, "without reuse the login is refused");
    // Multiplexing switched off on the command line: the kept login is not used either.
    let off = format!("{rsh} -o ControlMaster=no");
    let o = with_remote_bin(&runtime, None, "sync", src.arg(), &to, &off, s(&wrapper));
    assert_ne!(
        code(&o),
        0,
        "ControlMaster=no on the command line means a fresh login, refused"
    );
    end_master(&master);
}

#[test]
fn a_users_own_multiplexing_is_left_alone() {
    let sc = Scratch::new();
    let sshd = start_sshd(&sc);
    let runtime = sc.path("runtime");
    fs::create_dir_all(&runtime).unwrap();
    let theirs = sc.path("mine");
    fs::create_dir_all(&theirs).unwrap();
    let rsh = format!(
        "{} -o ControlMaster=auto -o ControlPath={}/%C -o ControlPersist=30",
        sshd.rsh(),
        theirs.display()
    );
    let src = sc.tree("src");
    full_tree(&src);
    let dst = sc.tree("dst");
    let to = format!("127.0.0.1:{}", dst.arg());
    let o = with_remote_bin(&runtime, None, "copy", src.arg(), &to, &rsh, s(bin_path()));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        sockets(&runtime.join("deltasync")).is_empty(),
        "no socket of ours"
    );
    let mine = sockets(&theirs);
    assert_eq!(mine.len(), 1, "the user's ControlPath is used: {mine:?}");
    end_master(&mine[0]);
}

/// `pid`'s children, each with its state from `/proc/PID/stat` (`Z` for a zombie).
fn children_of(pid: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let children = fs::read_to_string(task.unwrap().path().join("children")).unwrap();
        for child in children.split_whitespace() {
            let stat = fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            // "PID (COMM) STATE ...": the state follows the last ')'.
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            found.push((child.parse().unwrap(), state.unwrap_or("?").to_string()));
        }
    }
    found
}

#[test]
fn a_kept_server_reaps_the_servers_it_started() {
    use std::io::Read;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::{UnixListener, UnixStream};

    let scratch = Scratch::new();
    let path = scratch.path("kept.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let mut daemon = Command::new(bin())
        .args(["server", "--daemon", "60"])
        .stdin(Stdio::from(OwnedFd::from(listener)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Two connections, each closed once the server for it has started (the preamble comes
    // after the start): that server sees end of input and exits, and nothing connects after.
    for _ in 0..2 {
        let mut c = UnixStream::connect(&path).unwrap();
        let mut preamble = [0u8; 8];
        c.read_exact(&mut preamble).unwrap();
        assert_eq!(&preamble, delta_core::transport::kept::PREAMBLE);
    }
    // And probes that connect and go at once (`server --keep` asks whether one listens so):
    // the preamble then finds nobody, and those servers must be reaped too.
    for _ in 0..3 {
        drop(UnixStream::connect(&path).unwrap());
    }
    std::thread::sleep(Duration::from_millis(200));
    // Every one of those servers ends at once; each must be waited for, not left <defunct>.
    let started = Instant::now();
    let mut left = children_of(daemon.id());
    while !left.is_empty() && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
        left = children_of(daemon.id());
    }
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    assert!(
        left.is_empty(),
        "servers (pid, state) still there after 5 s: {left:?}"
    );
}
