//! `deltasync rsync …`: the guides' rsync lines run as written (local directories in place of
//! hosts), and a table of option combinations run side by side with the real `rsync` on the
//! same trees: the resulting trees (content, modes, owners, mtimes, symlink targets,
//! hard-link groups, fifos) and the exit codes must be identical.

use std::process::Command;

use crate::util::{assert_same, code, ds, require, stderr, stdout, Listing, Scratch, Tree};

/// Fixed past times (with nanoseconds), so two copies made at different moments agree.
const T0: i64 = 1_650_000_000;

/// A source with every kind of entry the guides' trees hold: modes (setuid too), owners with
/// no names (vmail's 5000), nanosecond mtimes, symlinks (relative, dangling, to a directory),
/// a hard-link group, a fifo, an empty directory and names the filters pick at.
fn rich_source(t: &Tree) {
    t.file("a.txt", crate::util::data(1, 5000))
        .file("b.dat", b"b data")
        .file("big.bin", crate::util::data(2, 300_000))
        .file("bin/run.sh", b"#!/bin/sh\necho hi\n")
        .file("bin/suid", b"suid")
        .file("sub/deep/c.txt", b"c")
        .file("sub/deep/d.log", b"d log")
        .file("sub/e.log", b"e log")
        .file("sub/keep.log", b"keep")
        .file("index_dir/z.dat", b"z")
        .file("Index1.dat", b"I1")
        .file("top.txt", b"top")
        .file("owned/secret", b"vmail")
        .file("hard/one", b"linked content")
        .hardlink("hard/two", "hard/one")
        .hardlink("sub/three", "hard/one")
        .symlink("links/rel", "../a.txt")
        .symlink("links/dangling", "nowhere")
        .symlink("links/dir", "../sub")
        .fifo("pipe")
        .dir("empty");
    t.mode("b.dat", 0o600)
        .mode("bin/run.sh", 0o755)
        .mode("bin/suid", 0o4755)
        .mode("owned", 0o750)
        .owner("b.dat", 5000, 5000)
        .owner("owned/secret", 5000, 5001)
        .owner("owned", 5000, 5001)
        .owner("links/rel", 5000, 5000);
    stamp(t);
}

/// Gives every entry a distinct fixed mtime, children before their directories.
fn stamp(t: &Tree) {
    let listing = t.list();
    let mut paths: Vec<&String> = listing.items.keys().collect();
    // Deepest first, so a directory's time is set after its contents.
    paths.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count() + usize::from(*p != ".")));
    for (i, p) in paths.into_iter().enumerate() {
        t.mtime(p, T0 + i as i64 * 7, 123_456_789 + i as u32);
    }
}

/// `cp -a`: an exact copy (ns times, owners, hard links, fifos) for the second contender.
fn clone_tree(from: &std::path::Path, to: &std::path::Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a");
}

/// One row of the differential table.
struct Case {
    name: &'static str,
    /// `SRC` and `DST` inside an argument are replaced by the trees' paths.
    args: &'static [&'static str],
    /// Changes to the standard source.
    src: fn(&Tree),
    /// The destination before the run (`None`: absent).
    dst: Option<fn(&Tree, &Tree)>,
    /// Directories whose mtime is not the transfer's: a source without a slash, or
    /// `--mkpath`, puts a new entry in them, at "now" for each contender.
    skip_mtime: &'static [&'static str],
}

fn none(_: &Tree) {}

/// An earlier copy of the source, then drift: changed files, a file with the same size and
/// mtime but other content (only `-c` sees it), and extraneous entries (a minority).
fn drifted(src: &Tree, dst: &Tree) {
    std::fs::remove_dir(&dst.root).unwrap();
    clone_tree(&src.root, &dst.root);
    let same = dst.lstat("top.txt");
    dst.file("top.txt", b"TOP")
        .mtime("top.txt", same_mtime(&same).0, same_mtime(&same).1)
        .file("a.txt", b"shorter")
        .file("big.bin", crate::util::data(3, 300_000))
        .file("extra.txt", b"extra")
        .file("sub/extra.log", b"extra log")
        .file("gone/x", b"x")
        .mode("bin/run.sh", 0o700);
    dst.mtime("big.bin", T0 + 99_999, 5);
}

fn same_mtime(m: &std::fs::Metadata) -> (i64, u32) {
    use std::os::unix::fs::MetadataExt;
    (m.mtime(), m.mtime_nsec() as u32)
}

/// A destination that is newer than the source in places (for `-u`).
fn newer(src: &Tree, dst: &Tree) {
    drifted(src, dst);
    dst.mtime("a.txt", T0 + 1_000_000, 0);
}

fn nested_dst(_src: &Tree, _dst: &Tree) {}

/// Runs the real rsync and `deltasync rsync` with the same arguments on identical trees.
fn differential(c: &Case) {
    require("rsync");
    let s = Scratch::new();
    let src = s.tree("src");
    rich_source(&src);
    (c.src)(&src);
    let template = s.path("template");
    if let Some(prepare) = c.dst {
        prepare(&src, &s.tree("template"));
    }
    let mut results = Vec::new();
    for who in ["rsync", "deltasync"] {
        let dst = s.path(&format!("dst-{who}"));
        if template.exists() {
            clone_tree(&template, &dst);
        }
        let args: Vec<String> = c
            .args
            .iter()
            .map(|a| {
                a.replace("SRC", src.arg())
                    .replace("DST", dst.to_str().unwrap())
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = if who == "rsync" {
            Command::new("rsync").args(&args).output().unwrap()
        } else {
            ds(&[&["rsync"][..], &args].concat())
        };
        let listing = if dst.exists() {
            Listing::of(&dst)
        } else {
            Listing::default()
        };
        results.push((out, listing));
    }
    let (r, d) = (&results[0], &results[1]);
    assert_eq!(
        code(&r.0),
        code(&d.0),
        "{}: exit codes differ\n--- rsync stderr\n{}--- deltasync stdout\n{}--- deltasync stderr\n{}",
        c.name,
        stderr(&r.0),
        stdout(&d.0),
        stderr(&d.0)
    );
    let fix = |l: &Listing| {
        l.map(|p, i| {
            if c.skip_mtime.contains(&p) {
                i.mtime = (0, 0);
            }
        })
    };
    assert_same(&fix(&r.1), &fix(&d.1), c.name);
    if c.args.contains(&"-n") || c.args.iter().any(|a| a.contains("--dry-run")) {
        let before = if template.exists() {
            Listing::of(&template)
        } else {
            Listing::default()
        };
        assert_same(
            &before,
            &d.1,
            &format!("{}: a dry run changes nothing", c.name),
        );
    }
}

const TABLE: &[Case] = &[
    Case {
        name: "archive, contents (SRC/)",
        args: &["-a", "SRC/", "DST"],
        src: none,
        dst: None,
        skip_mtime: &[],
    },
    Case {
        name: "archive, the directory itself (SRC)",
        args: &["-a", "SRC", "DST"],
        src: none,
        dst: None,
        skip_mtime: &["."],
    },
    Case {
        name: "hard links kept with -H",
        args: &["-aH", "SRC/", "DST"],
        src: none,
        dst: None,
        skip_mtime: &[],
    },
    Case {
        name: "update of a drifted copy",
        args: &["-aH", "SRC/", "DST"],
        src: none,
        dst: Some(drifted),
        skip_mtime: &[],
    },
    Case {
        name: "--delete",
        args: &["-aH", "--delete", "SRC/", "DST"],
        src: none,
        dst: Some(drifted),
        skip_mtime: &[],
    },
    Case {
        name: "--delete-after (same tree as --delete)",
        args: &["-a", "--delete-after", "SRC/", "DST"],
        src: none,
        dst: Some(drifted),
        skip_mtime: &[],
    },
    Case {
        name: "--delete-before (same tree as --delete)",
        args: &["-a", "--delete-before", "SRC/", "DST"],
        src: none,
        dst: Some(drifted),
        skip_mtime: &[],
    },
    Case {
        name: "--delete protects excluded entries",
        args: &["-a", "--delete", "--exclude=*.log", "SRC/", "DST"],
        src: none,
        dst: Some(drifted),
        skip_mtime: &[],
    },
    Case {
        name: "--delete-excluded",
        args: &[
            "-a",
            "--delete-excluded",
            "--exclude",
            "*.log",
            "SRC/",
            "DST",
        ],
        src: none,
        dst: Some(drifted),
        skip_mtime: &[],
    },
    Case {
        name: "--max-delete stops deletions (exit 25)",
        args: &[
            "-a",
            "--delete",
            "--max-delete=1",
            "--exclude=sub/",
            "SRC/",
            "DST",
        ],
        src: none,
        dst: Some(drifted),
        // gone/x was deleted, gone/ is left with a fresh mtime in both.
        skip_mtime: &["gone"],
    },
    Case {
        name: "--max-delete=0 warns only",
        args: &["-a", "--delete", "--max-delete", "0", "SRC/", "DST"],
        src: none,
        dst: Some(drifted),
        skip_mtime: &[],
    },
    Case {
        name: "include before exclude, + */ idiom",
        args: &[
            "-a",
            "--include=*/",
            "--include=*.dat",
            "--exclude=*",
            "SRC/",
            "DST",
        ],
        src: none,
        dst: None,
        skip_mtime: &[],
    },
    Case {
        name: "first match wins",
        args: &["-a", "--exclude=*.dat", "--include=*.dat", "SRC/", "DST"],
        src: none,
        dst: None,
        skip_mtime: &[],
    },
    Case {
        name: "the rclone guide's rules in rsync's meaning (directories too)",
        args: &[
            "-a", "-f", "- index*", "-f", "+ *.dat", "-f", "- *", "SRC/", "DST",
        ],
        src: none,
        dst: None,
        skip_mtime: &[],
    },
    Case {
        name: "anchored and directory-only patterns, SRC/",
        args: &[
            "-a",
            "--filter=- /top.txt",
            "--exclude",
            "deep/",
            "-f-_/links",
            "SRC/",
            "DST",
        ],
        src: none,
        dst: None,
        skip_mtime: &[],
    },
    Case {
        name: "anchors move with the missing slash (SRC)",
        args: &[
            "-a",
            "--exclude=/top.txt",
            "--exclude=/src/a.txt",
            "SRC",
            "DST",
        ],
        src: none,
        dst: None,
        skip_mtime: &["."],
    },
    Case {
        name: "** and character classes",
        args: &[
            "-a",
            "--exclude=sub/**/*.log",
            "--exclude=[ab].*",
            "SRC/",
            "DST",
        ],
        src: none,
        dst: None,
        skip_mtime: &[],
    },
    Case {
        name: "-c sees same-size same-mtime changes",
        args: &["-ac", "SRC/", "DST"],
        src: none,
        dst: Some(drifted),
        skip_mtime: &[],
    },
    Case {
        name: "-W --inplace",
        args: &["-aW", "--inplace", "SRC/", "DST"],
        src: none,
        dst: Some(drifted),
        skip_mtime: &[],
    },
    Case {
        name: "--ignore-existing",
        args: &["-a", "--ignore-existing", "SRC/", "DST"],
        src: none,
        dst: Some(drifted),
        skip_mtime: &[],
    },
    Case {
        name: "-u keeps newer destination files",
        args: &["-au", "SRC/", "DST"],
        src: none,
        dst: Some(newer),
        skip_mtime: &[],
    },
    Case {
        name: "--dry-run changes nothing",
        args: &["-aH", "-n", "--delete", "SRC/", "DST"],
        src: none,
        dst: Some(drifted),
        skip_mtime: &[],
    },
    Case {
        name: "no -o -g -D: -rltp",
        args: &["-rltp", "SRC/", "DST"],
        src: none,
        dst: None,
        skip_mtime: &[],
    },
    Case {
        name: "no -r: directories skipped",
        args: &["-lptgo", "SRC/", "DST"],
        src: none,
        dst: None,
        skip_mtime: &[],
    },
    Case {
        name: "--no-OPTION after -a",
        args: &["-a", "--no-o", "--no-group", "--no-links", "SRC/", "DST"],
        src: none,
        dst: None,
        skip_mtime: &[],
    },
    Case {
        name: "missing DEST parent (exit 11)",
        args: &["-a", "SRC/", "DST/x/y"],
        src: none,
        dst: Some(nested_dst),
        skip_mtime: &[],
    },
    Case {
        name: "--mkpath",
        args: &["-a", "--mkpath", "SRC/", "DST/x/y"],
        src: none,
        dst: Some(nested_dst),
        skip_mtime: &[".", "x"],
    },
    Case {
        name: "missing SRC: exit 23, the rest copied and deleted",
        args: &["-a", "--delete", "SRC/sub", "SRC/no-such-dir", "DST"],
        src: none,
        dst: Some(drifted),
        skip_mtime: &["."],
    },
    Case {
        name: "missing SRC/: exit 23, the rest copied, nothing deleted (I/O error)",
        args: &["-a", "--delete", "SRC/no-such-dir/", "SRC/", "DST"],
        src: none,
        dst: Some(drifted),
        skip_mtime: &[],
    },
    Case {
        name: "two sources without slashes",
        args: &["-a", "--delete", "SRC/sub", "SRC/bin", "DST"],
        src: none,
        dst: Some(drifted),
        skip_mtime: &["."],
    },
    Case {
        name: "--exclude-from",
        args: &[
            "-a",
            "--delete",
            "--exclude-from=SRC/../rules",
            "SRC/",
            "DST",
        ],
        src: write_rules,
        dst: Some(drifted),
        skip_mtime: &[],
    },
    Case {
        name: "--max-size skips without hiding",
        args: &["-a", "--delete", "--max-size=100k", "SRC/", "DST"],
        src: none,
        dst: Some(drifted),
        skip_mtime: &[],
    },
    Case {
        name: "unknown option (exit 1)",
        args: &["-a", "--no-such-option", "SRC/", "DST"],
        src: none,
        dst: None,
        skip_mtime: &[],
    },
    Case {
        name: "bad number (exit 1)",
        args: &["-a", "--max-delete=many", "SRC/", "DST"],
        src: none,
        dst: None,
        skip_mtime: &[],
    },
    Case {
        name: "-e with local paths is accepted and unused",
        args: &[
            "-a",
            "-e",
            "ssh -p 2222",
            "--rsync-path=/usr/bin/deltasync",
            "SRC/",
            "DST",
        ],
        src: none,
        dst: None,
        skip_mtime: &[],
    },
];

fn write_rules(src: &Tree) {
    std::fs::write(
        src.root.parent().unwrap().join("rules"),
        "# comment\n- *.log\n+ keep.log\n- /empty\n",
    )
    .unwrap();
}

#[test]
fn option_table_matches_real_rsync() {
    for c in TABLE {
        differential(c);
    }
}

/// A mailcow-like server: container volumes owned by ids without names, hard links,
/// symlinks, an rspamd volume whose hyperscan cache must not cross architectures.
fn mailcow(root: &Tree) {
    root.file(
        "opt/mailcow-dockerized/mailcow.conf",
        b"MAILCOW_HOSTNAME=mail\n",
    )
    .file(
        "opt/mailcow-dockerized/data/conf/postfix/main.cf",
        b"smtpd\n",
    )
    .symlink("opt/mailcow-dockerized/helper", "data/conf")
    .file(
        "volumes/mailcowdockerized_vmail-vol-1/_data/user/cur/1.eml",
        crate::util::data(5, 20_000),
    )
    .file(
        "volumes/mailcowdockerized_vmail-vol-1/_data/user/cur/2.eml",
        crate::util::data(6, 3000),
    )
    .hardlink(
        "volumes/mailcowdockerized_vmail-vol-1/_data/user/.Sent/cur/1.eml",
        "volumes/mailcowdockerized_vmail-vol-1/_data/user/cur/1.eml",
    )
    .file(
        "volumes/mailcowdockerized_rspamd-vol-1/_data/hyperscan.hs",
        crate::util::data(7, 4000),
    )
    .file("volumes/rspamd-vol-10/k", b"not rspamd-vol-1")
    .file(
        "volumes/deep/x/mailcowdockerized_rspamd-vol-1/_data/h",
        b"h",
    )
    .file("volumes/deep/file_rspamd-vol-1", b"f")
    .file(
        "volumes/mysql-vol-1/_data/ibdata1",
        crate::util::data(8, 50_000),
    );
    root.owner(
        "volumes/mailcowdockerized_vmail-vol-1/_data/user/cur/1.eml",
        5000,
        5000,
    )
    .owner(
        "volumes/mailcowdockerized_vmail-vol-1/_data/user/cur",
        5000,
        5000,
    )
    .owner("volumes/mysql-vol-1/_data/ibdata1", 999, 999)
    .mode("volumes/mysql-vol-1/_data/ibdata1", 0o660);
    stamp(root);
}

/// Runs one guide line with rsync and with deltasync, each on its own copy of the target.
/// The target's directories above the transfer (`opt`, `var/lib/docker` …) get a new entry at
/// "now" for each contender, so their mtimes are not compared.
fn guide_pass(s: &Scratch, args: &[&str], expect: i32) -> (Listing, Listing) {
    guide_pass_with(s, args, expect, false)
}

/// [`guide_pass`] without comparing directory times between the two contenders.
fn guide_pass_loose_dirs(s: &Scratch, args: &[&str], expect: i32) -> (Listing, Listing) {
    guide_pass_with(s, args, expect, true)
}

fn guide_pass_with(
    s: &Scratch,
    args: &[&str],
    expect: i32,
    loose_dirs: bool,
) -> (Listing, Listing) {
    require("rsync");
    let mut listings = Vec::new();
    for who in ["rsync", "deltasync"] {
        let target = s.path(&format!("target-{who}"));
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("TARGET", target.to_str().unwrap()))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = if who == "rsync" {
            Command::new("rsync").args(&args).output().unwrap()
        } else {
            ds(&[&["rsync"][..], &args].concat())
        };
        assert_eq!(
            code(&out),
            expect,
            "{who} {args:?}\n{}{}",
            stdout(&out),
            stderr(&out)
        );
        listings.push(Listing::of(&target).map(|p, i| {
            if [".", "opt", "var", "var/lib", "var/lib/docker"].contains(&p) {
                i.mtime = (0, 0);
            }
        }));
    }
    let d = listings.pop().unwrap();
    let r = listings.pop().unwrap();
    let loose = |l: &Listing| {
        l.map(|_, i| {
            if loose_dirs && i.kind == 'd' {
                i.mtime = (0, 0);
            }
        })
    };
    assert_same(&loose(&r), &loose(&d), &format!("{args:?}"));
    (r, d)
}

/// Seed 004 (mailcow), "within the same architecture": both lines, then step 5's repeat
/// after the source changed.
#[test]
fn mailcow_same_architecture() {
    let s = Scratch::new();
    let src = s.tree("source");
    mailcow(&src);
    for who in ["rsync", "deltasync"] {
        Tree::at(s.path(&format!("target-{who}/opt")));
        Tree::at(s.path(&format!("target-{who}/var/lib/docker")));
    }
    let opt = format!("{}/opt/mailcow-dockerized/", src.arg());
    let vols = format!("{}/volumes/", src.arg());
    let line1 = [
        "-aHhP",
        "--numeric-ids",
        "--delete",
        &opt,
        "TARGET/opt/mailcow-dockerized",
    ];
    let line2 = [
        "-aHhP",
        "--numeric-ids",
        "--delete",
        &vols,
        "TARGET/var/lib/docker/volumes",
    ];
    guide_pass(&s, &line1, 0);
    let (_, after) = guide_pass(&s, &line2, 0);
    let rel = "var/lib/docker/volumes/mailcowdockerized_vmail-vol-1/_data/user/cur/1.eml";
    let i = after.get(rel);
    assert_eq!((i.uid, i.gid), (5000, 5000), "numeric ids kept");
    assert_eq!(
        i.links.as_ref().map(|l| l.len()),
        Some(2),
        "hard links kept"
    );
    assert!(
        after
            .get("var/lib/docker/volumes/mailcowdockerized_rspamd-vol-1/_data/hyperscan.hs")
            .size
            > 0
    );
    // Step 4/5: the service stops, the same lines run again and move only the changes.
    src.file(
        "volumes/mailcowdockerized_vmail-vol-1/_data/user/cur/3.eml",
        b"new mail",
    )
    .remove("volumes/mailcowdockerized_vmail-vol-1/_data/user/cur/2.eml")
    .file(
        "volumes/mysql-vol-1/_data/ibdata1",
        crate::util::data(9, 50_000),
    )
    .file(
        "opt/mailcow-dockerized/mailcow.conf",
        b"MAILCOW_HOSTNAME=mail2\n",
    );
    guide_pass(&s, &line1, 0);
    // rsync 3.5 leaves a directory whose entries it just changed with the time of that change
    // (it compares directory times to the second, and the change happened in the same
    // second), so directory times are compared with the source's instead.
    let (_, after) = guide_pass_loose_dirs(&s, &line2, 0);
    let want = src.list();
    for (p, i) in &after.items {
        if let Some(rel) = p.strip_prefix("var/lib/docker/volumes/") {
            if i.kind == 'd' {
                let srcp = format!("volumes/{rel}");
                assert_eq!(i.mtime, want.get(&srcp).mtime, "directory time of {p}");
            }
        }
    }
    assert!(!after
        .items
        .contains_key("var/lib/docker/volumes/mailcowdockerized_vmail-vol-1/_data/user/cur/2.eml"));
}

/// Seed 004 (mailcow), "to other architecture": `--exclude '*rspamd-vol-1'` neither sends nor
/// deletes any entry whose name ends so, at any depth (reference §3.5 transcript).
#[test]
fn mailcow_other_architecture() {
    let s = Scratch::new();
    let src = s.tree("source");
    mailcow(&src);
    // The target holds an earlier pre-sync (made on the old architecture, so with rspamd's
    // cache), a stray file and a table dropped since.
    let earlier = s.tree("earlier");
    std::fs::remove_dir(&earlier.root).unwrap();
    clone_tree(&src.path("volumes"), &earlier.root);
    earlier
        .file("mailcowdockerized_rspamd-vol-1/_data/old", b"old cache")
        .file("extra.txt", b"stray")
        .file("mysql-vol-1/_data/dropped", b"t")
        .remove("deep/x/mailcowdockerized_rspamd-vol-1")
        .remove("deep/file_rspamd-vol-1")
        .mtime("extra.txt", T0, 0)
        .mtime("mysql-vol-1/_data/dropped", T0, 0)
        .mtime("mailcowdockerized_rspamd-vol-1/_data/old", T0, 0)
        .mtime("mailcowdockerized_rspamd-vol-1/_data", T0, 0)
        .mtime("mysql-vol-1/_data", T0, 0);
    for who in ["rsync", "deltasync"] {
        let t = Tree::at(s.path(&format!("target-{who}")));
        clone_tree(&earlier.root, &t.path("volumes"));
    }
    // The source's cache is rebuilt for its own architecture: it must not travel.
    let hs = "volumes/mailcowdockerized_rspamd-vol-1/_data/hyperscan.hs";
    src.file(hs, b"other architecture");
    let vols = format!("{}/volumes/", src.arg());
    let line = [
        "-aHhP",
        "--numeric-ids",
        "--delete",
        "--exclude",
        "*rspamd-vol-1",
        &vols,
        "TARGET/volumes",
    ];
    let (_, after) = guide_pass(&s, &line, 0);
    let paths = after.paths();
    assert!(paths.contains("volumes/mailcowdockerized_rspamd-vol-1/_data/old"));
    assert_eq!(
        Tree::existing(s.path("target-deltasync")).read(hs),
        earlier.read("mailcowdockerized_rspamd-vol-1/_data/hyperscan.hs"),
        "the excluded volume was neither sent nor deleted"
    );
    assert!(!paths.contains("volumes/deep/x/mailcowdockerized_rspamd-vol-1"));
    assert!(!paths.contains("volumes/deep/file_rspamd-vol-1"));
    assert!(paths.contains("volumes/rspamd-vol-10/k"));
    assert!(!paths.contains("volumes/extra.txt"));
    assert!(!paths.contains("volumes/mysql-vol-1/_data/dropped"));
}

/// Seed 003 (chatmail): `rsync -azH /home/vmail/mail root@new:/home/vmail/` — no slash on the
/// source, so `mail` itself lands in `/home/vmail/`.
#[test]
fn chatmail_final_sync() {
    let s = Scratch::new();
    let src = s.tree("old/home/vmail/mail");
    src.file("mail.example.org/alice/cur/1:2,S", b"hello")
        .file("mail.example.org/alice/new/2", crate::util::data(4, 9000))
        .hardlink(
            "mail.example.org/alice/cur/1-copy:2,S",
            "mail.example.org/alice/cur/1:2,S",
        )
        .file("mail.example.org/bob/dovecot.index", b"idx")
        .owner("mail.example.org/bob/dovecot.index", 5000, 5000);
    stamp(&src);
    for who in ["rsync", "deltasync"] {
        Tree::at(s.path(&format!("target-{who}/home/vmail")));
    }
    let args = ["-azH", src.arg(), "TARGET/home/vmail/"];
    // The targets' /home/vmail is touched by the new entry, at "now" for each tool.
    require("rsync");
    let mut l = Vec::new();
    for who in ["rsync", "deltasync"] {
        let target = s.path(&format!("target-{who}"));
        let a: Vec<String> = args
            .iter()
            .map(|x| x.replace("TARGET", target.to_str().unwrap()))
            .collect();
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = if who == "rsync" {
            Command::new("rsync").args(&a).output().unwrap()
        } else {
            ds(&[&["rsync"][..], &a].concat())
        };
        assert_eq!(code(&out), 0, "{who}: {}", stderr(&out));
        l.push(Listing::of(&target.join("home/vmail/mail")));
    }
    assert_same(&l[0], &l[1], "chatmail");
    assert!(l[1].items.contains_key("mail.example.org/alice/new/2"));
    assert_eq!(
        l[1].get("mail.example.org/alice/cur/1:2,S")
            .links
            .as_ref()
            .map(|g| g.len()),
        Some(2)
    );
}

/// The core's rails stay on in the rsync dialect: a `--delete` that would remove most of the
/// destination is refused (exit 25) and says what and how; `--force-delete` then matches rsync.
#[test]
fn rails_refuse_wiping_most_of_the_destination() {
    let s = Scratch::new();
    let src = s.tree("src");
    src.file("only.txt", b"1");
    let dst = s.tree("dst");
    for i in 0..10 {
        dst.file(&format!("precious/{i}.dat"), b"keep me");
    }
    let o = ds(&[
        "rsync",
        "-a",
        "--delete",
        &format!("{}/", src.arg()),
        dst.arg(),
    ]);
    assert_eq!(code(&o), 25, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("refusing to delete 11"), "{e}");
    assert!(e.contains("precious"), "names what would have gone: {e}");
    assert!(e.contains("--force-delete"), "says how to proceed: {e}");
    assert!(dst.exists("precious/3.dat"));
    assert!(dst.exists("only.txt"), "the transfers still happened");
    let o = ds(&[
        "rsync",
        "-a",
        "--delete",
        "--force-delete",
        &format!("{}/", src.arg()),
        dst.arg(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        dst.list().paths().into_iter().collect::<Vec<_>>(),
        ["only.txt"]
    );
}

#[test]
fn daemon_paths_and_file_sources_are_refused_clearly() {
    let s = Scratch::new();
    let src = s.tree("src");
    src.file("f", b"f");
    for daemon in [
        "root@target-machine.example.com::mailcow",
        "rsync://target-machine.example.com/mailcow",
    ] {
        let o = ds(&[
            "rsync",
            "-aHhP",
            "--numeric-ids",
            "--delete",
            &format!("{}/", src.arg()),
            daemon,
        ]);
        assert_eq!(code(&o), 4);
        assert!(stderr(&o).contains("daemon"), "{}", stderr(&o));
    }
    let o = ds(&["rsync", "-a", "h1:/a/", "h2:/b/"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("cannot both be remote"),
        "{}",
        stderr(&o)
    );
    let o = ds(&[
        "rsync",
        "-a",
        s.path("src/f").to_str().unwrap(),
        s.path("x").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 4);
    assert!(stderr(&o).contains("only directories"), "{}", stderr(&o));
    let o = ds(&[
        "rsync",
        "-a",
        "--xattrs",
        src.arg(),
        s.path("x").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("--xattrs"),
        "names the option: {}",
        stderr(&o)
    );
    assert!(!s.path("x").exists());
}

#[test]
fn verbose_itemized_and_stats_output() {
    let s = Scratch::new();
    let src = s.tree("src");
    src.file("a", b"aaa").file("d/b", b"b");
    let dst = s.path("dst");
    let o = ds(&["rsync", "-ai", "--stats", src.arg(), dst.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(">f+++++++++ src/a"), "{out}");
    assert!(out.contains("cd+++++++++ src/d/"), "{out}");
    assert!(
        out.contains("Number of regular files transferred: 2"),
        "{out}"
    );
    assert!(out.contains("total size is 4"), "{out}");
    src.remove("d/b");
    let o = ds(&["rsync", "-av", "--delete", src.arg(), dst.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("sending incremental file list\n"), "{out}");
    assert!(out.contains("deleting src/d/b"), "{out}");
    let o = ds(&["rsync", "-aq", src.arg(), dst.to_str().unwrap()]);
    assert!(stdout(&o).is_empty());
}
