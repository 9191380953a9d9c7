//! The in-process transport (`--ssh-transport libssh2`) against a real OpenSSH server on
//! 127.0.0.1 started with throwaway keys (the fixture of `remote_ssh`): pull and push for
//! copy, sync and check; host keys unknown, accepted-new and changed; a wrong key; a missing
//! far binary; ssh options it cannot honour. No ssh client is involved in the transfers.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::remote_ssh::{bin_path, keygen, start_sshd, Sshd};
use crate::util::{
    assert_same, code, data, ds, full_tree, s, stderr, stdout, Listing, Scratch, Tree,
};

/// The login name the fixture's server allows.
fn me() -> String {
    String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string()
}

/// The server's host key as a known_hosts line: `[127.0.0.1]:PORT ssh-ed25519 AAAA…`.
fn host_line(sc: &Scratch, sshd: &Sshd) -> String {
    let pubkey = fs::read_to_string(sc.path("ssh/host.pub")).unwrap();
    let mut f = pubkey.split_whitespace();
    let (t, k) = (f.next().unwrap(), f.next().unwrap());
    format!("[127.0.0.1]:{} {t} {k}\n", sshd.port)
}

/// A known_hosts file holding `text`.
fn known_hosts(sc: &Scratch, name: &str, text: &str) -> PathBuf {
    let p = sc.path(name);
    fs::write(&p, text).unwrap();
    p
}

/// `deltasync CMD FROM TO --ssh-transport libssh2 -e "ssh -p PORT" --identity KEY
/// --known-hosts KH --remote-bin <this build> EXTRA...`.
fn l2(sshd: &Sshd, kh: &Path, cmd: &str, from: &str, to: &str, extra: &[&str]) -> Output {
    let rsh = format!("ssh -p {}", sshd.port);
    let mut args = vec![
        cmd,
        from,
        to,
        "--ssh-transport",
        "libssh2",
        "-e",
        &rsh,
        "--identity",
        s(&sshd.key),
        "--known-hosts",
        s(kh),
        "--remote-bin",
        s(bin_path()),
    ];
    args.extend_from_slice(extra);
    ds(&args)
}

fn far(t: &Tree) -> String {
    format!("{}@127.0.0.1:{}", me(), t.arg())
}

fn transferred(o: &Output) -> String {
    stdout(o)
        .lines()
        .find_map(|l| l.strip_prefix("Files transferred: "))
        .unwrap_or_else(|| panic!("no stats in {}", stdout(o)))
        .to_string()
}

#[test]
fn pull_and_push_copy_sync_check_over_libssh2() {
    let sc = Scratch::new();
    let sshd = start_sshd(&sc);
    let kh = known_hosts(&sc, "known_hosts", &host_line(&sc, &sshd));
    let src = sc.tree("src");
    full_tree(&src);
    src.file("big.dat", data(11, 3 << 20)).file("db.fdb", "db");
    let no_fdb = |l: Listing| l.without(|p, _| p.ends_with(".fdb"));

    // Pull: a filtered copy, then a sync that updates by delta and deletes.
    let dst = sc.tree("dst");
    let o = l2(
        &sshd,
        &kh,
        "copy",
        &far(&src),
        dst.arg(),
        &["--filter", "- *.fdb"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_same(&no_fdb(src.list()), &dst.list(), "pulled over libssh2");
    assert!(!dst.exists("db.fdb"));
    let mut big = src.read("big.dat");
    big[1 << 20] ^= 1;
    src.replace("big.dat", &big);
    dst.file("extra", "x").file("keep.fdb", "k");
    let o = l2(
        &sshd,
        &kh,
        "sync",
        &far(&src),
        dst.arg(),
        &["--filter", "- *.fdb", "--stats"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("Deleted: 1"), "{}", stdout(&o));
    assert!(!dst.exists("extra") && dst.exists("keep.fdb"));
    assert_same(
        &no_fdb(src.list()),
        &no_fdb(dst.list()),
        "pull sync over libssh2",
    );
    let o = l2(
        &sshd,
        &kh,
        "sync",
        &far(&src),
        dst.arg(),
        &["--filter", "- *.fdb", "--stats"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        transferred(&o),
        "0 (0 new, 0 updated), 0 metadata-only",
        "a rerun transfers nothing"
    );
    let o = l2(
        &sshd,
        &kh,
        "check",
        &far(&src),
        dst.arg(),
        &["--filter", "- *.fdb", "--checksum"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    dst.replace("a.txt", "different");
    let o = l2(
        &sshd,
        &kh,
        "check",
        &far(&src),
        dst.arg(),
        &["--filter", "- *.fdb"],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));

    // Push, the login name from -e this time: a copy, then a sync with deletions.
    let pushed = sc.tree("pushed");
    let to = format!("127.0.0.1:{}", pushed.arg());
    let user = me();
    let rsh = format!("ssh -p {} -l {user}", sshd.port);
    let push = |cmd: &str, extra: &[&str]| {
        let mut args = vec![
            cmd,
            src.arg(),
            &to,
            "--ssh-transport",
            "libssh2",
            "-e",
            &rsh,
            "--identity",
            s(&sshd.key),
            "--known-hosts",
            s(&kh),
            "--remote-bin",
            s(bin_path()),
        ];
        args.extend_from_slice(extra);
        ds(&args)
    };
    let o = push("copy", &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_same(&src.list(), &pushed.list(), "pushed over libssh2");
    src.remove("h").remove("db.fdb");
    src.file("new/file", data(3, 500_000));
    let mut big = src.read("big.dat");
    big.extend_from_slice(b"appended");
    src.replace("big.dat", &big);
    pushed.file("extra", "x");
    let o = push("sync", &["--stats"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_same(&src.list(), &pushed.list(), "push sync over libssh2");
    let o = push("sync", &["--stats"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        transferred(&o),
        "0 (0 new, 0 updated), 0 metadata-only",
        "a rerun transfers nothing"
    );
    let o = push("check", &["--checksum"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    pushed.replace("a.txt", "different");
    assert_eq!(code(&push("check", &["--checksum"])), 1);
}

#[test]
fn host_keys_unknown_accept_new_and_changed() {
    let sc = Scratch::new();
    let sshd = start_sshd(&sc);
    let port = sshd.port;
    let src = sc.tree("src");
    src.file("a", "a").file("sub/b", "b");
    let dst = sc.tree("dst");

    // Unknown: refused, with the line that adds it; nothing is written.
    let kh = sc.path("kh-unknown");
    let o = l2(&sshd, &kh, "copy", &far(&src), dst.arg(), &[]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let err = stderr(&o);
    let hint = format!("ssh-keyscan -p {port} 127.0.0.1 >> {}", kh.display());
    assert!(
        err.contains(&format!(
            "host key for 127.0.0.1:{port} is not in {}",
            kh.display()
        )) && err.contains(&hint)
            && err.contains("--ssh-host-key-check accept-new"),
        "{err}"
    );
    assert!(dst.list().paths().is_empty(), "destination untouched");
    assert!(!kh.exists(), "strict checking records nothing");

    // The suggested command works as given.
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!("{hint} 2>/dev/null"))
        .status()
        .unwrap();
    assert!(st.success());
    let o = l2(&sshd, &kh, "copy", &far(&src), dst.arg(), &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_same(&src.list(), &dst.list(), "after ssh-keyscan");

    // accept-new records the key, and the next strict run accepts it.
    let kh = sc.path("kh-new");
    let dst2 = sc.tree("dst2");
    let o = l2(
        &sshd,
        &kh,
        "copy",
        &far(&src),
        dst2.arg(),
        &["--ssh-host-key-check", "accept-new"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(fs::read_to_string(&kh).unwrap(), host_line(&sc, &sshd));
    let o = l2(&sshd, &kh, "sync", &far(&src), dst2.arg(), &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // Changed: another key recorded for [127.0.0.1]:PORT is refused loudly, whatever the
    // policy short of "no".
    keygen(&sc.path("impostor"));
    let other = fs::read_to_string(sc.path("impostor.pub")).unwrap();
    let other_key = other.split_whitespace().nth(1).unwrap();
    let kh = known_hosts(
        &sc,
        "kh-changed",
        &format!("# an old key\n[127.0.0.1]:{port} ssh-ed25519 {other_key}\n"),
    );
    let dst3 = sc.tree("dst3");
    for extra in [&[][..], &["--ssh-host-key-check", "accept-new"]] {
        let o = l2(&sshd, &kh, "copy", &far(&src), dst3.arg(), extra);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!(
                "HOST KEY CHANGED: the host key for 127.0.0.1:{port} does not match the one in {}",
                kh.display()
            )) && err.contains(&format!(
                "ssh-keygen -R '[127.0.0.1]:{port}' -f {}",
                kh.display()
            )),
            "{err}"
        );
        assert!(dst3.list().paths().is_empty(), "destination untouched");
    }
    // "-o StrictHostKeyChecking=no" in -e turns the check off (throwaway hosts only).
    let rsh = format!("ssh -p {port} -o StrictHostKeyChecking=no");
    let o = ds(&[
        "copy",
        &far(&src),
        dst3.arg(),
        "--ssh-transport",
        "libssh2",
        "-e",
        &rsh,
        "--identity",
        s(&sshd.key),
        "--known-hosts",
        s(&kh),
        "--remote-bin",
        s(bin_path()),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // The same three flags drive the ssh command too: a changed key is refused by ssh.
    let rsh = format!("ssh -p {port} -o BatchMode=yes");
    let with_ssh = |cmd: &str, kh: &std::path::Path| {
        ds(&[
            cmd,
            &far(&src),
            dst3.arg(),
            "-e",
            &rsh,
            "--identity",
            s(&sshd.key),
            "--known-hosts",
            s(kh),
            "--ssh-host-key-check",
            "yes",
            "--remote-bin",
            s(bin_path()),
        ])
    };
    let o = with_ssh("copy", &kh);
    assert_ne!(code(&o), 0, "{}", stderr(&o));
    let kh = known_hosts(&sc, "kh-good", &host_line(&sc, &sshd));
    let o = with_ssh("sync", &kh);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_same(&src.list(), &dst3.list(), "ssh with the same flags");
}

#[test]
fn a_wrong_key_or_far_binary_is_a_clear_error() {
    let sc = Scratch::new();
    let sshd = start_sshd(&sc);
    let kh = known_hosts(&sc, "known_hosts", &host_line(&sc, &sshd));
    let src = sc.tree("src");
    src.file("a", "a");
    let dst = sc.tree("dst");

    // Keys the server does not know, or that don't exist, are each named with the reason.
    keygen(&sc.path("stranger"));
    let stranger = sc.path("stranger");
    let missing = sc.path("no-such-key");
    let rsh = format!("ssh -p {}", sshd.port);
    let o = ds(&[
        "copy",
        &far(&src),
        dst.arg(),
        "--ssh-transport",
        "libssh2",
        "-e",
        &rsh,
        "--identity",
        s(&stranger),
        "--identity",
        s(&missing),
        "--known-hosts",
        s(&kh),
        "--remote-bin",
        s(bin_path()),
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "authentication as {} on 127.0.0.1:{} failed; tried: {} (refused by the server), {} (not found)",
            me(),
            sshd.port,
            stranger.display(),
            missing.display()
        )),
        "{err}"
    );
    assert!(dst.list().paths().is_empty());

    // The far shell's complaint comes through, and the message says what to do.
    let mut args = vec![
        "copy".to_string(),
        far(&src),
        dst.arg().to_string(),
        "--ssh-transport".into(),
        "libssh2".into(),
        "-e".into(),
        rsh.clone(),
        "--identity".into(),
        s(&sshd.key).into(),
        "--known-hosts".into(),
        s(&kh).into(),
        "--remote-bin".into(),
        "/nonexistent/deltasync".into(),
    ];
    let o = ds(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("/nonexistent/deltasync: ") && err.contains("--remote-bin"),
        "{err}"
    );
    // Pushing too.
    let to = format!("{}@127.0.0.1:{}", me(), dst.arg());
    args[1] = src.arg().to_string();
    args[2] = to;
    let o = ds(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/nonexistent/deltasync: "),
        "{}",
        stderr(&o)
    );
}

#[test]
fn ssh_options_libssh2_cannot_honour_are_refused() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    let dst = sc.tree("dst");
    let from = format!("127.0.0.1:{}", src.arg());
    for (rsh, says) in [
        (
            "ssh -J jump",
            "ssh option -J: not supported by the libssh2 transport",
        ),
        (
            "ssh -o ProxyCommand=nc",
            "ssh option -o ProxyCommand=nc: not supported",
        ),
        ("plink -P 22", "cannot run another program"),
    ] {
        let o = ds(&[
            "copy",
            &from,
            dst.arg(),
            "--ssh-transport",
            "libssh2",
            "-e",
            rsh,
        ]);
        assert_eq!(code(&o), 1, "{rsh}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{rsh}: {}", stderr(&o));
    }
}

#[test]
fn a_frozen_far_side_times_out_over_libssh2() {
    let sc = Scratch::new();
    let sshd = start_sshd(&sc);
    let kh = known_hosts(&sc, "known_hosts", &host_line(&sc, &sshd));
    let src = sc.tree("src");
    for i in 0..40 {
        src.file(&format!("d/f{i:02}"), data(i, 400_000));
    }
    let dst = sc.tree("dst");
    // The far command passes its first 3 MiB through, then goes silent with the channel open.
    let freeze = sc.path("freeze.sh");
    let relay = "$n = shift; while ($n > 0) { $r = sysread(STDIN, $b, 65536) or last; \
                 syswrite(STDOUT, $b); $n -= $r } sleep 20";
    fs::write(
        &freeze,
        format!(
            "{} server 2>/dev/null | exec perl -e '{relay}' {} 2>/dev/null\n",
            s(bin_path()),
            3 << 20
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let rsh = format!("ssh -p {}", sshd.port);
    let o = ds(&[
        "sync",
        &far(&src),
        dst.arg(),
        "--ssh-transport",
        "libssh2",
        "-e",
        &rsh,
        "--identity",
        s(&sshd.key),
        "--known-hosts",
        s(&kh),
        "--remote-bin",
        &format!("sh {}", s(&freeze)),
        "--timeout",
        "1s",
    ]);
    assert_ne!(code(&o), 0, "a timed-out pass fails");
    assert!(stderr(&o).contains("--timeout"), "{}", stderr(&o));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "gave up in time: {:?}",
        started.elapsed()
    );
    for e in fs::read_dir(dst.path("d")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".dstmp."), "temporary left: {name}");
        assert_eq!(
            dst.read(&format!("d/{name}")),
            src.read(&format!("d/{name}"))
        );
    }
}
