//! Differential tests against the real peers on the same generated trees:
//! - the MailStore guide's three `rclone copy` passes and final `rclone sync`
//!   (cli-semantics.md §2.11), run by rclone and by deltasync on twin destinations with live
//!   changes in between, must select the same files with the same contents;
//! - `rsync -aH --numeric-ids --delete SRC/ DST/` and `deltasync sync SRC DST` must produce
//!   identical trees (contents, modes, owners, mtimes, link targets, hard-link groups), from an
//!   empty destination and from a stale one.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::util::{
    assert_same, data, ds_ok, full_tree, peer, s, stderr, Listing, Scratch, Tree, DAY, HOUR,
};

/// Regular files and their content hashes.
fn contents(l: &Listing) -> BTreeMap<String, u64> {
    l.items
        .iter()
        .filter(|(_, i)| i.kind == 'f')
        .map(|(p, i)| (p.clone(), i.hash))
        .collect()
}

fn show_diff(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> String {
    let mut out = Vec::new();
    for (p, h) in a {
        match b.get(p) {
            None => out.push(format!("only deltasync: {p}")),
            Some(g) if g != h => out.push(format!("content differs: {p}")),
            _ => {}
        }
    }
    for p in b.keys().filter(|p| !a.contains_key(*p)) {
        out.push(format!("only rclone:    {p}"));
    }
    out.join("\n  ")
}

/// A MailStore-like archive: content `.dat` files, `index*` files, live `.fdb` databases, a
/// recovery record, old and young files.
fn mailstore(t: &Tree) {
    let mut n = 0;
    for folder in [
        "MailArchive/2023-11",
        "MailArchive/2024-01",
        "MailArchive/2024-02",
    ] {
        for (name, age) in [
            ("Content1.dat", 40 * DAY),
            ("content2.dat", 3 * DAY),
            ("content3.dat", 2 * HOUR),
            ("index1.dat", 30 * DAY),
            ("Index2.dat", 30 * DAY),
            ("indexes.idx", 5 * DAY),
            ("Folders.fdb", 10 * DAY),
            ("Recovery.rec", 20 * DAY),
            ("UPPER.DAT", 4 * DAY),
        ] {
            n += 1;
            let p = format!("{folder}/{name}");
            t.file(&p, data(100 + n, 1000 + n as usize * 37))
                .age(&p, age);
        }
    }
    t.file("MailArchive/index_dir/z.dat", "under index_dir")
        .age("MailArchive/index_dir/z.dat", 9 * DAY);
    t.file("MailArchive/MailArchive.fdb", data(7, 5000))
        .age("MailArchive/MailArchive.fdb", 10 * DAY);
    t.file("MailArchive/young.fdb", data(8, 500))
        .age("MailArchive/young.fdb", HOUR);
    t.file("Config/settings.xml", "<x/>")
        .age("Config/settings.xml", 50 * DAY);
}

/// Live changes between passes: new young files, growing files, a file getting old.
fn live_changes(t: &Tree, round: u32) {
    let r = round as usize;
    t.file(
        &format!("MailArchive/2024-02/new{round}.dat"),
        data(200 + round, 777 * r),
    )
    .age(
        &format!("MailArchive/2024-02/new{round}.dat"),
        Duration::from_secs(60),
    );
    let mut grown = t.read("MailArchive/2024-02/content3.dat");
    grown.extend_from_slice(&data(300 + round, 100));
    t.file("MailArchive/2024-02/content3.dat", &grown);
    t.file("MailArchive/MailArchive.fdb", data(400 + round, 5000));
    t.file("MailArchive/2024-01/indexes.idx", data(500 + round, 3000));
    // A file written long ago becomes old enough for --min-age.
    t.age("MailArchive/2023-11/content3.dat", 2 * DAY);
}

#[test]
fn mailstore_guide_passes_select_what_rclone_selects() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    mailstore(&src);
    let ours = sc.path("ours");
    let theirs = sc.path("theirs");
    let passes: [(&str, &[&str]); 4] = [
        (
            "copy",
            &[
                "--filter=- index*",
                "--filter=+ *.dat",
                "--filter=- **",
                "--min-age",
                "1d",
            ],
        ),
        ("copy", &["--filter=- *.fdb", "--min-age", "1d"]),
        ("copy", &["--filter=- *.fdb"]),
        ("sync", &[]),
    ];
    for (round, (cmd, flags)) in passes.iter().enumerate() {
        if round == 3 {
            // Gone from the source before the final pass: the sync deletes it on both sides.
            src.remove("MailArchive/2023-11/Recovery.rec");
        }
        let mut a = vec![*cmd, src.arg(), s(&ours)];
        a.extend_from_slice(flags);
        ds_ok(&a, 0);
        let mut r = vec!["--config", "/dev/null", *cmd, src.arg(), s(&theirs)];
        r.extend_from_slice(flags);
        peer(sc.dir.path(), "rclone", &r);
        let (d, c) = (
            contents(&Tree::existing(&ours).list()),
            contents(&Tree::existing(&theirs).list()),
        );
        assert!(
            d == c,
            "pass {} ({cmd} {flags:?}) differs from rclone's:\n  {}",
            round + 1,
            show_diff(&d, &c)
        );
        if round == 0 {
            // The first pass took only old .dat files whose names don't start with "index".
            assert!(
                d.keys()
                    .all(|p| p.ends_with(".dat") && !p.contains("/index1")),
                "{d:?}"
            );
            assert!(d.contains_key("MailArchive/index_dir/z.dat"), "{d:?}");
            assert!(
                !d.contains_key("MailArchive/2024-01/content3.dat"),
                "too young: {d:?}"
            );
        }
        live_changes(&src, round as u32 + 1);
    }
    // The final sync made both equal to the source as it was then (before the last changes).
    let d = contents(&Tree::existing(&ours).list());
    assert!(!d.contains_key("MailArchive/2023-11/Recovery.rec"));
    ds_ok(&["sync", src.arg(), s(&ours)], 0);
    assert_same(
        &src.list(),
        &Tree::existing(&ours).list(),
        "after a last sync",
    );
}

#[test]
fn the_guide_lines_run_exactly_as_written() {
    // The guide's `--filter "- index*"` passes a value starting with '-' as a separate word
    // (clap once read it as a cluster of short flags).
    let sc = Scratch::new();
    let src = sc.tree("src");
    mailstore(&src);
    let dst = sc.path("dst");
    let d = s(&dst);
    for line in [
        vec![
            "copy",
            src.arg(),
            d,
            "--filter",
            "- index*",
            "--filter",
            "+ *.dat",
            "--filter",
            "- **",
            "--min-age",
            "1d",
        ],
        vec![
            "copy",
            src.arg(),
            d,
            "--filter",
            "- *.fdb",
            "--min-age",
            "1d",
        ],
        vec!["copy", src.arg(), d, "--filter", "- *.fdb"],
        vec!["sync", src.arg(), d],
    ] {
        ds_ok(&line, 0);
    }
    assert_same(
        &src.list(),
        &Tree::existing(&dst).list(),
        "after the guide's passes",
    );
}

/// rsync -aH --numeric-ids --delete SRC/ DST/
fn rsync(sc: &Scratch, src: &Tree, dst: &Tree) {
    let from = format!("{}/", src.arg());
    let to = format!("{}/", dst.arg());
    peer(
        sc.dir.path(),
        "rsync",
        &["-aH", "--numeric-ids", "--delete", &from, &to],
    );
}

#[test]
fn sync_builds_the_tree_rsync_builds_from_empty() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    full_tree(&src);
    let ours = Tree::existing(sc.path("ours"));
    let theirs = sc.tree("theirs");
    ds_ok(&["sync", src.arg(), ours.arg()], 0);
    rsync(&sc, &src, &theirs);
    assert_same(
        &theirs.list(),
        &ours.list(),
        "rsync's tree (left) vs deltasync's (right)",
    );
    assert_same(&src.list(), &ours.list(), "source vs deltasync's tree");
}

#[test]
fn sync_builds_the_tree_rsync_builds_from_a_stale_destination() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    full_tree(&src);
    let stale = sc.tree("stale");
    rsync(&sc, &src, &stale);
    // The destination drifts: extras of every kind, modified files, changed metadata, kinds
    // swapped, a broken hard-link group.
    stale
        .file("extra-file", "x")
        .file("extra-dir/deep/f", "y")
        .symlink("extra-link", "a.txt")
        .file("a.txt", data(50, 2000))
        .file("big.dat", data(51, 300_000))
        .mode("private", 0o644)
        .owner("bin/setuid", 1, 1)
        .remove("rel-link")
        .file("rel-link", "now a file")
        .remove("empty/deeper")
        .file("empty/deeper", "now a file")
        .remove("mail/cur/1-link")
        .file("mail/cur/1-link", "broken link group")
        .remove("tmp/sticky")
        .symlink("tmp/sticky", "/tmp");
    // The source moves on too.
    src.file("mail/new/2", "message two")
        .replace("h/y", "split from h/x")
        .file("bin/setgid", data(52, 100))
        .mtime("bin/setgid", 1_690_000_000, 123)
        .mtime("mail/new", 1_690_000_001, 456)
        .mtime("h", 1_690_000_002, 789)
        .mtime("bin", 1_690_000_003, 1)
        .mtime(".", 1_690_000_004, 2);
    let ours = Tree::existing(sc.path("ours"));
    let theirs = Tree::existing(sc.path("theirs"));
    peer(sc.dir.path(), "cp", &["-a", stale.arg(), ours.arg()]);
    peer(sc.dir.path(), "cp", &["-a", stale.arg(), theirs.arg()]);
    assert_same(&stale.list(), &ours.list(), "cp -a copy of the stale tree");
    let o = ds_ok(&["sync", src.arg(), ours.arg()], 0);
    rsync(&sc, &src, &theirs);
    assert_same(
        &theirs.list(),
        &ours.list(),
        "rsync's tree (left) vs deltasync's (right)",
    );
    assert_same(&src.list(), &ours.list(), "source vs deltasync's tree");
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}
