//! Which files a pass selects and which it skips: every filter form of rclone's spelling, the
//! age filters, the quick check, `--checksum` and `--size-only`. Each selection is also made
//! by the real `rclone copy` with the same flags, and both must pick the same files.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use crate::util::{ds_ok, peer, Scratch, Tree, DAY, HOUR};

/// The tree of cli-semantics.md §2.2 (verified against rclone there), plus a few more names.
fn guide_tree(sc: &Scratch) -> Tree {
    let t = sc.tree("src");
    for (p, c) in [
        ("a.dat", "a"),
        ("index1.dat", "i1"),
        ("Index1.dat", "I1"),
        ("fg1/x.dat", "x"),
        ("fg1/index.dat", "ix"),
        ("fg1/db.fdb", "db"),
        ("fg1/sub/y.DAT", "y"),
        ("fg1/sub/indexes.txt", "it"),
        ("index_dir/z.dat", "z"),
        ("Index/w.dat", "w"),
        ("ab.dat", "ab"),
    ] {
        t.file(p, c);
    }
    t
}

fn set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

/// Copies `src` with `flags` by deltasync and by rclone into fresh destinations; returns the
/// regular files each one ended up with.
fn select(
    sc: &Scratch,
    src: &Tree,
    tag: &str,
    flags: &[&str],
) -> (BTreeSet<String>, BTreeSet<String>) {
    let d = sc.path(&format!("ds-{tag}"));
    let r = sc.path(&format!("rc-{tag}"));
    let mut args = vec!["copy", src.arg(), crate::util::s(&d)];
    args.extend_from_slice(flags);
    ds_ok(&args, 0);
    let mut rargs = vec![
        "--config",
        "/dev/null",
        "copy",
        src.arg(),
        crate::util::s(&r),
    ];
    rargs.extend_from_slice(flags);
    peer(sc.dir.path(), "rclone", &rargs);
    (files_of(&d), files_of(&r))
}

/// The regular files under `p`; none when it does not exist (rclone creates nothing when
/// nothing is selected).
fn files_of(p: &std::path::Path) -> BTreeSet<String> {
    if p.exists() {
        Tree::existing(p).list().files()
    } else {
        BTreeSet::new()
    }
}

#[test]
fn every_filter_form_selects_what_rclone_selects() {
    let sc = Scratch::new();
    let src = guide_tree(&sc);
    std::fs::write(
        sc.path("filter-rules"),
        "# the guide's first pass\n; also a comment\n- index*\n+ *.dat\n- **\n",
    )
    .unwrap();
    std::fs::write(sc.path("include-list"), "# comment\n*.fdb\nsub/**\n").unwrap();
    std::fs::write(sc.path("exclude-list"), "fg1/**\n/a.dat\n").unwrap();
    let filter_from = crate::util::s(&sc.path("filter-rules")).to_string();
    let include_from = crate::util::s(&sc.path("include-list")).to_string();
    let exclude_from = crate::util::s(&sc.path("exclude-list")).to_string();
    let all = src.list().files();
    let minus = |drop: &[&str]| -> BTreeSet<String> {
        all.iter()
            .filter(|p| !drop.contains(&p.as_str()))
            .cloned()
            .collect()
    };
    let guide = set(&[
        "a.dat",
        "ab.dat",
        "Index1.dat",
        "fg1/x.dat",
        "index_dir/z.dat",
        "Index/w.dat",
    ]);
    let cases: Vec<(&str, Vec<&str>, BTreeSet<String>)> = vec![
        (
            "filter",
            vec!["--filter=- index*", "--filter=+ *.dat", "--filter=- **"],
            guide.clone(),
        ),
        (
            "filter-from",
            vec!["--filter-from", &filter_from],
            guide.clone(),
        ),
        (
            "include",
            vec!["--include", "*.dat"],
            set(&[
                "a.dat",
                "ab.dat",
                "index1.dat",
                "Index1.dat",
                "fg1/x.dat",
                "fg1/index.dat",
                "index_dir/z.dat",
                "Index/w.dat",
            ]),
        ),
        (
            "include-from",
            vec!["--include-from", &include_from],
            set(&["fg1/db.fdb", "fg1/sub/y.DAT", "fg1/sub/indexes.txt"]),
        ),
        (
            "exclude",
            vec!["--exclude", "*.dat"],
            set(&["fg1/db.fdb", "fg1/sub/y.DAT", "fg1/sub/indexes.txt"]),
        ),
        (
            "exclude-from",
            vec!["--exclude-from", &exclude_from],
            set(&[
                "ab.dat",
                "index1.dat",
                "Index1.dat",
                "index_dir/z.dat",
                "Index/w.dat",
            ]),
        ),
        // A leading slash anchors at the root; without it the name matches at any depth.
        (
            "anchored",
            vec!["--exclude", "/index*"],
            minus(&["index1.dat"]),
        ),
        (
            "unanchored",
            vec!["--exclude", "index*"],
            minus(&["index1.dat", "fg1/index.dat", "fg1/sub/indexes.txt"]),
        ),
        // `*` stops at a slash, `**` crosses it.
        (
            "star",
            vec!["--exclude", "fg1/*"],
            minus(&["fg1/x.dat", "fg1/index.dat", "fg1/db.fdb"]),
        ),
        (
            "double-star",
            vec!["--include", "fg1/**"],
            set(&[
                "fg1/x.dat",
                "fg1/index.dat",
                "fg1/db.fdb",
                "fg1/sub/y.DAT",
                "fg1/sub/indexes.txt",
            ]),
        ),
        (
            "question",
            vec!["--include", "?.dat"],
            set(&["a.dat", "fg1/x.dat", "index_dir/z.dat", "Index/w.dat"]),
        ),
        (
            "class",
            vec!["--include", "[aw]*.dat"],
            set(&["a.dat", "ab.dat", "Index/w.dat"]),
        ),
        // Classes are Go regexp classes, as rclone copies them: `[^...]` negates, while in
        // `[!a-z]` the `!` is just one more member (checked against rclone 1.60).
        (
            "negated-class",
            vec!["--include", "[^a-z]*"],
            set(&["Index1.dat"]),
        ),
        (
            "bang-class",
            vec!["--include", "[!a-z]*"],
            minus(&["Index1.dat"]),
        ),
        (
            "braces",
            vec!["--include", "*.{fdb,txt}"],
            set(&["fg1/db.fdb", "fg1/sub/indexes.txt"]),
        ),
        // A rule ending in `/` is a directory rule: the whole subtree goes.
        (
            "dir-rule",
            vec!["--exclude", "fg1/"],
            minus(&[
                "fg1/x.dat",
                "fg1/index.dat",
                "fg1/db.fdb",
                "fg1/sub/y.DAT",
                "fg1/sub/indexes.txt",
            ]),
        ),
        (
            "dir-rule-any-depth",
            vec!["--exclude", "sub/"],
            minus(&["fg1/sub/y.DAT", "fg1/sub/indexes.txt"]),
        ),
        // A file rule does not apply to directories: `index_dir/z.dat` stays.
        (
            "file-rule-not-dirs",
            vec!["--filter=- index*", "--filter=- Index*"],
            minus(&[
                "index1.dat",
                "Index1.dat",
                "fg1/index.dat",
                "fg1/sub/indexes.txt",
            ]),
        ),
        (
            "ignore-case",
            vec![
                "--ignore-case",
                "--filter=- index*",
                "--filter=+ *.dat",
                "--filter=- **",
            ],
            set(&[
                "a.dat",
                "ab.dat",
                "fg1/x.dat",
                "fg1/sub/y.DAT",
                "index_dir/z.dat",
                "Index/w.dat",
            ]),
        ),
        // rclone orders rules by flag type (includes, excludes, filters), not by position;
        // first match wins; --include adds an implied `- **` at the very end.
        (
            "type-order",
            vec![
                "--filter=- a.dat",
                "--include",
                "*.dat",
                "--exclude",
                "ab.dat",
            ],
            set(&[
                "a.dat",
                "ab.dat",
                "index1.dat",
                "Index1.dat",
                "fg1/x.dat",
                "fg1/index.dat",
                "index_dir/z.dat",
                "Index/w.dat",
            ]),
        ),
        (
            "clear",
            vec!["--filter=- *.dat", "--filter=!", "--filter=- *.fdb"],
            minus(&["fg1/db.fdb"]),
        ),
    ];
    let mut failures = Vec::new();
    for (tag, flags, want) in &cases {
        let (ours, rclone) = select(&sc, &src, tag, flags);
        if &ours != want || ours != rclone {
            failures.push(format!(
                "{tag} {flags:?}:\n    deltasync {ours:?}\n    rclone    {rclone:?}\n    expected  {want:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "selections differ:\n  {}",
        failures.join("\n  ")
    );
}

/// A tree whose files have known ages.
fn aged_tree(sc: &Scratch) -> Tree {
    let t = sc.tree("src");
    t.file("week.dat", "8 days")
        .age("week.dat", 8 * DAY)
        .file("old/three.dat", "3 days")
        .age("old/three.dat", 3 * DAY)
        .file("hours.dat", "2 hours")
        .age("hours.dat", 2 * HOUR)
        .file("new/minutes.dat", "10 minutes")
        .age("new/minutes.dat", Duration::from_secs(600))
        .file("y2019.dat", "2019")
        .mtime("y2019.dat", 1_559_347_200, 123_456_789); // 2019-06-01
    t
}

#[test]
fn ages_select_what_rclone_selects() {
    let sc = Scratch::new();
    let src = aged_tree(&sc);
    let cases: Vec<(&str, Vec<&str>, BTreeSet<String>)> = vec![
        (
            "min-1d",
            vec!["--min-age", "1d"],
            set(&["week.dat", "old/three.dat", "y2019.dat"]),
        ),
        (
            "min-seconds",
            vec!["--min-age", "86400"],
            set(&["week.dat", "old/three.dat", "y2019.dat"]),
        ),
        (
            "max-1d",
            vec!["--max-age", "1d"],
            set(&["hours.dat", "new/minutes.dat"]),
        ),
        (
            "max-90m",
            vec!["--max-age", "90m"],
            set(&["new/minutes.dat"]),
        ),
        (
            "window",
            vec!["--min-age", "1h", "--max-age", "12h"],
            set(&["hours.dat"]),
        ),
        (
            "min-1w",
            vec!["--min-age", "1w"],
            set(&["week.dat", "y2019.dat"]),
        ),
        (
            "min-date",
            vec!["--min-age", "2020-01-01"],
            set(&["y2019.dat"]),
        ),
        (
            "max-date",
            vec!["--max-age", "2020-01-01T00:00:00"],
            set(&["week.dat", "old/three.dat", "hours.dat", "new/minutes.dat"]),
        ),
        (
            "guide-pass-1",
            vec![
                "--filter=- index*",
                "--filter=+ *.dat",
                "--filter=- **",
                "--min-age",
                "1d",
            ],
            set(&["week.dat", "old/three.dat", "y2019.dat"]),
        ),
    ];
    let mut failures = Vec::new();
    for (tag, flags, want) in &cases {
        let (ours, rclone) = select(&sc, &src, tag, flags);
        if &ours != want || ours != rclone {
            failures.push(format!(
                "{tag} {flags:?}:\n    deltasync {ours:?}\n    rclone    {rclone:?}\n    expected  {want:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "selections differ:\n  {}",
        failures.join("\n  ")
    );
}

#[test]
fn quick_check_skips_same_size_and_mtime_and_notices_a_nanosecond() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    let dst = sc.tree("dst");
    src.file("f", "new content").mtime("f", 1_600_000_000, 500);
    dst.file("f", "old content").mtime("f", 1_600_000_000, 500);
    // Same size, same mtime: unchanged, even though the content differs (rsync and rclone).
    ds_ok(&["copy", src.arg(), dst.arg()], 0);
    assert_eq!(
        dst.read("f"),
        b"old content",
        "quick check must skip the file"
    );
    // One nanosecond apart: noticed and transferred.
    src.mtime("f", 1_600_000_000, 501);
    ds_ok(&["copy", src.arg(), dst.arg()], 0);
    assert_eq!(
        dst.read("f"),
        b"new content",
        "a 1 ns mtime difference must be noticed"
    );
    assert_eq!(
        dst.lstat("f").modified().unwrap(),
        src.lstat("f").modified().unwrap()
    );
}

#[test]
fn checksum_mode_compares_content() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    let dst = sc.tree("dst");
    src.file("differs", "new content")
        .mtime("differs", 1_600_000_000, 7);
    dst.file("differs", "old content")
        .mtime("differs", 1_600_000_000, 7);
    src.file("same", "same content")
        .mtime("same", 1_600_000_000, 1);
    dst.file("same", "same content")
        .mtime("same", 1_500_000_000, 2);
    let ino = dst.lstat("same").ino();
    let o = ds_ok(&["copy", "--checksum", "-i", src.arg(), dst.arg()], 0);
    let out = crate::util::stdout(&o);
    assert_eq!(
        dst.read("differs"),
        b"new content",
        "--checksum must see the content change"
    );
    // Equal content with another mtime: only the time is fixed, the file is not rewritten.
    assert_eq!(
        dst.lstat("same").ino(),
        ino,
        "equal content must not be rewritten"
    );
    assert_eq!(
        dst.lstat("same").modified().unwrap(),
        src.lstat("same").modified().unwrap()
    );
    assert!(
        out.contains(">fc") && out.contains("differs"),
        "itemized: {out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with(".f..t") && l.ends_with(" same")),
        "itemized: {out}"
    );
}

#[test]
fn size_only_ignores_times_and_content() {
    let sc = Scratch::new();
    let src = sc.tree("src");
    let dst = sc.tree("dst");
    src.file("same-size", "AAAA")
        .mtime("same-size", 1_600_000_000, 0);
    dst.file("same-size", "BBBB")
        .mtime("same-size", 1_500_000_000, 0);
    src.file("other-size", "AAAAA");
    dst.file("other-size", "BB");
    let ino = dst.lstat("same-size").ino();
    ds_ok(&["copy", "--size-only", src.arg(), dst.arg()], 0);
    assert_eq!(
        dst.read("same-size"),
        b"BBBB",
        "--size-only must skip equal sizes"
    );
    assert_eq!(dst.read("other-size"), b"AAAAA");
    // Like rsync -a --size-only, the skipped file still gets the source's time (in place).
    assert_eq!(dst.lstat("same-size").ino(), ino);
    assert_eq!(
        dst.lstat("same-size").modified().unwrap(),
        src.lstat("same-size").modified().unwrap()
    );
    // Without it, a time difference makes the file move.
    dst.mtime("same-size", 1_500_000_000, 0);
    ds_ok(&["copy", src.arg(), dst.arg()], 0);
    assert_eq!(dst.read("same-size"), b"AAAA");
}
