//! How files move and what a pass says: `--inplace`, delta updates, dry runs (which change
//! nothing), itemized lines, `--stats`, `--json`, `check`, and every exit code.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use crate::util::{assert_same, code, data, ds, ds_ok, full_tree, stderr, stdout, Scratch, Tree};

/// `--stats`' "Literal data: N bytes, matched data: M bytes".
fn literal_and_matched(out: &str) -> (u64, u64) {
    let line = out
        .lines()
        .find(|l| l.starts_with("Literal data:"))
        .unwrap_or_else(|| panic!("no literal line in:\n{out}"));
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

/// A 4 MiB file and a version of it with one changed 1000-byte stretch and 100 bytes appended.
fn old_and_new() -> (Vec<u8>, Vec<u8>) {
    let old = data(11, 4 << 20);
    let mut new = old.clone();
    new[2_000_000..2_001_000].copy_from_slice(&data(12, 1000));
    new.extend_from_slice(&data(13, 100));
    (old, new)
}

#[test]
fn inplace_rewrites_changed_blocks_in_the_same_file() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    let dst = sc.tree("dst");
    let (old, new) = old_and_new();
    dst.file("db.fdb", &old).file("shrinks", data(14, 500_000));
    src.file("db.fdb", &new)
        .file("shrinks", &data(14, 500_000)[..300_000]);
    let inos = (dst.lstat("db.fdb").ino(), dst.lstat("shrinks").ino());
    let o = ds_ok(&["copy", "--inplace", "--stats", src.arg(), dst.arg()], 0);
    assert_same(&src.list(), &dst.list(), "after an in-place pass");
    assert_eq!(
        (dst.lstat("db.fdb").ino(), dst.lstat("shrinks").ino()),
        inos,
        "--inplace must keep the files"
    );
    let (literal, matched) = literal_and_matched(&stdout(&o));
    assert!(
        literal < 1 << 20,
        "in place rewrote {literal} bytes of {}",
        new.len()
    );
    assert!(matched >= 3 << 20, "matched only {matched} bytes");
}

#[test]
fn a_small_change_to_a_large_file_moves_little_by_delta() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    let dst = sc.tree("dst");
    let (old, new) = old_and_new();
    dst.file("big.dat", &old);
    src.file("big.dat", &new);
    let ino = dst.lstat("big.dat").ino();
    let o = ds_ok(
        &["copy", "--no-whole-file", "--stats", src.arg(), dst.arg()],
        0,
    );
    assert_same(&src.list(), &dst.list(), "after a delta pass");
    assert_ne!(
        dst.lstat("big.dat").ino(),
        ino,
        "a delta update replaces the file atomically"
    );
    let (literal, matched) = literal_and_matched(&stdout(&o));
    assert!(
        literal * 20 < new.len() as u64,
        "literal {literal} bytes is not much less than {}",
        new.len()
    );
    assert!(matched > 0);
    assert!(stdout(&o).contains("Speedup:"), "{}", stdout(&o));
    // The whole-file default moves everything.
    src.file("big.dat", &old);
    let o = ds_ok(&["copy", "--stats", src.arg(), dst.arg()], 0);
    assert_eq!(literal_and_matched(&stdout(&o)), (old.len() as u64, 0));
    assert_same(&src.list(), &dst.list(), "after a whole-file pass");
}

/// A source and a stale destination: new, changed, large-changed, extra and excluded entries.
fn stale_pair(sc: &Scratch) -> (Tree, Tree) {
    let src = sc.tree("src");
    full_tree(&src);
    let dst = Tree::existing(sc.path("dst"));
    ds_ok(&["sync", src.arg(), dst.arg()], 0);
    let (old, new) = old_and_new();
    dst.file("large", &old).mtime("large", 1_600_000_000, 1);
    src.file("large", &new)
        .file("new-file", data(20, 1234))
        .file("new-dir/inner", "x")
        .file("a.txt", data(21, 3333));
    dst.file("extra", "extra").file("extra-dir/f", "f");
    (src, dst)
}

#[test]
fn dry_runs_change_nothing_and_say_what_would_happen() {
    let sc = Scratch::new();
    let (src, dst) = stale_pair(&sc);
    let (src_before, dst_before) = (src.list(), dst.list());
    for mode in ["copy", "sync"] {
        let o = ds_ok(&[mode, "-n", "--no-whole-file", src.arg(), dst.arg()], 0);
        assert_same(
            &src_before,
            &src.list(),
            &format!("source after a dry {mode}"),
        );
        assert_same(
            &dst_before,
            &dst.list(),
            &format!("destination after a dry {mode}"),
        );
        let out = stdout(&o);
        assert!(
            out.contains("would create new-file (1234 bytes)"),
            "{mode}: {out}"
        );
        assert!(
            out.contains("would create directory new-dir/"),
            "{mode}: {out}"
        );
        assert!(
            out.contains("would update a.txt (3333 of 3333 bytes would move)"),
            "{mode}: {out}"
        );
        // The estimate for the large file counts only what the delta would send.
        let line = out
            .lines()
            .find(|l| l.starts_with("would update large ("))
            .unwrap_or_else(|| panic!("{mode}: no update line for large:\n{out}"));
        let moved: u64 = line["would update large (".len()..]
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            moved < 1 << 20,
            "{mode}: estimate {moved} for a 1000-byte change: {line}"
        );
        assert!(out.contains("dry run: would copy"), "{mode}: {out}");
        let deletes = out
            .lines()
            .filter(|l| l.starts_with("would delete"))
            .count();
        if mode == "sync" {
            assert!(out.contains("would delete extra\n"), "{out}");
            assert!(out.contains("would delete extra-dir/"), "{out}");
            assert_eq!(deletes, 3, "{out}");
        } else {
            assert_eq!(deletes, 0, "copy never deletes: {out}");
        }
    }
    // A dry run into a missing destination does not create it.
    let missing = sc.path("missing");
    ds_ok(&["sync", "-n", src.arg(), crate::util::s(&missing)], 0);
    assert!(!missing.exists(), "a dry run created the destination");
    // The same pass for real does what the dry run said.
    ds_ok(&["sync", src.arg(), dst.arg()], 0);
    assert_same(&src.list(), &dst.list(), "after the real pass");
}

#[test]
fn itemized_lines_use_rsync_format() {
    let sc = Scratch::new();
    let (src, dst) = stale_pair(&sc);
    src.mode("private", 0o640);
    let o = ds_ok(&["sync", "-i", src.arg(), dst.arg()], 0);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    for want in [
        ">f+++++++++ new-file",
        "cd+++++++++ new-dir/",
        ">f+++++++++ new-dir/inner",
        ">f.st...... a.txt",
        ">f.st...... large",
        ".f...p..... private",
        "*deleting   extra",
        "*deleting   extra-dir/",
        "*deleting   extra-dir/f",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(want) && l.len() == want.len()),
            "missing {want:?} in:\n{out}"
        );
    }
    // A new tree shows links and hard links with their targets.
    let fresh = sc.path("fresh");
    let o = ds_ok(&["sync", "-i", src.arg(), crate::util::s(&fresh)], 0);
    let out = stdout(&o);
    for want in [
        "cL+++++++++ rel-link -> a.txt",
        "hf+++++++++ mail/cur/1-link => mail/cur/1",
        "cd+++++++++ empty/deeper/",
    ] {
        assert!(
            out.lines().any(|l| l == want),
            "missing {want:?} in:\n{out}"
        );
    }
    assert!(!out.contains('\x1b'), "escape codes when not on a terminal");
    assert!(
        !stderr(&o).contains('\x1b'),
        "escape codes when not on a terminal"
    );
}

#[test]
fn json_reports_parse() {
    let sc = Scratch::new();
    let (src, dst) = stale_pair(&sc);
    for args in [
        vec!["sync", "--json", "-n", "-v", "-i"],
        vec!["sync", "--json", "--max-delete", "1"],
        vec!["check", "--json"],
    ] {
        let mut a = args.clone();
        a.extend([src.arg(), dst.arg()]);
        let o = ds(&a);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}):\n{}", stdout(&o)));
        let outcome = v["outcome"].as_str().unwrap_or_default();
        let stats = &v["stats"];
        match args[1..] {
            ["--json", "-n", ..] => {
                assert_eq!((code(&o), outcome), (0, "success"), "{v}");
                assert_eq!(v["dry_run"], true);
                assert_eq!(stats["deleted"], 3, "{v}");
                assert_eq!(stats["files_created"], 2, "{v}");
            }
            ["--json", "--max-delete", _] => {
                assert_eq!((code(&o), outcome), (25, "deletions-stopped"), "{v}");
                assert_eq!(stats["deleted"], 1, "{v}");
                assert!(
                    v["deletions_stopped"]
                        .as_str()
                        .unwrap()
                        .contains("max-delete"),
                    "{v}"
                );
            }
            _ => {
                assert_eq!((code(&o), outcome), (1, "differences"), "{v}");
                assert!(stats["extra"].as_u64().unwrap() >= 1, "{v}");
            }
        }
        for key in [
            "source_entries",
            "literal_bytes",
            "matched_bytes",
            "errors",
            "elapsed",
        ] {
            assert!(stats.get(key).is_some(), "{args:?}: no stats.{key} in {v}");
        }
    }
}

#[test]
fn check_reports_missing_extra_and_differing() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    full_tree(&src);
    let dst = Tree::existing(sc.path("dst"));
    ds_ok(&["sync", src.arg(), dst.arg()], 0);
    let o = ds_ok(&["check", src.arg(), dst.arg()], 0);
    assert!(
        stdout(&o)
            .contains("0 missing from the destination, 0 only in the destination, 0 differing"),
        "{}",
        stdout(&o)
    );
    ds_ok(&["check", "--checksum", src.arg(), dst.arg()], 0);

    // Same size and mtime, other content: only --checksum sees it.
    let mtime = dst.lstat("a.txt").modified().unwrap();
    let mut other = dst.read("a.txt");
    other[10] ^= 0xff;
    dst.file("a.txt", &other);
    std::fs::File::open(dst.path("a.txt"))
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_modified(mtime))
        .unwrap();
    ds_ok(&["check", src.arg(), dst.arg()], 0);
    let o = ds_ok(&["check", "--checksum", src.arg(), dst.arg()], 1);
    assert!(stdout(&o).contains("a.txt: differs"), "{}", stdout(&o));

    src.file("only-src", "s");
    dst.file("only-dst", "d").file("private", "other size");
    let before = dst.list();
    let o = ds_ok(&["check", src.arg(), dst.arg()], 1);
    let out = stdout(&o);
    for want in [
        "only-src: missing from the destination",
        "only-dst: only in the destination",
        "private: differs",
        "1 missing from the destination, 1 only in the destination, 1 differing",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert_same(&before, &dst.list(), "check changed the destination");
}

#[test]
fn exit_codes() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    let dst = sc.tree("dst");
    src.file("f", "f").file("g", "g");
    // 1: usage errors and passes that cannot start.
    let o = ds_ok(&["copy", "--no-such-flag", src.arg(), dst.arg()], 1);
    assert!(stderr(&o).contains("no-such-flag"), "{}", stderr(&o));
    ds_ok(&["copy", src.arg()], 1);
    ds_ok(&["copy", "--filter=* bad rule", src.arg(), dst.arg()], 1);
    ds_ok(
        &["copy", "--min-age", "yesterday-ish", src.arg(), dst.arg()],
        1,
    );
    ds_ok(
        &["copy", "--checksum", "--size-only", src.arg(), dst.arg()],
        1,
    );
    ds_ok(&["copy", crate::util::s(&sc.path("nope")), dst.arg()], 1);
    ds_ok(&["copy", src.arg(), crate::util::s(&src.path("inside"))], 1);
    // 0.
    ds_ok(&["copy", src.arg(), dst.arg()], 0);
    // 23: an entry failed (copy does not replace a directory standing where a file goes).
    src.file("h", "h");
    dst.remove("f").file("f/blocker", "x");
    let o = ds_ok(&["copy", src.arg(), dst.arg()], 23);
    assert!(
        stderr(&o).contains("f: a directory is in the way"),
        "{}",
        stderr(&o)
    );
    assert_eq!(dst.read("h"), b"h", "the rest of the pass goes on");
    // 25: --max-delete (sync replaces the directory; one more extra to delete).
    dst.file("x1", "x").file("x2", "x");
    ds_ok(&["sync", "--max-delete", "1", src.arg(), dst.arg()], 25);
    ds_ok(&["sync", src.arg(), dst.arg()], 0);
    assert_same(&src.list(), &dst.list(), "after sync");
}

#[test]
fn a_file_that_vanishes_mid_pass_gives_exit_24() {
    // The first file is big and fsynced by the single transfer worker; when its temporary
    // appears, the small file after it (already listed) is deleted from the source.
    let mut last = String::new();
    for attempt in 0..3 {
        let sc = Scratch::new();
        let src = sc.tree("src");
        let dst = sc.tree("dst");
        src.file("a.big", data(30, (32 << 20) << attempt))
            .file("z.small", "z");
        let mut child = std::process::Command::new(crate::util::bin())
            .args(["copy", "--transfers", "1", "--fsync", src.arg(), dst.arg()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let mut deleted = false;
        while started.elapsed() < Duration::from_secs(10) {
            // Writing a.big: the child has a file open beneath the destination (an unnamed
            // one shows as `DST/#N (deleted)`, a named temporary as `DST/.a.big.dstmp.X`).
            let under = format!("{}/", dst.root.display());
            let busy = std::fs::read_dir(format!("/proc/{}/fd", child.id()))
                .map(|d| {
                    d.filter_map(Result::ok).any(|e| {
                        std::fs::read_link(e.path())
                            .is_ok_and(|t| t.to_string_lossy().starts_with(&under))
                    })
                })
                .unwrap_or(false);
            if busy {
                src.remove("z.small");
                deleted = true;
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let o = child.wait_with_output().unwrap();
        if !deleted || dst.exists("z.small") {
            last = format!("attempt {attempt}: the pass was too quick to race");
            continue;
        }
        assert_eq!(code(&o), 24, "stderr: {}", stderr(&o));
        assert!(stderr(&o).contains("z.small: vanished"), "{}", stderr(&o));
        assert_eq!(dst.read("a.big").len(), (32 << 20) << attempt);
        return;
    }
    panic!("{last}");
}
