//! `deltasync robocopy …`: the MailStore guide's four robocopy passes (seed 001) run as
//! written, with local directories in place of `\\oldserver\c$\MailArchive` and
//! `D:\MailArchive`. There is no robocopy here, so each pass is checked against the file set
//! robocopy's documented semantics give (reference §1): case-insensitive `*.dat`, `/xf index*`
//! never excluding directories, `/minage:1` cutting at 24 hours, `/s` creating no empty
//! directories, `/purge` deleting extras, and robocopy's exit bitmask.

use std::collections::BTreeSet;

use crate::util::{code, ds, stderr, stdout, Listing, Scratch, Tree, DAY};

/// A MailStore archive: content files (`.dat`, some upper-case), index files, live `.fdb`
/// databases, a directory named `index_dir`, files three days old and files written now.
fn archive(t: &Tree) {
    let old = 3 * DAY;
    for p in [
        "old.dat",
        "OLD2.DAT",
        "fg1/old3.dat",
        "old.fdb",
        "index_old.dat",
        "Index1.dat",
        "index_dir/z.dat",
        "notes.txt",
        "fg1/deep/r.rec",
        "fdbonly/only.fdb",
    ] {
        t.file(p, format!("old {p}")).age(p, old);
    }
    for p in [
        "new.dat",
        "new.fdb",
        "fg1/new2.dat",
        "index_new.dat",
        "newdir/n.txt",
    ] {
        t.file(p, format!("new {p}"));
    }
    t.dir("emptydir");
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The guide's command line, `/mt` appended when asked ("You can add /mt to the end of any of
/// these commands").
fn robocopy(src: &Tree, dst: &Tree, rest: &[&str], mt: bool) -> std::process::Output {
    let mut args = vec!["robocopy", src.arg(), dst.arg()];
    args.extend_from_slice(rest);
    if mt {
        args.push("/mt");
    }
    ds(&args)
}

#[track_caller]
fn expect_code(o: &std::process::Output, want: i32, what: &str) {
    assert_eq!(
        code(o),
        want,
        "{what}\n--- stdout\n{}--- stderr\n{}",
        stdout(o),
        stderr(o)
    );
}

#[test]
fn mailstore_guide_passes() {
    for mt in [false, true] {
        let s = Scratch::new();
        let src = s.tree("oldserver/c$/MailArchive");
        archive(&src);
        let dst = Tree::existing(s.path("D/MailArchive"));

        // 1. robocopy \\oldserver\c$\MailArchive D:\MailArchive *.dat /xf index* /s /r:2 /w:2 /minage:1
        let pass1 = ["*.dat", "/xf", "index*", "/s", "/r:2", "/w:2", "/minage:1"];
        let o = robocopy(&src, &dst, &pass1, mt);
        expect_code(&o, 1, "pass 1 copies");
        let l = dst.list();
        assert_eq!(
            l.files(),
            set(&["old.dat", "OLD2.DAT", "fg1/old3.dat", "index_dir/z.dat"]),
            "pass 1: old *.dat in any case, /xf index* only for files (index_dir/ is entered)"
        );
        assert_eq!(
            l.paths(),
            set(&[
                "old.dat",
                "OLD2.DAT",
                "fg1",
                "fg1/old3.dat",
                "index_dir",
                "index_dir/z.dat"
            ]),
            "pass 1: /s makes no empty directories"
        );
        let again = robocopy(&src, &dst, &pass1, mt);
        expect_code(&again, 0, "pass 1 again: nothing to copy");
        assert_eq!(dst.list(), l);

        // 2. ... /xf *.fdb /s /r:2 /w:2 /minage:1
        let pass2 = ["/xf", "*.fdb", "/s", "/r:2", "/w:2", "/minage:1"];
        let o = robocopy(&src, &dst, &pass2, mt);
        expect_code(&o, 1, "pass 2 copies");
        let l = dst.list();
        assert_eq!(
            l.files(),
            set(&[
                "old.dat",
                "OLD2.DAT",
                "fg1/old3.dat",
                "index_dir/z.dat",
                "index_old.dat",
                "Index1.dat",
                "notes.txt",
                "fg1/deep/r.rec",
            ]),
            "pass 2: every old file but the databases"
        );
        assert!(
            !dst.exists("fdbonly"),
            "a directory of excluded files stays uncreated"
        );
        assert!(
            !dst.exists("newdir"),
            "a directory of young files stays uncreated"
        );
        assert!(!dst.exists("emptydir"));

        // 3. ... /xf *.fdb /s /r:2 /w:2
        let pass3 = ["/xf", "*.fdb", "/s", "/r:2", "/w:2"];
        let o = robocopy(&src, &dst, &pass3, mt);
        expect_code(&o, 1, "pass 3 copies");
        let files = dst.list().files();
        for f in ["new.dat", "fg1/new2.dat", "index_new.dat", "newdir/n.txt"] {
            assert!(files.contains(f), "pass 3 copies the young {f}");
        }
        for f in ["old.fdb", "new.fdb", "fdbonly/only.fdb"] {
            assert!(!files.contains(f), "pass 3 leaves {f}");
        }

        // The service writes on, then stops; the destination has picked up strays.
        src.file("new.fdb", "new new.fdb, grown since")
            .file("old.dat", "old old.dat, rewritten");
        let dst = Tree::at(&dst.root);
        dst.file("stale.txt", b"stale").file("staledir/x", b"x");

        // 4. ... /e /purge /r:2 /w:2
        let pass4 = ["/e", "/purge", "/r:2", "/w:2"];
        let o = robocopy(&src, &dst, &pass4, mt);
        expect_code(&o, 3, "pass 4 copies (1) and purges extras (2)");
        let want = src.list().map(|_, i| i.links = None);
        let got = dst.list().map(|_, i| i.links = None);
        crate::util::assert_same(&want, &got, "pass 4: the destination equals the source");
        let o = robocopy(&src, &dst, &pass4, mt);
        expect_code(&o, 0, "pass 4 again: in sync");
        assert!(stdout(&o).contains("Files :"), "a summary: {}", stdout(&o));
    }
}

#[test]
fn extras_without_purge_set_bit_2_and_xx_hides_them() {
    let s = Scratch::new();
    let src = s.tree("src");
    src.file("a.txt", b"a");
    let dst = s.tree("dst");
    dst.file("a.txt", b"a").file("extra.txt", b"x");
    for i in 0..5 {
        dst.file(&format!("keep/{i}"), b"k");
        src.file(&format!("keep/{i}"), b"k");
    }
    // Same content, but the times differ: everything is copied once.
    let o = robocopy(&src, &dst, &["/e"], false);
    expect_code(&o, 3, "copied + extras found");
    assert!(dst.exists("extra.txt"), "no /purge: nothing deleted");
    let o = robocopy(&src, &dst, &["/e"], false);
    expect_code(&o, 2, "extras only");
    let o = robocopy(&src, &dst, &["/e", "/xx"], false);
    expect_code(&o, 0, "/xx: extras are not looked at");
    let o = robocopy(&src, &dst, &["/mir", "/xx"], false);
    expect_code(&o, 0, "/xx cancels /purge");
    assert!(dst.exists("extra.txt"));
    let o = robocopy(&src, &dst, &["/mir", "/l"], false);
    expect_code(&o, 2, "/l reports the extra it would purge");
    assert!(dst.exists("extra.txt"), "/l deletes nothing");
    let o = robocopy(&src, &dst, &["/MIR"], false);
    expect_code(&o, 2, "purged");
    assert!(!dst.exists("extra.txt"));
}

#[test]
fn a_directory_where_the_source_has_a_file_is_a_mismatch() {
    let s = Scratch::new();
    let src = s.tree("src");
    src.file("x", b"file");
    let dst = s.tree("dst");
    dst.file("x/inside", b"dir content");
    let o = robocopy(&src, &dst, &["/e"], false);
    // The directory's contents are extras (bit 2) as well.
    expect_code(&o, 4 | 2, "bit 4: mismatch, not a failure");
    assert!(dst.exists("x/inside"), "without /purge the directory stays");
    let o = robocopy(&src, &dst, &["/mir"], false);
    expect_code(&o, 1, "/mir replaces the mismatched directory");
    assert!(!dst.exists("x/inside"));
}

#[test]
fn without_s_or_e_only_the_top_directory() {
    let s = Scratch::new();
    let src = s.tree("src");
    src.file("top.dat", b"t")
        .file("sub/below.dat", b"b")
        .dir("empty");
    let dst = s.tree("dst");
    dst.file("olddir/keep", b"k");
    let o = robocopy(&src, &dst, &["/purge"], false);
    expect_code(&o, 1, "top-level file copied");
    assert_eq!(
        dst.list().paths(),
        set(&["top.dat", "olddir", "olddir/keep"])
    );
}

#[test]
fn xd_excludes_directories_and_protects_them_from_purge() {
    let s = Scratch::new();
    let src = s.tree("src");
    src.file("a", b"a")
        .file("Cache/c", b"c")
        .file("sub/cache/d", b"d")
        .file("sub/e", b"e");
    let dst = s.tree("dst");
    dst.file("cache/old", b"old").file("a", b"a");
    let o = robocopy(&src, &dst, &["/MIR", "/XD", "cache"], false);
    expect_code(&o, 1, "copied, nothing extra selected");
    assert_eq!(
        dst.list().paths(),
        set(&["a", "cache", "cache/old", "sub", "sub/e"]),
        "/XD matches names at any depth, case-insensitively, on both sides"
    );
}

#[test]
fn skip_classes_xo_xn_xc_xl() {
    let s = Scratch::new();
    let src = s.tree("src");
    let dst = s.tree("dst");
    src.file("older", b"src")
        .file("newer", b"src")
        .file("changed", b"src!")
        .file("lonely", b"l");
    dst.file("older", b"dst")
        .file("newer", b"dst")
        .file("changed", b"dst");
    let t = crate::util::now_secs() - 1000;
    src.mtime("older", t, 0)
        .mtime("newer", t + 10, 0)
        .mtime("changed", t, 0);
    dst.mtime("older", t + 10, 0)
        .mtime("newer", t, 0)
        .mtime("changed", t, 0);
    let o = robocopy(&src, &dst, &["/xo", "/xn", "/xc", "/xl"], false);
    expect_code(&o, 0, "everything excluded by class");
    assert_eq!(dst.read("older"), b"dst");
    assert!(!dst.exists("lonely"));
    let o = robocopy(&src, &dst, &["/xo"], false);
    expect_code(&o, 1, "newer, changed and lonely copied");
    assert_eq!(
        dst.read("older"),
        b"dst",
        "/xo keeps the destination's newer file"
    );
    assert_eq!(dst.read("newer"), b"src");
    assert_eq!(dst.read("changed"), b"src!");
    assert!(dst.exists("lonely"));
}

#[test]
fn logs_and_quiet_switches() {
    let s = Scratch::new();
    let src = s.tree("src");
    src.file("a.dat", b"aaaa").file("d/b.dat", b"b");
    let dst = s.tree("dst");
    let log = s.path("run.log");
    let o = robocopy(
        &src,
        &dst,
        &["/e", &format!("/log:{}", log.display())],
        false,
    );
    expect_code(&o, 1, "copied");
    assert!(stdout(&o).is_empty(), "/log alone keeps the console quiet");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("ROBOCOPY"), "{text}");
    assert!(
        text.contains("New File") && text.contains("a.dat"),
        "{text}"
    );
    assert!(text.contains("Files :"), "{text}");
    src.file("c.dat", b"c");
    let o = robocopy(
        &src,
        &dst,
        &[
            "/e",
            &format!("/LOG+:{}", log.display()),
            "/TEE",
            "/NJH",
            "/NJS",
            "/V",
        ],
        false,
    );
    expect_code(&o, 1, "copied");
    let out = stdout(&o);
    assert!(
        out.contains("c.dat") && out.contains("same"),
        "/tee and /v: {out}"
    );
    assert!(
        !out.contains("ROBOCOPY") && !out.contains("Files :"),
        "/njh /njs: {out}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("ROBOCOPY").count(), 1, "/log+ appends");
    assert!(text.contains("c.dat"));
    src.file("e.dat", b"e");
    let o = robocopy(&src, &dst, &["/e", "/nfl", "/ndl", "/njh", "/njs"], false);
    expect_code(&o, 1, "copied");
    assert!(stdout(&o).trim().is_empty(), "{}", stdout(&o));
}

#[test]
fn windows_spellings_and_errors() {
    let s = Scratch::new();
    let src = s.tree("src");
    src.file("Data.DAT", b"d").file("skip.tmp", b"t");
    // Backslashes separate components; switches in either case and with `-`.
    let back = |p: &std::path::Path| p.to_str().unwrap().replace('/', "\\");
    let dst = s.path("dst");
    let o = ds(&[
        "robocopy",
        &back(&src.root),
        &back(&dst),
        "-XF",
        "*.TMP",
        "/S",
    ]);
    expect_code(&o, 1, "backslash paths");
    assert_eq!(Listing::of(&dst).files(), set(&["Data.DAT"]));
    let o = ds(&[
        "robocopy",
        r"\\oldserver\c$\MailArchive",
        s.path("x").to_str().unwrap(),
        "/e",
    ]);
    expect_code(&o, 16, "UNC path");
    assert!(stderr(&o).contains("mount -t cifs"), "{}", stderr(&o));
    let o = ds(&["robocopy", src.arg(), dst.to_str().unwrap(), "/bogus"]);
    expect_code(&o, 16, "unknown switch");
    assert!(stderr(&o).contains("/bogus"));
    let o = ds(&["robocopy", src.arg(), dst.to_str().unwrap(), "/minage:x"]);
    expect_code(&o, 16, "bad value");
    let o = ds(&[
        "robocopy",
        s.path("nosuch").to_str().unwrap(),
        dst.to_str().unwrap(),
        "/e",
    ]);
    expect_code(&o, 16, "missing source");
    let o = ds(&["robocopy", "/?"]);
    expect_code(&o, 0, "help");
    assert!(stdout(&o).contains("/MINAGE:n"));
}

/// The guide's warning: `D:\ MailArchive` (a stray space) makes the drive the destination and
/// `MailArchive` a file name. The rails refuse to purge most of it, and say so.
#[test]
fn stray_space_typo_is_stopped_by_the_rails() {
    let s = Scratch::new();
    let src = s.tree("oldserver/MailArchive");
    src.file("a.dat", b"a").dir("fg1/empty");
    let drive = s.tree("D");
    for d in ["Users", "Program Files", "Backups", "Photos"] {
        drive
            .file(&format!("{d}/precious.txt"), b"keep")
            .dir(&format!("{d}/sub"));
    }
    let o = ds(&[
        "robocopy",
        src.arg(),
        &format!("{}/", drive.arg()),
        "MailArchive",
        "/e",
        "/purge",
    ]);
    let c = code(&o);
    assert!(c & 8 != 0, "a refusal is a failure: {c}\n{}", stdout(&o));
    let out = stdout(&o) + &stderr(&o);
    assert!(out.contains("refusing to delete"), "{out}");
    assert!(out.contains("--force-delete"), "{out}");
    for d in ["Users", "Program Files", "Backups", "Photos"] {
        assert!(drive.exists(&format!("{d}/sub")), "{d}/sub kept");
        assert!(drive.exists(&format!("{d}/precious.txt")));
    }
}

/// A deletion in the root of a file system is refused even when it is a small part of it.
/// `/dev/shm` is a mount point on Linux; the pass is a dry run (`/L`).
#[test]
fn purge_into_a_file_system_root_is_refused() {
    let shm = std::path::Path::new("/dev/shm");
    let is_mount = std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().any(|l| l.split(' ').nth(4) == Some("/dev/shm")))
        .unwrap_or(false);
    if !is_mount || !shm.is_dir() {
        eprintln!("skipped: /dev/shm is not a mount point here");
        return;
    }
    let s = Scratch::new();
    let src = s.tree("src");
    for i in 0..20 {
        src.file(&format!("f{i}"), b"f");
    }
    let stray = tempfile::Builder::new()
        .prefix("deltasync-rail-test")
        .tempfile_in(shm)
        .unwrap();
    let o = ds(&["robocopy", src.arg(), "/dev/shm", "/mir", "/l"]);
    let out = stdout(&o) + &stderr(&o);
    assert!(code(&o) & 8 != 0, "{out}");
    assert!(out.contains("the root of a file system"), "{out}");
    assert!(stray.path().exists());
    assert!(!shm.join("f0").exists(), "/l copies nothing");
}

#[test]
fn maxage_and_minage_as_days_or_dates() {
    let s = Scratch::new();
    let src = s.tree("src");
    src.file("week_old.dat", b"w")
        .age("week_old.dat", 7 * DAY)
        .file("day_old.dat", b"d")
        .age("day_old.dat", 2 * DAY)
        .file("fresh.dat", b"f");
    let dst = s.tree("dst");
    let o = robocopy(&src, &dst, &["/maxage:3"], false);
    expect_code(&o, 1, "/maxage:3");
    assert_eq!(dst.list().files(), set(&["day_old.dat", "fresh.dat"]));
    let dst2 = s.tree("dst2");
    // A date: files last written before it are too old for /MAXAGE, after it too young for
    // /MINAGE. 19700102 is long ago, so /MINAGE takes nothing and /MAXAGE everything.
    let o = robocopy(&src, &dst2, &["/minage:19700102"], false);
    expect_code(&o, 0, "/minage:19700102 selects nothing");
    assert!(dst2.list().files().is_empty());
    let o = robocopy(&src, &dst2, &["/maxage:19700102", "/minage:1"], false);
    expect_code(&o, 1, "older than a day, newer than 1970");
    assert_eq!(dst2.list().files(), set(&["day_old.dat", "week_old.dat"]));
}
