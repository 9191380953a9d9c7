//! `deltasync robocopy SOURCE DESTINATION [FILE...] [/OPTIONS]`: robocopy's command line,
//! translated into one delta-core sync job, with robocopy's exit bitmask and a robocopy-like
//! log.
//!
//! Grammar (reference §1.1): switches are case-insensitive and start with `/` or `-`
//! (`/XF`, `-xf`, `/r:2`, `/LOG+:file`). The first two bare words are SOURCE and DESTINATION;
//! later bare words are include file names (default `*.*`) until `/XF` starts the list of
//! file exclusions or `/XD` the list of directory exclusions; each of those two lists runs
//! until the other switch appears (other switches in between don't end it). [`SWITCHES`] is
//! the one definition of every switch: the parser, `/?` and the tests read it. A word that
//! starts with `/` and contains another `/` is a Linux path, not a switch; a one-component
//! absolute path (`/data`) counts as a path if it exists, otherwise it is an unknown switch
//! (write `/data/` for a destination still to be created). Both `\` and `/` separate path
//! components. A UNC path (`\\server\share\dir`) or a drive letter (`D:\dir`) is refused with
//! the mount point to use instead.
//!
//! Meaning (reference §1): names match case-insensitively at every depth, `/XF` never applies
//! to directories, the skip rule is equal size and equal last-write time, `/S` creates no
//! empty directories and `/E` does, without either only the top directory is copied,
//! `/PURGE` deletes destination entries missing from the source (`/MIR` = `/E /PURGE`), and
//! entries not selected are never "extra", so never purged. One deliberate difference: an
//! extra directory holding files the patterns don't select keeps them (and so stays), where
//! robocopy removes the whole directory. `/COPY:` letters: D data (required),
//! A attributes → permission bits, T timestamps, S (security), O (owner) and U (auditing) →
//! numeric owner and group; default `DAT`. Hard links are copied as separate files and
//! symlinks as symlinks. `/R:n` and `/W:n` are the retries of a file that keeps changing
//! while read (deltasync's defaults, 2 and 2 s, when absent: robocopy's 1,000,000 and 30 s
//! would stall on a live file); `/MT[:n]` is the number of parallel transfers (8 when bare;
//! deltasync's default when absent); `/L` is a dry run. `/Z` is accepted: every copy goes to a
//! temporary and is renamed into place, so an interrupted one never damages the destination.
//!
//! Exit code: robocopy's bitmask, 1 files copied, 2 extra entries in the destination (found
//! or purged), 8 failures (including deletions stopped by a safety rail), 16 fatal (usage, a
//! source that cannot be read), and 4 for type mismatches (a directory in the destination
//! where the source has a file), which `/PURGE` and `/MIR` replace.
//!
//! Safety: the core's rails stay on. Deletions that would remove more than half of the
//! destination, empty it from an empty source, or reach into a file system's root (the
//! `D:\ MailArchive` typo) are refused unless `/FORCE-DELETE` (a deltasync switch, also
//! spelled `--force-delete`).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use delta_core::exec::{Change, Event, Problem, Report};
use delta_core::filter::{RobocopyAge, RobocopyFilterBuilder};
use delta_core::plan::Action;
use delta_core::scan::EntryKind;
use delta_core::sync::{Mode, SyncBuilder};

/// Every switch `deltasync robocopy` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sw {
    S,
    E,
    Purge,
    Mir,
    Xf,
    Xd,
    MinAge,
    MaxAge,
    Min,
    Max,
    R,
    W,
    Mt,
    L,
    Xo,
    Xn,
    Xc,
    Xx,
    Xl,
    Is,
    Np,
    Ndl,
    Nfl,
    Njh,
    Njs,
    V,
    Log,
    LogAppend,
    Tee,
    Copy,
    Sec,
    CopyAll,
    Z,
    Bytes,
    Fp,
    Ns,
    Nc,
    ForceDelete,
    Help,
}

/// Whether a switch takes a `:value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Val {
    No,
    Required(&'static str),
    Optional(&'static str),
}

/// One switch: its name (upper case), its value, its help line.
#[derive(Debug)]
pub struct SwDef {
    pub sw: Sw,
    pub name: &'static str,
    pub value: Val,
    pub help: &'static str,
}

const fn sw(sw: Sw, name: &'static str, value: Val, help: &'static str) -> SwDef {
    SwDef {
        sw,
        name,
        value,
        help,
    }
}

/// The switches, in the order `/?` lists them.
pub const SWITCHES: &[SwDef] = &[
    sw(Sw::S, "S", Val::No, "copy subdirectories, but not empty ones"),
    sw(Sw::E, "E", Val::No, "copy subdirectories, including empty ones"),
    sw(Sw::Purge, "PURGE", Val::No, "delete destination files and directories that no longer exist in the source"),
    sw(Sw::Mir, "MIR", Val::No, "mirror a directory tree (/E plus /PURGE)"),
    sw(Sw::Xf, "XF", Val::No, "exclude files matching the following names, paths or wildcards"),
    sw(Sw::Xd, "XD", Val::No, "exclude directories matching the following names or paths"),
    sw(Sw::MinAge, "MINAGE", Val::Required("n"), "exclude files newer than n days (n < 1900) or than the date YYYYMMDD"),
    sw(Sw::MaxAge, "MAXAGE", Val::Required("n"), "exclude files older than n days (n < 1900) or than the date YYYYMMDD"),
    sw(Sw::Min, "MIN", Val::Required("n"), "exclude files smaller than n bytes"),
    sw(Sw::Max, "MAX", Val::Required("n"), "exclude files bigger than n bytes"),
    sw(Sw::R, "R", Val::Required("n"), "retries of a file that keeps changing while it is read (default 2)"),
    sw(Sw::W, "W", Val::Required("n"), "seconds between those retries (default 2)"),
    sw(Sw::Mt, "MT", Val::Optional("n"), "n files copied at once, 1 to 128 (default 8)"),
    sw(Sw::L, "L", Val::No, "list only: copy, delete and time-stamp nothing"),
    sw(Sw::Xo, "XO", Val::No, "exclude older files (source older than destination)"),
    sw(Sw::Xn, "XN", Val::No, "exclude newer files (source newer than destination)"),
    sw(Sw::Xc, "XC", Val::No, "exclude changed files (same time, different size)"),
    sw(Sw::Xx, "XX", Val::No, "exclude extra files and directories (and so cancel /PURGE deletions)"),
    sw(Sw::Xl, "XL", Val::No, "exclude lonely files (absent from the destination)"),
    sw(Sw::Is, "IS", Val::No, "include same files (copy them again)"),
    sw(Sw::Np, "NP", Val::No, "no progress percentage (deltasync never prints one)"),
    sw(Sw::Ndl, "NDL", Val::No, "no directory lines"),
    sw(Sw::Nfl, "NFL", Val::No, "no file lines"),
    sw(Sw::Njh, "NJH", Val::No, "no job header"),
    sw(Sw::Njs, "NJS", Val::No, "no job summary"),
    sw(Sw::V, "V", Val::No, "verbose: also list skipped files"),
    sw(Sw::Log, "LOG", Val::Required("file"), "write the log to file (overwrite), not to the console"),
    sw(Sw::LogAppend, "LOG+", Val::Required("file"), "append the log to file, not to the console"),
    sw(Sw::Tee, "TEE", Val::No, "with /LOG, also write to the console"),
    sw(Sw::Copy, "COPY", Val::Required("flags"), "what to copy of files: D data, A attributes (permission bits), T timestamps, S O U owner and group; default DAT"),
    sw(Sw::Sec, "SEC", Val::No, "same as /COPY:DATS"),
    sw(Sw::CopyAll, "COPYALL", Val::No, "same as /COPY:DATSOU"),
    sw(Sw::Z, "Z", Val::No, "restartable mode (always: copies are renamed into place when complete)"),
    sw(Sw::Bytes, "BYTES", Val::No, "print sizes as bytes"),
    sw(Sw::Fp, "FP", Val::No, "print full path names"),
    sw(Sw::Ns, "NS", Val::No, "no sizes in file lines"),
    sw(Sw::Nc, "NC", Val::No, "no file classes in file lines"),
    sw(Sw::ForceDelete, "FORCE-DELETE", Val::No, "deltasync: delete even when a safety rail says no (most of the destination, an empty source, a file system's root)"),
    sw(Sw::Help, "?", Val::No, "show this help"),
];

/// A command line robocopy would refuse (exit 16).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// An unknown switch, at 1-based position `index`.
    InvalidParameter { index: usize, arg: String },
    /// A switch whose value is missing or wrong.
    BadValue { switch: String, reason: String },
    /// A path deltasync cannot use as given.
    Path(String),
    /// SOURCE or DESTINATION missing.
    MissingPaths,
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UsageError::InvalidParameter { index, arg } => {
                write!(f, "Invalid Parameter #{index} : \"{arg}\": unknown switch")?;
                if arg.starts_with('/') && !arg[1..].contains(['/', ':']) {
                    write!(f, " (a directory at the root that does not exist yet must be written {arg}/ to tell it from a switch)")?;
                }
                Ok(())
            }
            UsageError::BadValue { switch, reason } => {
                write!(f, "Invalid Parameter \"{switch}\": {reason}")
            }
            UsageError::Path(m) => f.write_str(m),
            UsageError::MissingPaths => f.write_str(
                "No Destination Directory Specified (usage: deltasync robocopy SOURCE DESTINATION [FILE...] [/OPTIONS])",
            ),
        }
    }
}

/// How deep the copy goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Depth {
    /// Only the top directory.
    #[default]
    Top,
    /// `/S`: subdirectories, not empty ones.
    Subdirs,
    /// `/E`: subdirectories including empty ones.
    All,
}

/// What `/COPY:` asks to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyFlags {
    pub data: bool,
    pub attributes: bool,
    pub timestamps: bool,
    pub owner: bool,
}

impl Default for CopyFlags {
    fn default() -> Self {
        CopyFlags {
            data: true,
            attributes: true,
            timestamps: true,
            owner: false,
        }
    }
}

impl CopyFlags {
    /// Parses robocopy's letters `DATSOUX`.
    pub fn parse(text: &str) -> Result<CopyFlags, String> {
        let mut f = CopyFlags {
            data: false,
            attributes: false,
            timestamps: false,
            owner: false,
        };
        for c in text.chars() {
            match c.to_ascii_uppercase() {
                'D' => f.data = true,
                'A' => f.attributes = true,
                'T' => f.timestamps = true,
                'S' | 'O' | 'U' => f.owner = true,
                // X: skip alternate data streams, which Linux files don't have.
                'X' => {}
                other => return Err(format!("unknown copy flag {other:?} (use D A T S O U X)")),
            }
        }
        if !f.data {
            return Err("copying without D (data) is not supported".into());
        }
        Ok(f)
    }
}

/// Where the log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    pub path: PathBuf,
    pub append: bool,
}

/// The resolved options of one command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RobocopyArgs {
    /// SOURCE as written (for `/XF` and `/XD` full paths) and as a Linux path.
    pub source_written: String,
    pub source: PathBuf,
    pub dest_written: String,
    pub dest: PathBuf,
    pub files: Vec<String>,
    pub exclude_files: Vec<String>,
    pub exclude_dirs: Vec<String>,
    pub depth: Depth,
    pub purge: bool,
    pub min_age: Option<String>,
    pub max_age: Option<String>,
    pub min_size: Option<u64>,
    pub max_size: Option<u64>,
    pub retries: Option<u32>,
    pub wait: Option<u32>,
    pub threads: Option<usize>,
    pub list_only: bool,
    pub xo: bool,
    pub xn: bool,
    pub xc: bool,
    pub xx: bool,
    pub xl: bool,
    pub is: bool,
    pub ndl: bool,
    pub nfl: bool,
    pub njh: bool,
    pub njs: bool,
    pub verbose: bool,
    pub log: Option<LogTarget>,
    pub tee: bool,
    pub copy: CopyFlags,
    pub bytes: bool,
    pub full_paths: bool,
    pub no_sizes: bool,
    pub no_classes: bool,
    pub force_delete: bool,
    /// The switches as given, upper-cased, for the log header.
    pub shown: Vec<String>,
}

/// What a command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Run(Box<RobocopyArgs>),
    Help,
}

/// Which list bare words after the two paths go to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum List {
    Files,
    ExcludeFiles,
    ExcludeDirs,
}

fn find(name: &str) -> Option<&'static SwDef> {
    SWITCHES.iter().find(|d| d.name.eq_ignore_ascii_case(name))
}

/// Splits `arg` into a switch and its value, or `None` for a bare word (a name or a path).
fn switch(arg: &str, index: usize) -> Result<Option<(&'static SwDef, Option<&str>)>, UsageError> {
    let body = if let Some(b) = arg.strip_prefix("--") {
        b
    } else if let Some(b) = arg.strip_prefix(['/', '-']) {
        b
    } else {
        return Ok(None);
    };
    let (name, value) = match body.split_once(':') {
        Some((n, v)) => (n, Some(v)),
        None => (body, None),
    };
    if name.contains(['/', '\\']) || (arg.starts_with('-') && name.is_empty()) {
        return Ok(None);
    }
    match find(name) {
        Some(d) => Ok(Some((d, value))),
        // An existing directory or file at the root, such as /data.
        None if arg.starts_with('/') && Path::new(arg).exists() => Ok(None),
        None => Err(UsageError::InvalidParameter {
            index,
            arg: arg.to_owned(),
        }),
    }
}

/// A Windows path made Linux: `\` separates components; UNC paths and drive letters are
/// refused with the mount point to use.
pub fn linux_path(raw: &str) -> Result<PathBuf, UsageError> {
    let unix = raw.replace('\\', "/");
    if let Some(rest) = unix.strip_prefix("//") {
        let mut parts = rest.splitn(3, '/');
        let server = parts.next().unwrap_or("server");
        let share = parts.next().unwrap_or("share");
        let dir = parts.next().unwrap_or("");
        return Err(UsageError::Path(format!(
            "{raw} is a UNC path: mount the share first (e.g. `mount -t cifs '//{server}/{share}' '/mnt/{server}/{share}' -o username=...`) and give /mnt/{server}/{share}/{dir}"
        )));
    }
    let b = unix.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        let drive = char::from(b[0]).to_ascii_lowercase();
        return Err(UsageError::Path(format!(
            "{raw} names a Windows drive: give the directory where that volume is mounted (e.g. /mnt/{drive}{})",
            unix[2..].trim_end_matches('/')
        )));
    }
    Ok(PathBuf::from(unix))
}

/// Parses the arguments after `robocopy`.
pub fn parse(args: &[OsString]) -> Result<Parsed, UsageError> {
    let mut a = RobocopyArgs::default();
    let mut list = List::Files;
    let mut source = None;
    let mut dest = None;
    for (i, raw) in args.iter().enumerate() {
        let index = i + 1;
        let arg = raw.to_str().ok_or_else(|| {
            UsageError::Path(format!(
                "argument #{index} ({}) is not valid UTF-8",
                raw.to_string_lossy()
            ))
        })?;
        let Some((def, value)) = switch(arg, index)? else {
            match list {
                List::Files if source.is_none() => source = Some(arg.to_owned()),
                List::Files if dest.is_none() => dest = Some(arg.to_owned()),
                List::Files => a.files.push(arg.to_owned()),
                List::ExcludeFiles => a.exclude_files.push(arg.to_owned()),
                List::ExcludeDirs => a.exclude_dirs.push(arg.to_owned()),
            }
            continue;
        };
        let bad = |reason: String| UsageError::BadValue {
            switch: arg.to_owned(),
            reason,
        };
        let value = match (def.value, value) {
            (Val::No, Some(_)) => return Err(bad("takes no value".into())),
            (Val::Required(n), None | Some("")) => {
                return Err(bad(format!("needs a value: /{}:{n}", def.name)))
            }
            (_, v) => v,
        };
        let number = |v: Option<&str>| -> Result<u64, UsageError> {
            v.unwrap_or_default()
                .parse::<u64>()
                .map_err(|_| bad("not a number".into()))
        };
        a.shown.push(match value {
            Some(v) => format!("/{}:{v}", def.name),
            None => format!("/{}", def.name),
        });
        match def.sw {
            Sw::S => a.depth = a.depth.max_with(Depth::Subdirs),
            Sw::E => a.depth = Depth::All,
            Sw::Purge => a.purge = true,
            Sw::Mir => {
                a.depth = Depth::All;
                a.purge = true;
            }
            Sw::Xf => list = List::ExcludeFiles,
            Sw::Xd => list = List::ExcludeDirs,
            Sw::MinAge | Sw::MaxAge => {
                let v = value.unwrap_or_default();
                RobocopyAge::parse(v).map_err(|r| bad(r.into()))?;
                if def.sw == Sw::MinAge {
                    a.min_age = Some(v.to_owned());
                } else {
                    a.max_age = Some(v.to_owned());
                }
            }
            Sw::Min => a.min_size = Some(number(value)?),
            Sw::Max => a.max_size = Some(number(value)?),
            Sw::R => {
                a.retries =
                    Some(u32::try_from(number(value)?).map_err(|_| bad("too large".into()))?)
            }
            Sw::W => {
                let w = number(value)?;
                if w > 86_400 {
                    return Err(bad("more than a day".into()));
                }
                a.wait = Some(w as u32);
            }
            Sw::Mt => {
                let n = match value {
                    None => 8,
                    Some(_) => number(value)?,
                };
                if !(1..=128).contains(&n) {
                    return Err(bad("threads must be 1 to 128".into()));
                }
                a.threads = Some(n as usize);
            }
            Sw::L => a.list_only = true,
            Sw::Xo => a.xo = true,
            Sw::Xn => a.xn = true,
            Sw::Xc => a.xc = true,
            Sw::Xx => a.xx = true,
            Sw::Xl => a.xl = true,
            Sw::Is => a.is = true,
            Sw::Np | Sw::Z => {}
            Sw::Ndl => a.ndl = true,
            Sw::Nfl => a.nfl = true,
            Sw::Njh => a.njh = true,
            Sw::Njs => a.njs = true,
            Sw::V => a.verbose = true,
            Sw::Log | Sw::LogAppend => {
                a.log = Some(LogTarget {
                    path: linux_path(value.unwrap_or_default())?,
                    append: def.sw == Sw::LogAppend,
                })
            }
            Sw::Tee => a.tee = true,
            Sw::Copy => a.copy = CopyFlags::parse(value.unwrap_or_default()).map_err(bad)?,
            Sw::Sec | Sw::CopyAll => a.copy = CopyFlags::parse("DATSOU").map_err(bad)?,
            Sw::Bytes => a.bytes = true,
            Sw::Fp => a.full_paths = true,
            Sw::Ns => a.no_sizes = true,
            Sw::Nc => a.no_classes = true,
            Sw::ForceDelete => a.force_delete = true,
            Sw::Help => return Ok(Parsed::Help),
        }
    }
    let (Some(source), Some(dest)) = (source, dest) else {
        return Err(UsageError::MissingPaths);
    };
    a.source = linux_path(&source)?;
    a.dest = linux_path(&dest)?;
    a.source_written = source;
    a.dest_written = dest;
    for f in &a.files {
        if f.contains(['/', '\\']) {
            return Err(UsageError::Path(format!(
                "{f}: file names after SOURCE and DESTINATION are names or wildcards, not paths"
            )));
        }
    }
    Ok(Parsed::Run(Box::new(a)))
}

impl Depth {
    fn max_with(self, other: Depth) -> Depth {
        match (self, other) {
            (Depth::All, _) | (_, Depth::All) => Depth::All,
            (Depth::Subdirs, _) | (_, Depth::Subdirs) => Depth::Subdirs,
            _ => Depth::Top,
        }
    }
}

/// The help text, from [`SWITCHES`].
pub fn help() -> String {
    let mut s = String::from(
        "Usage: deltasync robocopy SOURCE DESTINATION [FILE...] [/OPTIONS]\n\n\
         robocopy's command line on deltasync's engine, between local directories. FILE are\n\
         name patterns (default *.*); /XF and /XD start lists of excluded files and\n\
         directories. Switches are case-insensitive, /XF or -xf.\n\nSwitches:\n",
    );
    for d in SWITCHES {
        let name = match d.value {
            Val::No => format!("/{}", d.name),
            Val::Required(v) => format!("/{}:{v}", d.name),
            Val::Optional(v) => format!("/{}[:{v}]", d.name),
        };
        let _ = writeln!(s, "  {name:<16} {}", d.help);
    }
    s.push_str(
        "\nExit code (a bitmask): 1 files copied, 2 extra entries, 8 failures (or deletions\n\
         refused by a safety rail), 16 fatal error. 0 to 7 mean success.\n",
    );
    s
}

/// Runs `deltasync robocopy ARGS` and returns robocopy's exit code.
pub fn run(args: Vec<OsString>) -> ExitCode {
    match parse(&args) {
        Ok(Parsed::Help) => {
            print!("{}", help());
            ExitCode::SUCCESS
        }
        Ok(Parsed::Run(a)) => ExitCode::from(copy(&a)),
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("ERROR : {e}");
                eprintln!("       Simple Usage :: deltasync robocopy SOURCE DESTINATION [FILE...] [/OPTIONS]  (/? for help)");
            }
            ExitCode::from(16)
        }
    }
}

const RULE: &str =
    "-------------------------------------------------------------------------------";

fn copy(a: &RobocopyArgs) -> u8 {
    let sink = match Sink::open(a) {
        Ok(s) => s,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("ERROR : cannot open the log file: {e}");
            }
            return 16;
        }
    };
    let printer = Arc::new(RoboPrinter::new(a, sink));
    let started = SystemTime::now();
    if !a.njh {
        printer.header(a, started);
    }
    let mut f = RobocopyFilterBuilder::new();
    for p in &a.files {
        f.include(p);
    }
    for p in &a.exclude_files {
        f.exclude_file(p);
    }
    for p in &a.exclude_dirs {
        f.exclude_dir(p);
    }
    if a.depth == Depth::Top {
        // Without /S or /E robocopy stays in the top directory.
        f.exclude_dir("*");
    }
    f.root(&a.source_written.replace('\\', "/"))
        .root(&a.dest_written.replace('\\', "/"));
    if let Some(v) = &a.min_age {
        f.min_age(v);
    }
    if let Some(v) = &a.max_age {
        f.max_age(v);
    }
    if let Some(v) = a.min_size {
        f.min_size(v);
    }
    if let Some(v) = a.max_size {
        f.max_size(v);
    }
    let filter = match f.build() {
        Ok(f) => f,
        Err(e) => {
            printer.fatal(&format!("ERROR : Invalid Parameter: {e}"));
            return 16;
        }
    };
    let mode = if a.purge && !a.xx {
        Mode::Sync
    } else {
        Mode::Copy
    };
    let p = printer.clone();
    let job = SyncBuilder::new(mode, &a.source, &a.dest)
        .filter(filter)
        .callback(Arc::new(move |e: &Event<'_>| p.event(e)))
        .configure(|o| {
            o.dry_run = a.list_only;
            o.empty_dirs = a.depth != Depth::Subdirs;
            o.hard_links = false;
            o.compare.skip_older = a.xo;
            o.compare.skip_newer = a.xn;
            o.compare.skip_changed = a.xc;
            o.compare.skip_new = a.xl;
            o.compare.ignore_times = a.is;
            if let Some(r) = a.retries {
                o.transfer.retries = r;
            }
            if let Some(w) = a.wait {
                o.transfer.retry_wait = Duration::from_secs(u64::from(w));
            }
            if let Some(n) = a.threads {
                o.transfers = n;
            }
            let meta = &mut o.transfer.meta;
            meta.perms = a.copy.attributes;
            meta.times = a.copy.timestamps;
            meta.owner = a.copy.owner;
            meta.group = a.copy.owner;
            o.compare.meta = o.transfer.meta;
            o.force_delete = a.force_delete;
        })
        .build();
    let report = match job.and_then(|j| j.run()) {
        Ok(r) => r,
        Err(e) => {
            printer.fatal(&format!("ERROR : {e}"));
            return 16;
        }
    };
    let code = exit_code(&report, a.xx);
    if !a.njs {
        printer.summary(&report, a, started);
    }
    code
}

/// robocopy's bitmask for a finished pass.
pub fn exit_code(r: &Report, xx: bool) -> u8 {
    let s = &r.stats;
    let mut code = 0;
    if s.files_created + s.files_updated + s.links_created > 0 {
        code |= 1;
    }
    if !xx && s.extra + s.deleted + s.deletes_skipped > 0 {
        code |= 2;
    }
    if s.mismatched > 0 {
        code |= 4;
    }
    if s.errors + s.vanished > 0 || r.deletions_stopped.is_some() {
        code |= 8;
    }
    code
}

/// The console, a log file, or both (`/TEE`).
struct Sink {
    console: bool,
    log: Option<File>,
}

impl Sink {
    fn open(a: &RobocopyArgs) -> std::io::Result<Sink> {
        let log = match &a.log {
            None => None,
            Some(t) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(t.append)
                    .truncate(!t.append)
                    .open(&t.path)?,
            ),
        };
        Ok(Sink {
            console: log.is_none() || a.tee,
            log,
        })
    }

    fn line(&mut self, s: &str) {
        if self.console {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{s}");
        }
        if let Some(f) = &mut self.log {
            let _ = writeln!(f, "{s}");
        }
    }
}

/// robocopy-like lines: header, per-entry lines, errors, summary.
struct RoboPrinter {
    sink: Mutex<Sink>,
    ndl: bool,
    nfl: bool,
    verbose: bool,
    bytes: bool,
    no_sizes: bool,
    no_classes: bool,
    /// Prefix of full paths (`/FP`).
    root: Option<String>,
    /// Directory lines name the whole source path, as robocopy's do.
    dir_root: String,
    files_copied: AtomicU64,
    files_skipped: AtomicU64,
    files_failed: AtomicU64,
    extra_files: AtomicU64,
    extra_dirs: AtomicU64,
}

impl RoboPrinter {
    fn new(a: &RobocopyArgs, sink: Sink) -> Self {
        RoboPrinter {
            sink: Mutex::new(sink),
            ndl: a.ndl,
            nfl: a.nfl,
            verbose: a.verbose,
            bytes: a.bytes,
            no_sizes: a.no_sizes,
            no_classes: a.no_classes,
            root: a.full_paths.then(|| with_slash(&a.source)),
            dir_root: with_slash(&a.source),
            files_copied: AtomicU64::new(0),
            files_skipped: AtomicU64::new(0),
            files_failed: AtomicU64::new(0),
            extra_files: AtomicU64::new(0),
            extra_dirs: AtomicU64::new(0),
        }
    }

    fn line(&self, s: &str) {
        self.sink.lock().unwrap_or_else(|e| e.into_inner()).line(s);
    }

    /// Errors also reach standard error when the log goes only to a file.
    fn error(&self, s: &str) {
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        sink.line(s);
        if !sink.console {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{s}");
            }
        }
    }

    fn fatal(&self, s: &str) {
        self.error(s);
    }

    fn header(&self, a: &RobocopyArgs, started: SystemTime) {
        let files = if a.files.is_empty() {
            "*.*".to_owned()
        } else {
            a.files.join(" ")
        };
        let mut lines = vec![
            String::new(),
            RULE.to_owned(),
            "   ROBOCOPY     ::     Robust File Copy (deltasync robocopy)".to_owned(),
            RULE.to_owned(),
            String::new(),
            format!("  Started : {}", when(started)),
            format!("   Source : {}", with_slash(&a.source)),
            format!("     Dest : {}", with_slash(&a.dest)),
            String::new(),
            format!("    Files : {files}"),
        ];
        if !a.exclude_files.is_empty() {
            lines.push(format!("Exc Files : {}", a.exclude_files.join(" ")));
        }
        if !a.exclude_dirs.is_empty() {
            lines.push(format!(" Exc Dirs : {}", a.exclude_dirs.join(" ")));
        }
        lines.push(String::new());
        lines.push(format!("  Options : {}", a.shown.join(" ")));
        lines.push(String::new());
        lines.push(RULE.to_owned());
        lines.push(String::new());
        for l in lines {
            self.line(&l);
        }
    }

    fn path(&self, c: &Change<'_>) -> String {
        let p = String::from_utf8_lossy(c.path);
        if c.kind == EntryKind::Dir {
            let slash = if c.path.is_empty() { "" } else { "/" };
            return format!("{}{p}{slash}", self.dir_root);
        }
        match &self.root {
            Some(r) => format!("{r}{p}"),
            None => p.into_owned(),
        }
    }

    fn file_line(&self, class: &str, size: Option<u64>, name: &str) -> String {
        let class = if self.no_classes { "" } else { class };
        let size = match size {
            Some(n) if !self.no_sizes => size_text(n, self.bytes),
            _ => String::new(),
        };
        format!("\t  {class:>12}\t{size:>14}\t{name}")
    }

    fn event(&self, e: &Event<'_>) {
        match e {
            Event::Changed(c) => {
                let dir = c.kind == EntryKind::Dir;
                match c.action {
                    Action::Mkdir => {
                        if !self.ndl {
                            self.line(&format!(
                                "\t  {:>12}\t{:>14}\t{}",
                                "New Dir",
                                "",
                                self.path(c)
                            ));
                        }
                        return;
                    }
                    Action::Delete if dir => {
                        self.extra_dirs.fetch_add(1, Relaxed);
                        if !self.ndl {
                            self.line(&format!(
                                "\t  {:>12}\t{:>14}\t{}",
                                "*EXTRA Dir",
                                "",
                                self.path(c)
                            ));
                        }
                        return;
                    }
                    Action::Delete => {
                        self.extra_files.fetch_add(1, Relaxed);
                        if !self.nfl {
                            self.line(&self.file_line("*EXTRA File", None, &self.path(c)));
                        }
                        return;
                    }
                    _ => {}
                }
                let class = match c.action {
                    Action::Create | Action::Symlink | Action::Special | Action::HardLink => {
                        "New File"
                    }
                    Action::Update if c.flags.size && !c.flags.time => "Changed",
                    Action::Update if c.flags.size || c.flags.time => "Updated",
                    Action::Update => "Same",
                    _ => {
                        // Attributes alone (robocopy's "tweaked"): counted as skipped.
                        if !dir {
                            self.files_skipped.fetch_add(1, Relaxed);
                            if self.verbose && !self.nfl {
                                self.line(&self.file_line("Tweaked", Some(c.size), &self.path(c)));
                            }
                        }
                        return;
                    }
                };
                self.files_copied.fetch_add(1, Relaxed);
                if !self.nfl {
                    self.line(&self.file_line(class, Some(c.size), &self.path(c)));
                }
            }
            Event::Unchanged(p) => {
                self.files_skipped.fetch_add(1, Relaxed);
                if self.verbose && !self.nfl {
                    let name = match &self.root {
                        Some(r) => format!("{r}{}", String::from_utf8_lossy(p)),
                        None => String::from_utf8_lossy(p).into_owned(),
                    };
                    self.line(&self.file_line("same", None, &name));
                }
            }
            Event::Problem {
                path,
                problem,
                message,
            } => {
                if !path.is_empty()
                    && !matches!(problem, Problem::DeleteSkipped | Problem::Mismatch)
                {
                    self.files_failed.fetch_add(1, Relaxed);
                }
                let what = match problem {
                    Problem::Vanished => "source file vanished",
                    Problem::Changing => "source file kept changing",
                    Problem::DeleteSkipped => "not deleted",
                    Problem::Mismatch => "*MISMATCH",
                    _ => "failed",
                };
                self.error(&format!(
                    "{} ERROR : {what}: {} ({message})",
                    stamp(SystemTime::now()),
                    String::from_utf8_lossy(path)
                ));
            }
            Event::Notice(n) => self.error(&format!("{} NOTICE : {n}", stamp(SystemTime::now()))),
            _ => {}
        }
    }

    fn summary(&self, r: &Report, a: &RobocopyArgs, started: SystemTime) {
        let s = &r.stats;
        let l = |c: &AtomicU64| c.load(Relaxed);
        let copied = l(&self.files_copied);
        let skipped = l(&self.files_skipped);
        let failed = l(&self.files_failed);
        let mut extra_files = l(&self.extra_files);
        let mut extra_dirs = l(&self.extra_dirs);
        if a.xx {
            (extra_files, extra_dirs) = (0, 0);
        } else {
            // Extras found but not deleted (no /PURGE, or a rail) have no kind: shown as files.
            extra_files += s.extra + s.deletes_skipped;
        }
        let files_total = copied + skipped + failed;
        let dirs_total = (s.source_entries + 1).saturating_sub(files_total);
        let dirs_copied = s.dirs_created;
        let bytes_skipped = s.total_size.saturating_sub(s.transferred_size);
        let elapsed = s.elapsed;
        let n = |v: u64| {
            if a.bytes {
                v.to_string()
            } else {
                size_text(v, false)
            }
        };
        let row = |name: &str, cols: [String; 6]| {
            format!(
                "{name:>10} :{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
                cols[0], cols[1], cols[2], cols[3], cols[4], cols[5]
            )
        };
        let t = hms(elapsed);
        let secs = elapsed.as_secs_f64().max(0.001);
        let lines = [
            String::new(),
            RULE.to_owned(),
            String::new(),
            format!(
                "{:12}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
                "", "Total", "Copied", "Skipped", "Mismatch", "FAILED", "Extras"
            ),
            row(
                "Dirs",
                [
                    dirs_total.to_string(),
                    dirs_copied.to_string(),
                    dirs_total.saturating_sub(dirs_copied).to_string(),
                    "0".into(),
                    "0".into(),
                    extra_dirs.to_string(),
                ],
            ),
            row(
                "Files",
                [
                    files_total.to_string(),
                    copied.to_string(),
                    skipped.to_string(),
                    "0".into(),
                    failed.to_string(),
                    extra_files.to_string(),
                ],
            ),
            row(
                "Bytes",
                [
                    n(s.total_size),
                    n(s.transferred_size),
                    n(bytes_skipped),
                    "0".into(),
                    "0".into(),
                    "0".into(),
                ],
            ),
            row(
                "Times",
                [
                    t.clone(),
                    t,
                    String::new(),
                    String::new(),
                    hms(Duration::ZERO),
                    hms(Duration::ZERO),
                ],
            ),
            String::new(),
            format!(
                "   Speed :{:>19} Bytes/sec.",
                (s.transferred_size as f64 / secs) as u64
            ),
            format!(
                "   Speed :{:>19.3} MegaBytes/min.",
                s.transferred_size as f64 / secs * 60.0 / 1_048_576.0
            ),
            format!(
                "   Ended : {}{}",
                when(started + elapsed),
                if r.dry_run { "  (list only: /L)" } else { "" }
            ),
            String::new(),
        ];
        for line in lines {
            self.line(&line);
        }
    }
}

fn with_slash(p: &Path) -> String {
    let s = p.display().to_string();
    if s.ends_with('/') {
        s
    } else {
        s + "/"
    }
}

/// robocopy's sizes: bytes below 1 k, else one decimal with ` k`, ` m`, ` g`, ` t`.
pub fn size_text(n: u64, bytes: bool) -> String {
    if bytes || n < 1024 {
        return n.to_string();
    }
    let mut v = n as f64;
    let mut unit = ' ';
    for u in ['k', 'm', 'g', 't'] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

fn hms(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// robocopy's "Sunday, November 22, 2026 3:40:05 AM", in UTC.
fn when(t: SystemTime) -> String {
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    let (h, min, s) = (sod / 3600, sod / 60 % 60, sod % 60);
    let (h12, ampm) = match h {
        0 => (12, "AM"),
        1..=11 => (h, "AM"),
        12 => (12, "PM"),
        _ => (h - 12, "PM"),
    };
    format!(
        "{}, {} {d}, {y} {h12}:{min:02}:{s:02} {ampm} UTC",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize]
    )
}

/// robocopy's error-line stamp `2026/11/22 03:40:05`, in UTC.
fn stamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y}/{m:02}/{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Parsed, UsageError> {
        let v: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&v)
    }

    fn run_args(args: &[&str]) -> RobocopyArgs {
        match p(args) {
            Ok(Parsed::Run(a)) => *a,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn table_is_consistent() {
        let mut names: Vec<_> = SWITCHES.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SWITCHES.len());
        for d in SWITCHES {
            assert_eq!(d.name, d.name.to_uppercase());
            assert!(help().contains(d.help), "{}", d.name);
        }
    }

    #[test]
    fn the_guide_lines_parse() {
        let a = run_args(&[
            "/mnt/old/MailArchive",
            "/srv/MailArchive",
            "*.dat",
            "/xf",
            "index*",
            "/s",
            "/r:2",
            "/w:2",
            "/minage:1",
        ]);
        assert_eq!(a.source, Path::new("/mnt/old/MailArchive"));
        assert_eq!(a.dest, Path::new("/srv/MailArchive"));
        assert_eq!(a.files, ["*.dat"]);
        assert_eq!(a.exclude_files, ["index*"]);
        assert_eq!(a.depth, Depth::Subdirs);
        assert_eq!((a.retries, a.wait), (Some(2), Some(2)));
        assert_eq!(a.min_age.as_deref(), Some("1"));
        assert!(!a.purge);
        let b = run_args(&["s", "d", "/xf", "*.fdb", "/s", "/r:2", "/w:2"]);
        assert!(b.files.is_empty());
        assert_eq!(b.exclude_files, ["*.fdb"]);
        assert_eq!(b.min_age, None);
        let c = run_args(&["s", "d", "/e", "/purge", "/r:2", "/w:2", "/mt"]);
        assert!(c.purge);
        assert_eq!(c.depth, Depth::All);
        assert_eq!(c.threads, Some(8));
        let m = run_args(&["s", "d", "/MIR", "/MT:16"]);
        assert!(m.purge && m.depth == Depth::All && m.threads == Some(16));
    }

    #[test]
    fn lists_switch_between_files_xf_and_xd() {
        let a = run_args(&[
            "s", "d", "*.dat", "*.txt", "/xf", "index*", "/s", "tmp*", "/xd", "bin", "obj", "/xf",
            "*.bak",
        ]);
        assert_eq!(a.files, ["*.dat", "*.txt"]);
        assert_eq!(
            a.exclude_files,
            ["index*", "tmp*", "*.bak"],
            "other switches don't end the /XF list"
        );
        assert_eq!(a.exclude_dirs, ["bin", "obj"]);
        // After /XF, bare words never go back to the include list.
        let b = run_args(&["s", "d", "/xd", "a", "/s", "b"]);
        assert!(b.files.is_empty());
        assert_eq!(b.exclude_dirs, ["a", "b"]);
    }

    #[test]
    fn switches_are_case_insensitive_with_slash_or_dash() {
        for args in [
            &["s", "d", "/XF", "x", "/S", "/R:3", "/W:1", "/MinAge:2"][..],
            &["s", "d", "-xf", "x", "-s", "-r:3", "-w:1", "-MINAGE:2"],
        ] {
            let a = run_args(args);
            assert_eq!(a.exclude_files, ["x"]);
            assert_eq!(a.depth, Depth::Subdirs);
            assert_eq!((a.retries, a.wait), (Some(3), Some(1)));
            assert_eq!(a.min_age.as_deref(), Some("2"));
        }
        let a = run_args(&["s", "d", "/LOG+:run.log", "/tee", "/NjH", "--force-delete"]);
        assert_eq!(
            a.log,
            Some(LogTarget {
                path: "run.log".into(),
                append: true
            })
        );
        assert!(a.tee && a.njh && a.force_delete);
        assert!(run_args(&["s", "d", "/Log:x"])
            .log
            .is_some_and(|l| !l.append));
    }

    #[test]
    fn paths_with_either_slash() {
        let a = run_args(&[r"src\MailArchive", r"dst\Mail Archive\", "/mir"]);
        assert_eq!(a.source, Path::new("src/MailArchive"));
        assert_eq!(a.dest, Path::new("dst/Mail Archive/"));
        // A Linux absolute path is a path, not a switch.
        let b = run_args(&["/mnt/old/MailArchive", "/srv/x/", "/e"]);
        assert_eq!(b.source, Path::new("/mnt/old/MailArchive"));
        assert_eq!(b.dest, Path::new("/srv/x/"));
        assert_eq!(b.depth, Depth::All);
        // An existing one-component path too (/tmp exists everywhere the tests run).
        assert_eq!(run_args(&["/tmp", "d"]).source, Path::new("/tmp"));
    }

    #[test]
    fn windows_paths_are_refused_with_the_way_out() {
        let e = p(&[r"\\oldserver\c$\MailArchive", "/srv/MailArchive", "/e"]).unwrap_err();
        let m = e.to_string();
        assert!(m.contains("UNC path"), "{m}");
        assert!(
            m.contains("mount -t cifs '//oldserver/c$' '/mnt/oldserver/c$'"),
            "{m}"
        );
        assert!(m.contains("/mnt/oldserver/c$/MailArchive"), "{m}");
        let e = p(&["/srv/src", r"D:\MailArchive"]).unwrap_err().to_string();
        assert!(e.contains("/mnt/d/MailArchive"), "{e}");
    }

    #[test]
    fn bad_switches_and_values() {
        assert_eq!(
            p(&["s", "d", "/bogus"]).unwrap_err(),
            UsageError::InvalidParameter {
                index: 3,
                arg: "/bogus".into()
            }
        );
        assert!(p(&["s", "/nonexistent-dest-dir"])
            .unwrap_err()
            .to_string()
            .contains("/nonexistent-dest-dir/"));
        assert!(matches!(
            p(&["s", "d", "-zz"]),
            Err(UsageError::InvalidParameter { .. })
        ));
        for (args, want) in [
            (&["s", "d", "/r:x"][..], "not a number"),
            (&["s", "d", "/r"], "needs a value"),
            (&["s", "d", "/s:1"], "takes no value"),
            (&["s", "d", "/mt:0"], "1 to 128"),
            (&["s", "d", "/mt:129"], "1 to 128"),
            (&["s", "d", "/minage:abc"], "not a number of days"),
            (&["s", "d", "/maxage:20231340"], "date"),
            (&["s", "d", "/copy:DQ"], "unknown copy flag"),
            (&["s", "d", "/copy:AT"], "without D"),
            (&["s", "d", "/w:100000"], "more than a day"),
        ] {
            let e = p(args).unwrap_err().to_string();
            assert!(e.contains(want), "{args:?}: {e}");
        }
        assert_eq!(p(&["s"]).unwrap_err(), UsageError::MissingPaths);
        assert!(
            p(&["s", "d", r"sub\*.dat"]).is_err(),
            "file names are not paths"
        );
        assert_eq!(p(&["/?"]).unwrap(), Parsed::Help);
    }

    #[test]
    fn copy_flags() {
        let d = CopyFlags::default();
        assert!(d.data && d.attributes && d.timestamps && !d.owner);
        let all = run_args(&["s", "d", "/copyall"]).copy;
        assert!(all.owner && all.attributes);
        let dt = run_args(&["s", "d", "/copy:dt"]).copy;
        assert!(dt.data && dt.timestamps && !dt.attributes && !dt.owner);
        assert!(run_args(&["s", "d", "/COPY:DATO"]).copy.owner);
    }

    #[test]
    fn sizes_and_times() {
        assert_eq!(size_text(512, false), "512");
        assert_eq!(size_text(1536, false), "1.5 k");
        assert_eq!(size_text(5 << 30, false), "5.0 g");
        assert_eq!(size_text(1536, true), "1536");
        assert_eq!(hms(Duration::from_secs(3725)), "1:02:05");
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(19_387), (2023, 1, 30));
        let t = UNIX_EPOCH + Duration::from_secs(1_675_072_800); // 2023-01-30 10:00:00 UTC
        assert_eq!(when(t), "Monday, January 30, 2023 10:00:00 AM UTC");
        assert_eq!(stamp(t), "2023/01/30 10:00:00");
    }
}
