//! Fixture kit: run the built binary, make files, require real peers.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_deltasync"))
}

/// Runs `deltasync` with `args` in `dir`, feeding `stdin`.
pub fn run(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = Command::new(bin())
        .current_dir(dir)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn deltasync");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Fails loudly when a peer is missing: CI installs them.
pub fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "the peer `{tool}` is not installed; run the README's test command, which installs it"
    );
}

/// Runs a peer and insists it succeeds.
pub fn peer(dir: &Path, tool: &str, args: &[&str]) -> Output {
    require(tool);
    let out = Command::new(tool)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Deterministic pseudo-random bytes.
pub fn data(seed: u32, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The exit code (-1 when killed by a signal).
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Runs `deltasync` with `args` (no stdin) in the system temporary directory.
pub fn ds(args: &[&str]) -> Output {
    run(&std::env::temp_dir(), args, None)
}

/// Runs `deltasync` and insists on an exit code, showing both streams otherwise.
pub fn ds_ok(args: &[&str], want: i32) -> Output {
    let o = ds(args);
    assert_eq!(
        code(&o),
        want,
        "deltasync {args:?}\n--- stdout\n{}--- stderr\n{}",
        stdout(&o),
        stderr(&o)
    );
    o
}

/// A path as `&str` (the fixtures only make UTF-8 paths).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("fixture paths are UTF-8")
}

// ---------------------------------------------------------------------------------------------
// Tree fixtures: a builder for trees with every entry kind and exact metadata, a listing of a
// tree with content hashes and full `lstat` metadata, and a readable diff of two listings.
// Only std and coreutils are used: the package forbids `unsafe`, and `touch -h` is the one way
// left to set a symlink's or a fifo's mtime without libc.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A scratch directory holding `src`, `dst` and whatever else a test needs; removed on drop.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A path inside the scratch directory (not created).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A tree rooted at `rel`, created empty.
    pub fn tree(&self, rel: &str) -> Tree {
        Tree::at(self.path(rel))
    }
}

/// A directory tree under construction or inspection. Every method takes paths relative to
/// the root, creates missing parents, and panics on failure (it is a test fixture).
#[derive(Debug, Clone)]
pub struct Tree {
    pub root: PathBuf,
}

impl Tree {
    /// The tree at `root`, which is created if missing.
    pub fn at(root: impl Into<PathBuf>) -> Tree {
        let root = root.into();
        fs::create_dir_all(&root).unwrap();
        Tree { root }
    }

    /// The tree at `root`, which may not exist.
    pub fn existing(root: impl Into<PathBuf>) -> Tree {
        Tree { root: root.into() }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() || rel == "." {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    /// The root as `&str`, for command lines.
    pub fn arg(&self) -> &str {
        s(&self.root)
    }

    fn parent(&self, rel: &str) {
        if let Some(p) = self.path(rel).parent() {
            fs::create_dir_all(p).unwrap();
        }
    }

    /// A regular file with this content (replacing whatever is there, in place).
    pub fn file(&self, rel: &str, content: impl AsRef<[u8]>) -> &Self {
        self.parent(rel);
        fs::write(self.path(rel), content).unwrap();
        self
    }

    /// A file written through a temporary and renamed over the old one (a new inode).
    pub fn replace(&self, rel: &str, content: impl AsRef<[u8]>) -> &Self {
        self.parent(rel);
        let tmp = self.path(&format!("{rel}.fixture-tmp"));
        fs::write(&tmp, content).unwrap();
        // A fixture imitating the user's own programs, not a destination write.
        #[allow(clippy::disallowed_methods)]
        fs::rename(&tmp, self.path(rel)).unwrap();
        self
    }

    /// A directory (and its parents).
    pub fn dir(&self, rel: &str) -> &Self {
        fs::create_dir_all(self.path(rel)).unwrap();
        self
    }

    /// A symlink at `rel` whose target is `target`, verbatim.
    pub fn symlink(&self, rel: &str, target: &str) -> &Self {
        self.parent(rel);
        std::os::unix::fs::symlink(target, self.path(rel)).unwrap();
        self
    }

    /// A hard link at `rel` to the existing entry `existing`.
    pub fn hardlink(&self, rel: &str, existing: &str) -> &Self {
        self.parent(rel);
        fs::hard_link(self.path(existing), self.path(rel)).unwrap();
        self
    }

    /// A named pipe.
    pub fn fifo(&self, rel: &str) -> &Self {
        self.parent(rel);
        let st = Command::new("mkfifo").arg(self.path(rel)).status().unwrap();
        assert!(st.success(), "mkfifo {rel}");
        self
    }

    /// Permission bits, including setuid, setgid and sticky (not for symlinks).
    pub fn mode(&self, rel: &str, mode: u32) -> &Self {
        fs::set_permissions(self.path(rel), fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    /// Numeric owner and group, without following a symlink.
    pub fn owner(&self, rel: &str, uid: u32, gid: u32) -> &Self {
        std::os::unix::fs::lchown(self.path(rel), Some(uid), Some(gid)).unwrap();
        self
    }

    /// The modification time, to the nanosecond, without following a symlink. Set a
    /// directory's time after its contents: adding entries moves it.
    pub fn mtime(&self, rel: &str, sec: i64, nsec: u32) -> &Self {
        let p = self.path(rel);
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_file() || m.is_dir() {
            let t = if sec >= 0 {
                UNIX_EPOCH + Duration::new(sec as u64, nsec)
            } else {
                UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs())
                    + Duration::from_nanos(nsec.into())
            };
            let f = fs::File::open(&p).unwrap();
            f.set_times(fs::FileTimes::new().set_modified(t)).unwrap();
        } else {
            let st = Command::new("touch")
                .arg("-h")
                .arg("-d")
                .arg(format!("@{sec}.{nsec:09}"))
                .arg(&p)
                .status()
                .unwrap();
            assert!(st.success(), "touch -h {rel}");
        }
        self
    }

    /// The modification time set `age` before now (keeping a nanosecond part).
    pub fn age(&self, rel: &str, age: Duration) -> &Self {
        let t = SystemTime::now() - age;
        let d = t.duration_since(UNIX_EPOCH).unwrap();
        self.mtime(rel, d.as_secs() as i64, d.subsec_nanos())
    }

    /// Removes a file, symlink or whole directory.
    pub fn remove(&self, rel: &str) -> &Self {
        let p = self.path(rel);
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            fs::remove_dir_all(p).unwrap();
        } else {
            fs::remove_file(p).unwrap();
        }
        self
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        fs::read(self.path(rel)).unwrap()
    }

    pub fn exists(&self, rel: &str) -> bool {
        fs::symlink_metadata(self.path(rel)).is_ok()
    }

    pub fn lstat(&self, rel: &str) -> fs::Metadata {
        fs::symlink_metadata(self.path(rel)).unwrap()
    }

    /// The listing of the whole tree.
    pub fn list(&self) -> Listing {
        Listing::of(&self.root)
    }
}

/// What a listing knows of one entry. Directories have size 0 and hash 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// `f` file, `d` directory, `l` symlink, `p` fifo, `s` socket, `c`/`b` devices.
    pub kind: char,
    /// Permission bits with setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time (seconds, nanoseconds).
    pub mtime: (i64, u32),
    pub size: u64,
    /// Content hash of regular files.
    pub hash: u64,
    /// Symlink target, verbatim.
    pub target: Option<String>,
    /// All paths of the tree sharing this file's inode, when there are several.
    pub links: Option<BTreeSet<String>>,
    /// Inode number (not compared by [`diff`]).
    pub ino: u64,
}

/// A whole tree: relative path → entry; the root is `.`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    pub items: BTreeMap<String, Item>,
}

/// A content hash good enough to tell test files apart (not cryptographic).
pub fn hash(data: &[u8]) -> u64 {
    let mut h: u64 = 0x9E37_79B9_7F4A_7C15 ^ data.len() as u64;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap());
        h = (h ^ w).wrapping_mul(0xFF51_AFD7_ED55_8CCD).rotate_left(29);
    }
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b))
            .wrapping_mul(0xC4CE_B9FE_1A85_EC53)
            .rotate_left(17);
    }
    h ^ (h >> 31)
}

impl Listing {
    /// Lists `root` with `lstat`, never following links.
    pub fn of(root: &Path) -> Listing {
        let mut items = BTreeMap::new();
        let mut inodes: HashMap<(u64, u64), BTreeSet<String>> = HashMap::new();
        let mut stack = vec![(root.to_path_buf(), ".".to_string())];
        while let Some((p, rel)) = stack.pop() {
            let m = fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_file() {
                'f'
            } else if ft.is_dir() {
                'd'
            } else if ft.is_symlink() {
                'l'
            } else if ft.is_fifo() {
                'p'
            } else if ft.is_socket() {
                's'
            } else if ft.is_char_device() {
                'c'
            } else {
                'b'
            };
            let (size, h) = if kind == 'f' {
                (m.size(), hash(&fs::read(&p).unwrap()))
            } else {
                (0, 0)
            };
            let target = (kind == 'l').then(|| {
                fs::read_link(&p)
                    .unwrap()
                    .to_str()
                    .expect("UTF-8 link target")
                    .to_string()
            });
            if kind == 'f' && m.nlink() > 1 {
                inodes
                    .entry((m.dev(), m.ino()))
                    .or_default()
                    .insert(rel.clone());
            }
            if kind == 'd' {
                for e in fs::read_dir(&p).unwrap() {
                    let e = e.unwrap();
                    let name = e.file_name().into_string().expect("UTF-8 names");
                    let child = if rel == "." {
                        name
                    } else {
                        format!("{rel}/{name}")
                    };
                    stack.push((e.path(), child));
                }
            }
            items.insert(
                rel,
                Item {
                    kind,
                    mode: m.mode() & 0o7777,
                    uid: m.uid(),
                    gid: m.gid(),
                    mtime: (m.mtime(), m.mtime_nsec() as u32),
                    size,
                    hash: h,
                    target,
                    links: None,
                    ino: m.ino(),
                },
            );
        }
        for group in inodes.into_values().filter(|g| g.len() > 1) {
            for p in &group {
                items.get_mut(p).unwrap().links = Some(group.clone());
            }
        }
        Listing { items }
    }

    /// Paths of the regular files.
    pub fn files(&self) -> BTreeSet<String> {
        self.items
            .iter()
            .filter(|(_, i)| i.kind == 'f')
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Every path except the root.
    pub fn paths(&self) -> BTreeSet<String> {
        self.items.keys().filter(|p| *p != ".").cloned().collect()
    }

    pub fn get(&self, rel: &str) -> &Item {
        self.items
            .get(rel)
            .unwrap_or_else(|| panic!("{rel} not in the listing"))
    }

    /// The same listing without the entries `drop` selects.
    pub fn without(&self, drop: impl Fn(&str, &Item) -> bool) -> Listing {
        Listing {
            items: self
                .items
                .iter()
                .filter(|(p, i)| !drop(p, i))
                .map(|(p, i)| (p.clone(), i.clone()))
                .collect(),
        }
    }

    /// The same listing with each entry rewritten by `f` (to ignore a field, say).
    pub fn map(&self, f: impl Fn(&str, &mut Item)) -> Listing {
        let mut l = self.clone();
        for (p, i) in l.items.iter_mut() {
            f(p, i);
        }
        l
    }
}

fn show_item(i: &Item) -> String {
    let mut s = format!(
        "{} {:04o} {}:{} {}.{:09} size {} hash {:016x}",
        i.kind, i.mode, i.uid, i.gid, i.mtime.0, i.mtime.1, i.size, i.hash
    );
    if let Some(t) = &i.target {
        s.push_str(&format!(" -> {t}"));
    }
    if let Some(l) = &i.links {
        s.push_str(&format!(" links {l:?}"));
    }
    s
}

/// A readable diff of two listings, one line per difference (empty when equal). Inode numbers
/// are not compared; hard-link groups are.
pub fn diff(a: &Listing, b: &Listing) -> Vec<String> {
    let mut out = Vec::new();
    for (p, x) in &a.items {
        let Some(y) = b.items.get(p) else {
            out.push(format!("only left:  {p}  [{}]", show_item(x)));
            continue;
        };
        let mut what = Vec::new();
        if x.kind != y.kind {
            what.push(format!("kind {} vs {}", x.kind, y.kind));
        }
        if x.mode != y.mode {
            what.push(format!("mode {:04o} vs {:04o}", x.mode, y.mode));
        }
        if (x.uid, x.gid) != (y.uid, y.gid) {
            what.push(format!("owner {}:{} vs {}:{}", x.uid, x.gid, y.uid, y.gid));
        }
        if x.mtime != y.mtime {
            what.push(format!(
                "mtime {}.{:09} vs {}.{:09}",
                x.mtime.0, x.mtime.1, y.mtime.0, y.mtime.1
            ));
        }
        if x.size != y.size {
            what.push(format!("size {} vs {}", x.size, y.size));
        }
        if x.hash != y.hash {
            what.push("content differs".into());
        }
        if x.target != y.target {
            what.push(format!("target {:?} vs {:?}", x.target, y.target));
        }
        if x.links != y.links {
            what.push(format!("hard links {:?} vs {:?}", x.links, y.links));
        }
        if !what.is_empty() {
            out.push(format!("{p}: {}", what.join(", ")));
        }
    }
    for (p, y) in &b.items {
        if !a.items.contains_key(p) {
            out.push(format!("only right: {p}  [{}]", show_item(y)));
        }
    }
    out
}

/// Panics with the diff when two listings differ.
#[track_caller]
pub fn assert_same(left: &Listing, right: &Listing, what: &str) {
    let d = diff(left, right);
    assert!(
        d.is_empty(),
        "{what}: trees differ ({} lines):\n  {}",
        d.len(),
        d.join("\n  ")
    );
}

/// Seconds since the epoch now.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// One day.
pub const DAY: Duration = Duration::from_secs(86_400);
/// One hour.
pub const HOUR: Duration = Duration::from_secs(3_600);

/// Fills `t` with every kind of entry and odd metadata: modes with setuid, setgid and sticky
/// bits, numeric owners without names, nanosecond mtimes on files, directories and symlinks,
/// symlinks (absolute, relative, dangling, leading out of the tree), two hard-link groups, an
/// empty directory and a fifo. Directory times are set last, deepest first.
pub fn full_tree(t: &Tree) {
    t.file("a.txt", data(1, 3000))
        .mode("a.txt", 0o644)
        .owner("a.txt", 1234, 5678)
        .file("bin/setuid", data(2, 100))
        .mode("bin/setuid", 0o4755)
        .file("bin/setgid", data(3, 100))
        .mode("bin/setgid", 0o2750)
        .owner("bin/setgid", 0, 5000)
        .file("private", "secret")
        .mode("private", 0o600)
        .owner("private", 5000, 5000)
        .file("big.dat", data(4, 300_000))
        .file("empty-file", "")
        .dir("tmp/sticky")
        .mode("tmp/sticky", 0o1777)
        .dir("empty/deeper")
        .dir("locked")
        .mode("locked", 0o700)
        .owner("locked", 4000, 4001)
        .file("mail/cur/1", "message one")
        .hardlink("mail/cur/1-link", "mail/cur/1")
        .hardlink("mail/new/1-again", "mail/cur/1")
        .file("h/x", "group two")
        .hardlink("h/y", "h/x")
        .owner("h/x", 77, 88)
        .symlink("abs-link", "/etc/hostname")
        .symlink("rel-link", "a.txt")
        .symlink("mail/up-link", "../bin/setuid")
        .symlink("dangling", "does/not/exist")
        .symlink("outside", "../../outside-the-tree")
        .owner("outside", 3000, 3001)
        .fifo("pipe")
        .mode("pipe", 0o640);
    let mut n = 0u32;
    for p in [
        "a.txt",
        "bin/setuid",
        "bin/setgid",
        "private",
        "big.dat",
        "empty-file",
        "mail/cur/1",
        "h/x",
        "abs-link",
        "rel-link",
        "mail/up-link",
        "dangling",
        "outside",
        "pipe",
    ] {
        n += 1;
        t.mtime(
            p,
            1_600_000_000 + i64::from(n) * 1000,
            n * 111_111_111 % 1_000_000_000 + 1,
        );
    }
    for d in [
        "tmp/sticky",
        "tmp",
        "empty/deeper",
        "empty",
        "locked",
        "mail/cur",
        "mail/new",
        "mail",
        "h",
        "bin",
        ".",
    ] {
        n += 1;
        t.mtime(d, 1_500_000_000 + i64::from(n) * 777, n * 7_654_321 + 3);
    }
}
