//! Metadata as `rsync -aH --numeric-ids` keeps it: modes (setuid, setgid, sticky), numeric
//! owners, nanosecond mtimes of files, directories and symlinks (directories' set after their
//! contents), symlinks as symlinks and never followed, hard-link groups, empty directories.

use std::os::unix::fs::MetadataExt;

use crate::util::{assert_same, data, ds_ok, full_tree, Scratch, Tree};

#[test]
fn every_entry_kind_and_its_metadata_arrive_intact() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    full_tree(&src);
    let dst = Tree::existing(sc.path("dst"));
    ds_ok(&["sync", src.arg(), dst.arg()], 0);
    assert_same(
        &src.list(),
        &dst.list(),
        "after a sync into a new destination",
    );
    // Nothing was followed: the links are links, and nothing came from outside the tree.
    assert!(dst.lstat("outside").file_type().is_symlink());
    assert!(dst.lstat("abs-link").file_type().is_symlink());
    assert!(!sc.path("outside-the-tree").exists());
    // A second pass changes nothing.
    let before = dst.list();
    let o = ds_ok(&["sync", "-i", src.arg(), dst.arg()], 0);
    assert_same(&before, &dst.list(), "after a second pass");
    assert!(
        crate::util::stdout(&o).trim().is_empty(),
        "second pass itemized: {}",
        crate::util::stdout(&o)
    );
    // Nor does one comparing contents: hard-linked followers are found linked although their
    // leader's fate waits for its checksum (this once re-linked them on every pass).
    let o = ds_ok(&["sync", "-i", "--checksum", src.arg(), dst.arg()], 0);
    assert_same(&before, &dst.list(), "after a --checksum pass");
    assert!(
        crate::util::stdout(&o).trim().is_empty(),
        "--checksum pass itemized: {}",
        crate::util::stdout(&o)
    );
}

#[test]
fn metadata_only_changes_are_applied_without_rewriting() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    full_tree(&src);
    let dst = Tree::existing(sc.path("dst"));
    ds_ok(&["sync", src.arg(), dst.arg()], 0);
    let ino = dst.lstat("a.txt").ino();
    src.mode("a.txt", 0o4711)
        .owner("a.txt", 999, 998)
        .owner("rel-link", 555, 556)
        .mtime("rel-link", 1_234_567_890, 987_654_321)
        .mode("tmp/sticky", 0o1770)
        .mtime("tmp/sticky", 1_111_111_111, 5)
        .mode("locked", 0o750)
        .mtime("locked", 1_222_222_222, 6)
        .mtime("big.dat", 1_700_000_000, 1);
    let o = ds_ok(&["sync", "-i", src.arg(), dst.arg()], 0);
    assert_same(&src.list(), &dst.list(), "after metadata changes");
    assert_eq!(
        dst.lstat("a.txt").ino(),
        ino,
        "a mode/owner change must not rewrite the file"
    );
    let out = crate::util::stdout(&o);
    assert!(
        out.lines()
            .any(|l| l.starts_with(".f...po") && l.ends_with(" a.txt")),
        "{out}"
    );
}

#[test]
fn hard_link_groups_follow_their_source() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    let dst = Tree::existing(sc.path("dst"));
    src.file("g/a", "one")
        .hardlink("g/b", "g/a")
        .hardlink("g/c", "g/a")
        .file("solo", "solo");
    ds_ok(&["sync", src.arg(), dst.arg()], 0);
    assert_same(&src.list(), &dst.list(), "first pass");

    // The group's content changes (written in place: every name sees it).
    src.file("g/a", "two!").mtime("g/a", 1_650_000_000, 42);
    ds_ok(&["sync", src.arg(), dst.arg()], 0);
    assert_same(
        &src.list(),
        &dst.list(),
        "after the group's content changed",
    );

    // The leader (first in order) is split off; the rest stay linked.
    src.replace("g/a", "new leader");
    ds_ok(&["sync", src.arg(), dst.arg()], 0);
    assert_same(&src.list(), &dst.list(), "after the leader was split off");

    // A new member joins the group, and a former single file joins too.
    src.hardlink("g/d", "g/b");
    src.remove("solo").hardlink("solo", "g/c");
    ds_ok(&["sync", src.arg(), dst.arg()], 0);
    assert_same(&src.list(), &dst.list(), "after members joined");

    // The group is broken up entirely.
    src.replace("g/b", "b alone").replace("g/c", "c alone");
    ds_ok(&["sync", src.arg(), dst.arg()], 0);
    assert_same(&src.list(), &dst.list(), "after the group broke up");
}

#[test]
fn symlinks_in_the_destination_are_never_followed() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    let victim = sc.tree("victim");
    victim.file("precious", "do not touch");
    let dst = sc.tree("dst");
    // The destination holds symlinks where the source has a directory and a file.
    dst.symlink("sub", "../victim")
        .symlink("file", "../victim/precious");
    src.file("sub/precious", "overwritten?")
        .file("file", "replaced");
    for mode in ["copy", "sync"] {
        ds_ok(&[mode, src.arg(), dst.arg()], 0);
        assert_eq!(
            victim.read("precious"),
            b"do not touch",
            "{mode} wrote through a symlink"
        );
        assert_eq!(
            victim.list().files().len(),
            1,
            "{mode} wrote into the link's target"
        );
        assert_same(&src.list(), &dst.list(), mode);
        dst.remove("sub").remove("file");
        dst.symlink("sub", "../victim")
            .symlink("file", "../victim/precious");
    }
}

#[test]
fn directory_times_are_set_after_their_contents() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    let dst = Tree::existing(sc.path("dst"));
    src.file("d/e/f", "x").file("d/g", data(5, 10_000));
    src.mtime("d/e", 1_400_000_000, 1)
        .mtime("d", 1_400_000_001, 2)
        .mtime(".", 1_400_000_002, 3);
    ds_ok(&["copy", src.arg(), dst.arg()], 0);
    assert_same(&src.list(), &dst.list(), "first pass");
    // New entries in existing directories move the directories' times; the pass puts them
    // back to the source's.
    src.file("d/e/new", "n").file("d/new-dir/new", "m");
    src.mtime("d/new-dir", 1_400_000_010, 4)
        .mtime("d/e", 1_400_000_011, 5)
        .mtime("d", 1_400_000_012, 6);
    ds_ok(&["copy", src.arg(), dst.arg()], 0);
    assert_same(&src.list(), &dst.list(), "second pass");
}

#[test]
fn serial_and_parallel_passes_build_the_same_tree() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    full_tree(&src);
    for i in 0..30 {
        src.file(
            &format!("many/{}/f{i}", i % 4),
            data(60 + i, 1000 * i as usize),
        );
    }
    src.mtime("many", 1_300_000_000, 9);
    let serial = Tree::existing(sc.path("serial"));
    let parallel = Tree::existing(sc.path("parallel"));
    ds_ok(&["sync", "--transfers", "1", src.arg(), serial.arg()], 0);
    ds_ok(&["sync", "--transfers", "16", src.arg(), parallel.arg()], 0);
    assert_same(
        &serial.list(),
        &parallel.list(),
        "serial (left) vs parallel (right)",
    );
    assert_same(&src.list(), &parallel.list(), "source vs parallel");
}
