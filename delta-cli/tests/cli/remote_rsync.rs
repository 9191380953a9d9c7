//! The guides' remote rsync lines (`SRC/ root@host:/path`, `SRC host:/path/`, pulls) run with
//! the real `rsync` and with `deltasync rsync` through the same real OpenSSH server on
//! 127.0.0.1: identical trees and exit codes, and a rerun that moves nothing. Also: the far
//! side's disk filling up mid-push keeps the old file and leaves no temporary behind.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use crate::remote_ssh::{bin_path, start_sshd, Sshd};
use crate::util::{
    assert_same, code, data, full_tree, require, s, stderr, stdout, Listing, Scratch,
};

/// Runs the real rsync with `args` (`-e` to the test server added).
fn real_rsync(sshd: &Sshd, args: &[&str]) -> Output {
    require("rsync");
    Command::new("rsync")
        .arg("-e")
        .arg(sshd.rsh())
        .args(args)
        .output()
        .unwrap()
}

/// Runs `deltasync rsync` with `args` (`-e` to the test server and `--rsync-path` to this
/// build added).
fn ds_rsync(sshd: &Sshd, args: &[&str]) -> Output {
    Command::new(bin_path())
        .arg("rsync")
        .arg("-e")
        .arg(sshd.rsh())
        .arg("--rsync-path")
        .arg(bin_path())
        .args(args)
        .output()
        .unwrap()
}

fn stat_line(out: &Output, prefix: &str) -> u64 {
    stdout(out)
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.trim().split(' ').next())
        .and_then(|n| n.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("no {prefix:?} in {}", stdout(out)))
}

/// Copies `from` onto `to` exactly (`cp -a`), so both tools start from the same state.
fn clone_tree(from: &Path, to: &Path) {
    let _ = fs::remove_dir_all(to);
    let o = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "cp -a: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn the_guides_remote_lines_match_real_rsync_over_openssh() {
    let sc = Scratch::new();
    let sshd = start_sshd(&sc);
    let src = sc.tree("src");
    full_tree(&src);
    src.file("mail/cur/2", data(5, 200_000));
    src.file("volumes/x-rspamd-vol-1/state", "rspamd state");
    src.file(
        "volumes/mailcowdockerized_vmail-vol-1/_data/u/cur/1",
        "hello",
    );
    let src_slash = format!("{}/", src.arg());

    // Each case: the command's arguments with SRC/DST placeholders, and how the
    // destination looks before (both tools start from the same state).
    let seed_stale = |root: &Path| {
        fs::create_dir_all(root.join("volumes/y-rspamd-vol-1")).unwrap();
        fs::write(root.join("volumes/y-rspamd-vol-1/keep"), "excluded: kept").unwrap();
        fs::write(root.join("stale-file"), "deleted by --delete").unwrap();
        fs::write(root.join("a.txt"), "old content").unwrap();
    };
    let cases: Vec<(&str, Vec<String>, bool)> = vec![
        // mailcow: `rsync -aHhP --numeric-ids --delete /opt/mailcow-dockerized/ root@target:/opt/mailcow-dockerized`
        (
            "mailcow push",
            vec![
                "-aHhP",
                "--numeric-ids",
                "--delete",
                &src_slash,
                "127.0.0.1:DST",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            true,
        ),
        // mailcow with the rspamd exclude.
        (
            "mailcow push with --exclude",
            vec![
                "-aHhP",
                "--numeric-ids",
                "--delete",
                "--exclude",
                "*rspamd-vol-1",
                &src_slash,
                "127.0.0.1:DST",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            true,
        ),
        // chatmail: `rsync -azH /home/vmail/mail root@$NEW_IP4:/home/vmail/` (no slash on SRC).
        (
            "chatmail push of a named directory",
            vec![
                "-azH".to_string(),
                src.path("mail").display().to_string(),
                "127.0.0.1:DST/".to_string(),
            ],
            false,
        ),
        // A pull with deletions.
        (
            "pull",
            vec!["-aH", "--numeric-ids", "--delete", "127.0.0.1:SRC/", "DST"]
                .into_iter()
                .map(|a| a.replace("SRC", src.arg()))
                .collect(),
            true,
        ),
    ];
    for (name, args, stale) in cases {
        let base = sc.path(&format!("base-{}", name.replace(' ', "-")));
        if stale {
            // An earlier pre-stage pass, then the source moved on.
            clone_tree(&src.root, &base);
            seed_stale(&base);
        } else {
            fs::create_dir_all(&base).unwrap();
        }
        let mut outs = Vec::new();
        for tool in ["rsync", "deltasync"] {
            let dst = sc.path(&format!("{tool}-{}", name.replace(' ', "-")));
            clone_tree(&base, &dst);
            let args: Vec<String> = args.iter().map(|a| a.replace("DST", s(&dst))).collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = |args: &[&str]| match tool {
                "rsync" => real_rsync(&sshd, args),
                _ => ds_rsync(&sshd, args),
            };
            let o = run(&args);
            assert_eq!(code(&o), 0, "{name} with {tool}: {}", stderr(&o));
            if tool == "deltasync" {
                // Running the same command again moves nothing.
                let mut again = args.clone();
                again.insert(0, "--stats");
                let o2 = run(&again);
                assert_eq!(code(&o2), 0, "{name} rerun: {}", stderr(&o2));
                assert_eq!(
                    stat_line(&o2, "Number of regular files transferred: "),
                    0,
                    "{name} rerun: {}",
                    stdout(&o2)
                );
                assert_eq!(stat_line(&o2, "Literal data: "), 0, "{name} rerun");
            }
            // Directories that lost or gained an entry in this run: rsync leaves them at the
            // time of the run (its deletions and DEST's new child come after it set times);
            // deltasync gives them the source's time. Everything else is compared exactly.
            let touched = if stale {
                &[".", "volumes"][..]
            } else {
                &["."][..]
            };
            outs.push(Listing::of(&dst).map(|p, i| {
                if touched.contains(&p) {
                    i.mtime = (0, 0);
                }
            }));
        }
        assert_same(
            &outs[0],
            &outs[1],
            &format!("{name}: rsync vs deltasync rsync"),
        );
    }
}

#[test]
fn rsync_path_is_a_command_and_rsync_rsh_is_honoured() {
    let sc = Scratch::new();
    let sshd = start_sshd(&sc);
    let src = sc.tree("src");
    full_tree(&src);
    let dst = sc.path("dst");
    // `--rsync-path` is a command line, as rsync's is (`sudo rsync` in the wild).
    let o = Command::new(bin_path())
        .env("RSYNC_RSH", sshd.rsh())
        .args(["rsync", "-aH", "--numeric-ids", "--rsync-path"])
        .arg(format!("env DELTASYNC_TEST=1 {}", s(bin_path())))
        .arg(format!("{}/", src.arg()))
        .arg(format!("127.0.0.1:{}", s(&dst)))
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_same(
        &Listing::of(&src.root),
        &Listing::of(&dst),
        "RSYNC_RSH push",
    );

    // A far DEST whose parent is missing: rsync's error 11 without --mkpath, created with it.
    let deep = sc.path("no/such/dst");
    let push = |extra: &[&str]| {
        let mut args = vec!["-a"];
        args.extend_from_slice(extra);
        let from = format!("{}/", src.arg());
        let to = format!("127.0.0.1:{}", s(&deep));
        args.push(&from);
        args.push(&to);
        ds_rsync(&sshd, &args)
    };
    let o = push(&[]);
    assert_eq!(code(&o), 11, "{}", stderr(&o));
    assert!(stderr(&o).contains("--mkpath"), "{}", stderr(&o));
    assert!(!deep.exists());
    let o = push(&["--mkpath"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(deep.join("a.txt").is_file());

    // A missing far source: rsync's partial-transfer code, the far side's reason shown.
    let o = ds_rsync(
        &sshd,
        &[
            "-a",
            &format!("127.0.0.1:{}/", s(&sc.path("nope"))),
            s(&sc.path("d2")),
        ],
    );
    assert_eq!(code(&o), 23, "{}", stderr(&o));
    assert!(stderr(&o).contains("No such file"), "{}", stderr(&o));
    // A far deltasync that is not there: says how to fix it, in this dialect's spelling.
    let o = Command::new(bin_path())
        .args([
            "rsync",
            "-a",
            "-e",
            &sshd.rsh(),
            "--rsync-path",
            "/nonexistent/deltasync",
        ])
        .arg(format!("{}/", src.arg()))
        .arg(format!("127.0.0.1:{}", s(&sc.path("d3"))))
        .output()
        .unwrap();
    assert_ne!(code(&o), 0);
    assert!(stderr(&o).contains("--rsync-path"), "{}", stderr(&o));
}

/// A small tmpfs, unmounted on drop.
struct SmallFs {
    at: std::path::PathBuf,
}

impl SmallFs {
    fn mount(at: &Path, size: &str) -> SmallFs {
        fs::create_dir_all(at).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "the disk-full test mounts a small tmpfs and needs root: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        SmallFs { at: at.to_owned() }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

#[test]
fn a_full_disk_on_the_far_side_keeps_the_old_file() {
    let sc = Scratch::new();
    let sshd = start_sshd(&sc);
    let small = SmallFs::mount(&sc.path("far"), "2m");
    let dst = small.at.join("dst");
    let src = sc.tree("src");
    src.file("mail.dat", data(1, 600_000));
    src.file("small.txt", "small");
    let push = |cmd: &str| {
        Command::new(bin_path())
            .args([cmd, src.arg()])
            .arg(format!("127.0.0.1:{}", s(&dst)))
            .args([
                "-e",
                &sshd.rsh(),
                "--remote-bin",
                s(bin_path()),
                "--no-compress",
            ])
            .output()
            .unwrap()
    };
    let o = push("sync");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let old = fs::read(dst.join("mail.dat")).unwrap();

    // The archive grows past the far side's free space.
    src.replace("mail.dat", data(2, 3 << 20));
    let o = push("sync");
    assert_ne!(code(&o), 0, "a full disk is an error");
    let err = stderr(&o).to_lowercase();
    assert!(
        err.contains("no space left") || err.contains("disk full"),
        "the message says why: {}",
        stderr(&o)
    );
    assert_eq!(
        fs::read(dst.join("mail.dat")).unwrap(),
        old,
        "old file kept"
    );
    let names: Vec<String> = fs::read_dir(&dst)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.contains(".dstmp.")),
        "no temporary left: {names:?}"
    );

    // Space is freed (a smaller archive): the rerun completes.
    src.replace("mail.dat", data(3, 900_000));
    let o = push("sync");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_same(
        &Listing::of(&src.root),
        &Listing::of(&dst),
        "after space was freed",
    );
}
