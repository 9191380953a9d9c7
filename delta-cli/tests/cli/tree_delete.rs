//! Deleting (sync): extras go only after the transfers, and not at all after an error or an
//! unreadable source entry; excluded destination entries stay unless `--delete-excluded`;
//! `--max-delete`; the rails against an empty source or deleting most of the destination,
//! and `--force-delete`.

use std::collections::BTreeSet;
use std::process::Command;

use crate::util::{assert_same, bin, code, ds_ok, peer, stderr, stdout, Scratch, Tree, DAY, HOUR};

/// A destination with the source's four files plus `extras`.
fn trees(sc: &Scratch, extras: &[&str]) -> (Tree, Tree) {
    let src = sc.tree("src");
    let dst = sc.tree("dst");
    for (i, p) in ["a.txt", "b.txt", "d/c.txt", "d/e.txt"].iter().enumerate() {
        src.file(p, format!("source {i}"));
        dst.file(p, "stale");
    }
    for p in extras {
        dst.file(p, "extra");
    }
    (src, dst)
}

fn set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

#[test]
fn sync_deletes_extras_after_every_transfer() {
    let sc = Scratch::new();
    let (src, dst) = trees(&sc, &["x.txt", "d/y.txt", "old/z.txt"]);
    let o = ds_ok(&["sync", "-v", "--transfers", "2", src.arg(), dst.arg()], 0);
    assert_eq!(dst.list().files(), src.list().files());
    assert!(
        !dst.exists("old"),
        "an extra directory goes with its contents"
    );
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    let last_copy = lines
        .iter()
        .rposition(|l| l.contains(": updated") || l.contains(": copied"));
    let first_delete = lines.iter().position(|l| l.contains(": deleted"));
    let (Some(last_copy), Some(first_delete)) = (last_copy, first_delete) else {
        panic!("expected transfer and deletion lines:\n{out}");
    };
    assert!(
        last_copy < first_delete,
        "a deletion was reported before the last transfer:\n{out}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains(": deleted")).count(),
        4,
        "{out}"
    );
}

/// Makes a file immutable (even root cannot replace it) until dropped.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn new(p: std::path::PathBuf) -> Immutable {
        crate::util::require("chattr");
        let st = Command::new("chattr").arg("+i").arg(&p).status().unwrap();
        assert!(st.success(), "chattr +i {}", p.display());
        Immutable(p)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn no_deletion_after_a_failed_transfer() {
    let sc = Scratch::new();
    let (src, dst) = trees(&sc, &["x.txt"]);
    let _guard = Immutable::new(dst.path("b.txt"));
    let o = ds_ok(&["sync", src.arg(), dst.arg()], 23);
    assert!(
        dst.exists("x.txt"),
        "deleted an extra although a transfer failed"
    );
    assert!(
        stderr(&o).contains("b.txt"),
        "the failure names the file: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("not deleting"), "{}", stderr(&o));
    assert_eq!(
        dst.read("a.txt"),
        b"source 0",
        "the other files are still transferred"
    );
}

#[test]
fn no_deletion_when_part_of_the_source_is_unreadable() {
    crate::util::require("setpriv");
    let sc = Scratch::new();
    let (src, dst) = trees(&sc, &["x.txt"]);
    src.file("locked/secret", "s");
    dst.file("locked/secret", "s");
    src.mode("locked", 0o000);
    // Tests run as root, which reads anything: drop the capabilities that bypass permissions.
    let o = Command::new("setpriv")
        .args(["--bounding-set=-dac_override,-dac_read_search", "--"])
        .arg(bin())
        .args(["sync", src.arg(), dst.arg()])
        .output()
        .unwrap();
    src.mode("locked", 0o755);
    assert_eq!(code(&o), 23, "stderr: {}", stderr(&o));
    assert!(stderr(&o).contains("locked"), "{}", stderr(&o));
    assert!(
        dst.exists("x.txt"),
        "deleted an extra although the source was not fully read"
    );
    assert!(
        dst.exists("locked/secret"),
        "deleted what it could not see in the source"
    );
    assert_eq!(
        dst.read("a.txt"),
        b"source 0",
        "the readable part is still copied"
    );
}

#[test]
fn excluded_destination_entries_stay_unless_delete_excluded() {
    let sc = Scratch::new();
    let (src, dst) = trees(&sc, &["extra.txt", "stale.fdb"]);
    src.file("live.fdb", "db");
    // rclone does the same on an identical copy of the destination.
    peer(
        sc.dir.path(),
        "cp",
        &["-a", dst.arg(), crate::util::s(&sc.path("rdst"))],
    );
    let rdst = Tree::existing(sc.path("rdst"));
    ds_ok(&["sync", "--filter=- *.fdb", src.arg(), dst.arg()], 0);
    let rargs = [
        "--config",
        "/dev/null",
        "sync",
        "--filter",
        "- *.fdb",
        src.arg(),
        rdst.arg(),
    ];
    peer(sc.dir.path(), "rclone", &rargs);
    let want = set(&["a.txt", "b.txt", "d/c.txt", "d/e.txt", "stale.fdb"]);
    assert_eq!(
        dst.list().files(),
        want,
        "excluded stale.fdb must stay, extra.txt must go"
    );
    assert_eq!(
        rdst.list().files(),
        want,
        "rclone disagrees with this expectation"
    );
    ds_ok(
        &[
            "sync",
            "--filter=- *.fdb",
            "--delete-excluded",
            src.arg(),
            dst.arg(),
        ],
        0,
    );
    assert!(
        !dst.exists("stale.fdb"),
        "--delete-excluded must delete excluded entries"
    );
    assert!(
        !dst.exists("live.fdb"),
        "excluded source files are still not copied"
    );
}

#[test]
fn ages_hide_destination_files_from_deletion_as_rclone_does() {
    let sc = Scratch::new();
    let (src, dst) = trees(&sc, &[]);
    dst.file("young-extra", "y").age("young-extra", HOUR);
    dst.file("old-extra", "o").age("old-extra", 3 * DAY);
    for p in ["a.txt", "b.txt", "d/c.txt", "d/e.txt"] {
        src.age(p, 2 * DAY);
    }
    peer(
        sc.dir.path(),
        "cp",
        &["-a", dst.arg(), crate::util::s(&sc.path("rdst"))],
    );
    let rdst = Tree::existing(sc.path("rdst"));
    ds_ok(&["sync", "--min-age", "1d", src.arg(), dst.arg()], 0);
    let rargs = [
        "--config",
        "/dev/null",
        "sync",
        "--min-age",
        "1d",
        src.arg(),
        rdst.arg(),
    ];
    peer(sc.dir.path(), "rclone", &rargs);
    let want = set(&["a.txt", "b.txt", "d/c.txt", "d/e.txt", "young-extra"]);
    assert_eq!(dst.list().files(), want);
    assert_eq!(
        rdst.list().files(),
        want,
        "rclone disagrees with this expectation"
    );
}

#[test]
fn max_delete_stops_after_n_deletions_with_exit_25() {
    let sc = Scratch::new();
    let (src, dst) = trees(&sc, &["x1", "x2", "x3"]);
    let o = ds_ok(&["sync", "--max-delete", "2", src.arg(), dst.arg()], 25);
    let left = ["x1", "x2", "x3"].iter().filter(|p| dst.exists(p)).count();
    assert_eq!(left, 1, "exactly 2 of 3 deletions are done");
    assert!(stderr(&o).contains("max-delete"), "{}", stderr(&o));
    assert_eq!(dst.read("a.txt"), b"source 0", "transfers are done");
    let o = ds_ok(&["sync", "--max-delete", "0", src.arg(), dst.arg()], 25);
    assert_eq!(
        ["x1", "x2", "x3"].iter().filter(|p| dst.exists(p)).count(),
        1,
        "{}",
        stderr(&o)
    );
    ds_ok(&["sync", "--max-delete", "1", src.arg(), dst.arg()], 0);
    assert_eq!(dst.list().files(), src.list().files());
}

#[test]
fn an_empty_source_deletes_nothing_without_force() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    let dst = sc.tree("dst");
    dst.file("keep/a", "a").file("b", "b");
    // The root's own metadata is synced like any directory's; the entries below must stay.
    let below = |t: &Tree| t.list().without(|p, _| p == ".");
    let before = below(&dst);
    let o = ds_ok(&["sync", src.arg(), dst.arg()], 25);
    assert!(stderr(&o).contains("source is empty"), "{}", stderr(&o));
    assert_same(
        &below(&dst),
        &before,
        "after a refused sync from an empty source",
    );
    // A missing source is an error before anything happens.
    let o = ds_ok(&["sync", crate::util::s(&sc.path("nope")), dst.arg()], 1);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    assert_same(&below(&dst), &before, "after a sync from a missing source");
    ds_ok(&["sync", "--force-delete", src.arg(), dst.arg()], 0);
    assert!(
        dst.list().paths().is_empty(),
        "--force-delete empties the destination"
    );
}

#[test]
fn deleting_more_than_half_is_refused_without_force() {
    let sc = Scratch::new();
    let (src, dst) = trees(&sc, &["x1", "x2", "x3", "x4", "old/x5", "old/x6"]);
    // 4 source files + dir d; destination: those + 6 extra files + dir old = 12 entries,
    // 7 of which would go.
    let o = ds_ok(&["sync", src.arg(), dst.arg()], 25);
    assert!(stderr(&o).contains("more than half"), "{}", stderr(&o));
    assert!(
        dst.exists("x1") && dst.exists("old/x6"),
        "nothing may be deleted"
    );
    assert_eq!(dst.read("a.txt"), b"source 0", "transfers are still done");
    ds_ok(&["sync", "--force-delete", src.arg(), dst.arg()], 0);
    assert_eq!(dst.list().paths(), src.list().paths());
}

#[test]
fn directories_replaced_by_files_are_not_errors_or_deletions() {
    // The destination walk reads ahead: a directory the pass removes to put a file in its
    // place may be listed before or after the removal. Neither is an error (which would
    // block deletions), and its old contents count against no deletion limit.
    let sc = Scratch::new();
    let src = sc.tree("src");
    let dst = sc.tree("dst");
    for i in 0..40 {
        src.file(&format!("e{i:02}"), "now a file");
        for j in 0..3 {
            dst.file(&format!("e{i:02}/sub/f{j}"), "old");
        }
    }
    dst.file("extra", "x");
    let o = ds_ok(&["sync", "--max-delete", "1", src.arg(), dst.arg()], 0);
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    assert_same(
        &src.list(),
        &dst.list(),
        "after replacing directories by files",
    );
}
