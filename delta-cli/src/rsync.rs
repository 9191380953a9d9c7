//! `deltasync rsync [OPTIONS] SRC... DEST`: rsync's command line, translated into delta-core
//! sync jobs, with rsync's exit codes and output.
//!
//! Parsing is by hand, in rsync's (popt's) manner: options and paths may be interleaved, short
//! options bundle (`-aHhP`, `-essh`, `-e ssh`), long options take `--opt=value` or
//! `--opt value`, `--no-OPT` turns an option off, `--` ends the options, and options apply in
//! order (`-a --no-o` is `-a` without `-o`). [`OPTIONS`] is the one definition of every
//! option: the parser, the help text and the tests read it. An option that is not in it is
//! refused with a message naming it (exit 1), never ignored.
//!
//! Meaning, as rsync's (reference §3):
//! * `SRC/` (or `.`, `..`, `SRC/.`) copies the contents of SRC into DEST; `SRC` without the
//!   slash makes `DEST/NAME`, and `NAME` becomes the first component of every path the filter
//!   rules see (so `/NAME/x` anchors). DEST's last component is created; a missing parent is
//!   rsync's error 11 unless `--mkpath`.
//! * Filter options keep their command-line order (first match wins, directories too, an
//!   excluded directory is not entered, excluded destination entries are protected from
//!   `--delete` unless `--delete-excluded`): [`delta_core::filter::RsyncFilterBuilder`].
//! * `--delete-before`, `--delete-during`, `--delete-delay` and `--delete-after` are accepted:
//!   deltasync always deletes after the transfers succeeded, and only if nothing failed, which
//!   yields the same tree as every rsync timing.
//! * Deletions are skipped when a source is missing ("IO error encountered"), as rsync does.
//!   The core's rails stay on: an empty source, more than half of the destination, or a file
//!   system's root stop deletions (exit 25) unless `--force-delete`, a deltasync extension.
//! * A source or DEST written `[USER@]HOST:PATH` is on a far host, reached as rsync does: `-e`
//!   (else `RSYNC_RSH`, else `ssh`) starts `deltasync server` there (`--rsync-path` names it,
//!   as a command: `--rsync-path="sudo deltasync"` works). The pass runs where DEST is; the
//!   filter rules travel with the job (rule files are read here), and the far sender prunes
//!   excluded directories. rsync's daemon forms (`HOST::MODULE`, `rsync://`) are refused.
//!
//! Exit codes: 0 success; 1 syntax or usage; 3 errors selecting input/output files or
//! directories; 4 a valid request deltasync does not support (daemon paths, file or symlink
//! sources, merging several `SRC/` with `--delete`); 11 file I/O (a missing DEST parent,
//! unreadable filter files); 5 the far side could not be started; 12 the session with the
//! far side broke; 23 partial transfer due to errors (also a missing source); 24
//! vanished source files; 25 deletions stopped by `--max-delete` or a rail.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use delta_core::exec::{Change, Event, Outcome, Problem, Report};
use delta_core::session::options::FilterSpec;
use delta_core::transport::Remote;

use crate::args::RemoteArgs;
use crate::connect;
use delta_core::plan::Action;
use delta_core::scan::EntryKind;
use delta_core::sync::{Mode, SyncBuilder, SyncError};

/// Every option `deltasync rsync` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt {
    Archive,
    Recursive,
    Links,
    Perms,
    Times,
    Group,
    Owner,
    Devices,
    Specials,
    DevSpecials,
    HardLinks,
    HumanReadable,
    PartialProgress,
    Verbose,
    Quiet,
    Compress,
    DryRun,
    Checksum,
    WholeFile,
    Inplace,
    Partial,
    NumericIds,
    Delete,
    DeleteBefore,
    DeleteDuring,
    DeleteDelay,
    DeleteAfter,
    DeleteExcluded,
    MaxDelete,
    Exclude,
    Include,
    Filter,
    ExcludeFrom,
    IncludeFrom,
    Stats,
    ItemizeChanges,
    Progress,
    Rsh,
    RsyncPath,
    Timeout,
    CompressLevel,
    Mkpath,
    Update,
    IgnoreExisting,
    SizeOnly,
    IgnoreTimes,
    OneFileSystem,
    MinSize,
    MaxSize,
    ForceDelete,
    Help,
    Version,
}

/// One option: its spellings, whether it takes a value, whether `--no-` turns it off.
#[derive(Debug)]
pub struct OptDef {
    pub opt: Opt,
    pub long: &'static str,
    pub short: Option<char>,
    /// The value's name in the help, for options that take one.
    pub value: Option<&'static str>,
    /// `--no-LONG` (and `--no-S` for the short letter) turns it off.
    pub negatable: bool,
    pub help: &'static str,
}

const fn flag(opt: Opt, long: &'static str, short: Option<char>, help: &'static str) -> OptDef {
    OptDef {
        opt,
        long,
        short,
        value: None,
        negatable: true,
        help,
    }
}

const fn valued(
    opt: Opt,
    long: &'static str,
    short: Option<char>,
    value: &'static str,
    help: &'static str,
) -> OptDef {
    OptDef {
        opt,
        long,
        short,
        value: Some(value),
        negatable: false,
        help,
    }
}

/// The options, in the order `--help` lists them.
pub const OPTIONS: &[OptDef] = &[
    flag(Opt::Archive, "archive", Some('a'), "archive mode: -rlptgoD (no -H)"),
    flag(Opt::Recursive, "recursive", Some('r'), "recurse into directories (without it, directories are skipped)"),
    flag(Opt::Links, "links", Some('l'), "copy symlinks as symlinks (without it, they are skipped)"),
    flag(Opt::Perms, "perms", Some('p'), "preserve permissions"),
    flag(Opt::Times, "times", Some('t'), "preserve modification times"),
    flag(Opt::Group, "group", Some('g'), "preserve group (as root)"),
    flag(Opt::Owner, "owner", Some('o'), "preserve owner (as root)"),
    flag(Opt::Devices, "devices", None, "preserve device files"),
    flag(Opt::Specials, "specials", None, "preserve special files (fifos, sockets)"),
    flag(Opt::DevSpecials, "D", Some('D'), "same as --devices --specials"),
    flag(Opt::HardLinks, "hard-links", Some('H'), "preserve hard links"),
    flag(Opt::HumanReadable, "human-readable", Some('h'), "numbers in a human-readable format (repeatable)"),
    flag(Opt::PartialProgress, "P", Some('P'), "same as --partial --progress"),
    flag(Opt::Verbose, "verbose", Some('v'), "list transferred files, then a summary (repeatable)"),
    flag(Opt::Quiet, "quiet", Some('q'), "only errors"),
    flag(Opt::Compress, "compress", Some('z'), "compress all file data in transit (by default deltasync compresses listings always and file data while the link is backed up; --no-z: nothing)"),
    valued(Opt::CompressLevel, "compress-level", None, "NUM", "zstd level (1-19, negative down to -7 is faster; implies -z)"),
    flag(Opt::DryRun, "dry-run", Some('n'), "show what would be done, change nothing"),
    flag(Opt::Checksum, "checksum", Some('c'), "skip files by whole-file checksum, not size and mtime"),
    flag(Opt::WholeFile, "whole-file", Some('W'), "copy changed files whole (the default between local trees)"),
    flag(Opt::Inplace, "inplace", None, "update destination files in place (an interrupted pass leaves a mixed file)"),
    flag(Opt::Partial, "partial", None, "accepted: an interrupted file never replaces the old one, and is redone next time"),
    flag(Opt::NumericIds, "numeric-ids", None, "accepted: owners and groups are always kept as numbers"),
    flag(Opt::Delete, "delete", None, "delete extraneous destination entries (after the transfers)"),
    flag(Opt::DeleteBefore, "delete-before", None, "as --delete (deltasync always deletes after the transfers)"),
    flag(Opt::DeleteDuring, "delete-during", None, "as --delete (also --del)"),
    flag(Opt::DeleteDelay, "delete-delay", None, "as --delete"),
    flag(Opt::DeleteAfter, "delete-after", None, "as --delete"),
    flag(Opt::DeleteExcluded, "delete-excluded", None, "also delete excluded destination entries (implies --delete)"),
    valued(Opt::MaxDelete, "max-delete", None, "NUM", "delete at most NUM entries (exit 25 if more were due)"),
    valued(Opt::Exclude, "exclude", None, "PATTERN", "exclude files and directories matching PATTERN"),
    valued(Opt::Include, "include", None, "PATTERN", "don't exclude files and directories matching PATTERN"),
    valued(Opt::Filter, "filter", Some('f'), "RULE", "add a filter rule (rsync's syntax: - + H S P R ! . and modifiers ! s r)"),
    valued(Opt::ExcludeFrom, "exclude-from", None, "FILE", "read exclude patterns from FILE (- is standard input)"),
    valued(Opt::IncludeFrom, "include-from", None, "FILE", "read include patterns from FILE (- is standard input)"),
    flag(Opt::Stats, "stats", None, "print transfer statistics"),
    flag(Opt::ItemizeChanges, "itemize-changes", Some('i'), "a change summary per entry (YXcstpoguax)"),
    flag(Opt::Progress, "progress", None, "show progress per file"),
    valued(Opt::Rsh, "rsh", Some('e'), "COMMAND", "remote shell for HOST:PATH operands (default: $RSYNC_RSH, else ssh)"),
    valued(Opt::Timeout, "timeout", None, "SECONDS", "give up when the far side sends nothing for SECONDS (0: never, the default)"),
    valued(Opt::RsyncPath, "rsync-path", None, "PROGRAM", "the far side's deltasync command (default: deltasync)"),
    flag(Opt::Mkpath, "mkpath", None, "create DEST's missing parent directories"),
    flag(Opt::Update, "update", Some('u'), "skip files that are newer at the destination"),
    flag(Opt::IgnoreExisting, "ignore-existing", None, "skip files that exist at the destination"),
    flag(Opt::SizeOnly, "size-only", None, "skip files of the same size"),
    flag(Opt::IgnoreTimes, "ignore-times", Some('I'), "don't skip files of the same size and mtime"),
    flag(Opt::OneFileSystem, "one-file-system", Some('x'), "don't cross file-system boundaries"),
    valued(Opt::MinSize, "min-size", None, "SIZE", "don't transfer files smaller than SIZE"),
    valued(Opt::MaxSize, "max-size", None, "SIZE", "don't transfer files larger than SIZE"),
    flag(Opt::ForceDelete, "force-delete", None, "deltasync: delete even when a safety rail says no (empty source, most of DEST, a file system's root)"),
    flag(Opt::Help, "help", None, "show this help"),
    flag(Opt::Version, "version", Some('V'), "print the version"),
];

/// Long spellings that are aliases of a table entry.
const ALIASES: &[(&str, Opt)] = &[("del", Opt::DeleteDuring)];

/// A command line that cannot be run; rsync's exit code comes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsageError {
    /// Not an option of `deltasync rsync`.
    UnknownOption(String),
    /// An option without its value.
    MissingValue(String),
    /// A value given to an option that takes none.
    UnexpectedValue(String),
    /// A number that is not one.
    BadNumber { option: String, value: String },
    /// Options that cannot go together, or a missing path.
    Invalid(String),
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsageError::UnknownOption(o) => write!(
                f,
                "{o}: unknown option, or an rsync option deltasync does not implement (`deltasync rsync --help` lists the supported ones)"
            ),
            UsageError::MissingValue(o) => write!(f, "option {o} needs a value"),
            UsageError::UnexpectedValue(o) => write!(f, "option {o} takes no value"),
            UsageError::BadNumber { option, value } => {
                write!(f, "{option}={value}: invalid numeric value")
            }
            UsageError::Invalid(m) => f.write_str(m),
        }
    }
}

/// One filter option, in command-line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterArg {
    Exclude(Vec<u8>),
    Include(Vec<u8>),
    Filter(Vec<u8>),
    ExcludeFrom(PathBuf),
    IncludeFrom(PathBuf),
}

/// The resolved options of one command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RsyncArgs {
    pub recursive: bool,
    pub links: bool,
    pub perms: bool,
    pub times: bool,
    pub group: bool,
    pub owner: bool,
    pub devices: bool,
    pub specials: bool,
    pub hard_links: bool,
    pub human: u8,
    pub verbose: u8,
    pub quiet: bool,
    /// `-z` / `--no-z`; unset: deltasync's default (adaptive, see `session_options`).
    pub compress: Option<bool>,
    /// `--compress-level=NUM`.
    pub compress_level: Option<i32>,
    pub dry_run: bool,
    pub checksum: bool,
    pub whole_file: Option<bool>,
    pub inplace: bool,
    pub partial: bool,
    pub progress: bool,
    pub numeric_ids: bool,
    pub delete: bool,
    /// How many of `--delete-before/-during/-delay/-after` were given (rsync allows one).
    pub delete_when: u8,
    pub delete_excluded: bool,
    pub max_delete: Option<u64>,
    pub filters: Vec<FilterArg>,
    pub stats: bool,
    pub itemize: bool,
    pub rsh: Option<String>,
    pub rsync_path: Option<String>,
    /// `--timeout` in seconds (0: none).
    pub timeout: u64,
    pub mkpath: bool,
    pub update: bool,
    pub ignore_existing: bool,
    pub size_only: bool,
    pub ignore_times: bool,
    pub one_file_system: bool,
    pub min_size: Option<String>,
    pub max_size: Option<String>,
    pub force_delete: bool,
    /// Every path, DEST last.
    pub paths: Vec<OsString>,
}

/// What a command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Run(Box<RsyncArgs>),
    Help,
    Version,
}

fn find_long(name: &str) -> Option<&'static OptDef> {
    let opt = ALIASES.iter().find(|(a, _)| *a == name).map(|(_, o)| *o);
    OPTIONS
        .iter()
        .find(|d| Some(d.opt) == opt || (d.long == name && d.long.len() > 1))
}

fn find_short(c: char) -> Option<&'static OptDef> {
    OPTIONS.iter().find(|d| d.short == Some(c))
}

/// Parses the arguments after `rsync`.
pub fn parse(args: &[OsString]) -> Result<Parsed, UsageError> {
    if args.len() == 1 && args[0] == "-h" {
        return Ok(Parsed::Help);
    }
    let mut a = RsyncArgs::default();
    let mut i = 0;
    let mut only_paths = false;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let bytes = arg.as_bytes();
        if only_paths || bytes.len() < 2 || bytes[0] != b'-' {
            a.paths.push(arg.clone());
            continue;
        }
        if bytes == b"--" {
            only_paths = true;
            continue;
        }
        if let Some(long) = bytes.strip_prefix(b"--") {
            let (name, inline) = match long.iter().position(|&c| c == b'=') {
                Some(eq) => (&long[..eq], Some(&long[eq + 1..])),
                None => (long, None),
            };
            let shown = format!("--{}", String::from_utf8_lossy(name));
            let name =
                std::str::from_utf8(name).map_err(|_| UsageError::UnknownOption(shown.clone()))?;
            let (def, on) = match find_long(name) {
                Some(d) => (d, true),
                None => {
                    let negated = name.strip_prefix("no-").and_then(|n| {
                        let mut chars = n.chars();
                        match (chars.next(), chars.next()) {
                            (Some(c), None) => find_short(c),
                            _ => find_long(n),
                        }
                    });
                    match negated {
                        Some(d) if d.negatable => (d, false),
                        _ => return Err(UsageError::UnknownOption(shown)),
                    }
                }
            };
            let value = if def.value.is_some() {
                match inline {
                    Some(v) => Some(v.to_vec()),
                    None => {
                        let v = args
                            .get(i)
                            .ok_or_else(|| UsageError::MissingValue(shown.clone()))?;
                        i += 1;
                        Some(v.as_bytes().to_vec())
                    }
                }
            } else {
                if inline.is_some() {
                    return Err(UsageError::UnexpectedValue(shown));
                }
                None
            };
            if let Some(p) = apply(&mut a, def, on, value, &shown)? {
                return Ok(p);
            }
            continue;
        }
        // A bundle of short options (letters are ASCII; a value may be any bytes).
        let body = &bytes[1..];
        for (at, &c) in body.iter().enumerate() {
            let shown = format!("-{}", char::from(c));
            let def = (c.is_ascii_alphanumeric())
                .then(|| find_short(char::from(c)))
                .flatten()
                .ok_or_else(|| UsageError::UnknownOption(shown.clone()))?;
            if def.value.is_some() {
                let rest = &body[at + 1..];
                let value = if !rest.is_empty() {
                    rest.to_vec()
                } else {
                    let v = args
                        .get(i)
                        .ok_or_else(|| UsageError::MissingValue(shown.clone()))?;
                    i += 1;
                    v.as_bytes().to_vec()
                };
                if let Some(p) = apply(&mut a, def, true, Some(value), &shown)? {
                    return Ok(p);
                }
                break;
            }
            if let Some(p) = apply(&mut a, def, true, None, &shown)? {
                return Ok(p);
            }
        }
    }
    if a.delete_when > 1 {
        return Err(UsageError::Invalid(
            "you may not combine multiple --delete-WHEN options".into(),
        ));
    }
    if a.delete && !a.recursive {
        return Err(UsageError::Invalid(
            "--delete does not work without --recursive (-r)".into(),
        ));
    }
    if a.paths.is_empty() {
        return Err(UsageError::Invalid(
            "no source or destination given (usage: deltasync rsync [OPTIONS] SRC... DEST)".into(),
        ));
    }
    Ok(Parsed::Run(Box::new(a)))
}

/// Applies one option; `Some` ends parsing (help, version).
fn apply(
    a: &mut RsyncArgs,
    def: &OptDef,
    on: bool,
    value: Option<Vec<u8>>,
    shown: &str,
) -> Result<Option<Parsed>, UsageError> {
    let raw = value.unwrap_or_default();
    let v = String::from_utf8_lossy(&raw).into_owned();
    match def.opt {
        Opt::Archive => {
            a.recursive = on;
            a.links = on;
            a.perms = on;
            a.times = on;
            a.group = on;
            a.owner = on;
            a.devices = on;
            a.specials = on;
        }
        Opt::Recursive => a.recursive = on,
        Opt::Links => a.links = on,
        Opt::Perms => a.perms = on,
        Opt::Times => a.times = on,
        Opt::Group => a.group = on,
        Opt::Owner => a.owner = on,
        Opt::Devices => a.devices = on,
        Opt::Specials => a.specials = on,
        Opt::DevSpecials => {
            a.devices = on;
            a.specials = on;
        }
        Opt::HardLinks => a.hard_links = on,
        Opt::HumanReadable => a.human = if on { a.human.saturating_add(1) } else { 0 },
        Opt::PartialProgress => {
            a.partial = on;
            a.progress = on;
        }
        Opt::Verbose => a.verbose = if on { a.verbose.saturating_add(1) } else { 0 },
        Opt::Quiet => a.quiet = on,
        Opt::Compress => a.compress = Some(on),
        Opt::DryRun => a.dry_run = on,
        Opt::Checksum => a.checksum = on,
        Opt::WholeFile => a.whole_file = Some(on),
        Opt::Inplace => a.inplace = on,
        Opt::Partial => a.partial = on,
        Opt::NumericIds => a.numeric_ids = on,
        Opt::Delete => a.delete = on,
        Opt::DeleteBefore | Opt::DeleteDuring | Opt::DeleteDelay | Opt::DeleteAfter => {
            a.delete |= on;
            if on {
                a.delete_when += 1;
            }
        }
        Opt::DeleteExcluded => {
            a.delete_excluded = on;
            a.delete |= on;
        }
        Opt::MaxDelete => {
            let n: i64 = v.trim().parse().map_err(|_| UsageError::BadNumber {
                option: shown.to_owned(),
                value: v.clone(),
            })?;
            // rsync: a negative limit is 0 (warn about extraneous files, delete none).
            a.max_delete = Some(n.max(0) as u64);
        }
        Opt::Exclude => a.filters.push(FilterArg::Exclude(raw)),
        Opt::Include => a.filters.push(FilterArg::Include(raw)),
        Opt::Filter => a.filters.push(FilterArg::Filter(raw)),
        Opt::ExcludeFrom => a
            .filters
            .push(FilterArg::ExcludeFrom(OsString::from_vec(raw).into())),
        Opt::IncludeFrom => a
            .filters
            .push(FilterArg::IncludeFrom(OsString::from_vec(raw).into())),
        Opt::Stats => a.stats = on,
        Opt::ItemizeChanges => a.itemize = on,
        Opt::Progress => a.progress = on,
        Opt::Rsh => a.rsh = Some(v),
        Opt::RsyncPath => a.rsync_path = Some(v),
        Opt::Timeout => {
            let n: u64 = v.trim().parse().map_err(|_| UsageError::BadNumber {
                option: shown.to_owned(),
                value: v.clone(),
            })?;
            a.timeout = n;
        }
        Opt::CompressLevel => {
            let n: i32 = v
                .trim()
                .parse()
                .ok()
                .filter(|n| (-7..=19).contains(n))
                .ok_or_else(|| UsageError::BadNumber {
                    option: shown.to_owned(),
                    value: v.clone(),
                })?;
            // As rsync's: a level implies --compress.
            a.compress_level = Some(n);
            a.compress = Some(true);
        }
        Opt::Mkpath => a.mkpath = on,
        Opt::Update => a.update = on,
        Opt::IgnoreExisting => a.ignore_existing = on,
        Opt::SizeOnly => a.size_only = on,
        Opt::IgnoreTimes => a.ignore_times = on,
        Opt::OneFileSystem => a.one_file_system = on,
        Opt::MinSize => a.min_size = Some(v),
        Opt::MaxSize => a.max_size = Some(v),
        Opt::ForceDelete => a.force_delete = on,
        Opt::Help => return Ok(Some(Parsed::Help)),
        Opt::Version => return Ok(Some(Parsed::Version)),
    }
    Ok(None)
}

/// The help text, from [`OPTIONS`].
pub fn help() -> String {
    let mut s = String::from(
        "Usage: deltasync rsync [OPTIONS] SRC... DEST\n\n\
         rsync's command line on deltasync's engine, between local directories. SRC/ copies\n\
         the contents of SRC into DEST; SRC without the slash makes DEST/SRC. Short options\n\
         bundle (-aHhP); --no-OPTION turns one off; anything else is refused.\n\nOptions:\n",
    );
    for d in OPTIONS {
        let mut names = match d.short {
            Some(c) if d.long.len() == 1 => format!("-{c}"),
            Some(c) => format!("-{c}, --{}", d.long),
            None => format!("    --{}", d.long),
        };
        if let Some(v) = d.value {
            names.push_str(if d.long.len() == 1 { " " } else { "=" });
            names.push_str(v);
        }
        s.push_str(&format!("  {names:<28} {}\n", d.help));
    }
    s.push_str(
        "\nExit codes: 0 success, 1 usage, 3 bad source or destination, 4 not supported by\n\
         deltasync (daemon paths, file sources), 5 far side not started, 11 file I/O, 12 session\n\
         broken, 23 partial transfer, 24 vanished source files, 25 deletions stopped\n\
         (--max-delete or a safety rail).\n",
    );
    s
}

/// Runs `deltasync rsync ARGS`.
pub fn run(args: Vec<OsString>) -> ExitCode {
    let parsed = match parse(&args) {
        Ok(p) => p,
        Err(e) => return fail(1, &e.to_string()),
    };
    match parsed {
        Parsed::Help => {
            print!("{}", help());
            ExitCode::SUCCESS
        }
        Parsed::Version => {
            println!(
                "deltasync rsync {} (rsync's command line on deltasync)",
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::SUCCESS
        }
        Parsed::Run(a) => ExitCode::from(transfer(&a)),
    }
}

#[allow(clippy::print_stderr)]
fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("deltasync rsync: {message}");
    eprintln!(
        "deltasync rsync error: {} (code {code})",
        code_meaning(code)
    );
    ExitCode::from(code)
}

fn code_meaning(code: u8) -> &'static str {
    match code {
        1 => "syntax or usage error",
        3 => "errors selecting input/output files, dirs",
        4 => "requested action not supported",
        5 => "error starting client-server protocol",
        11 => "error in file IO",
        12 => "error in rsync protocol data stream",
        23 => "some files/attrs were not transferred (see previous errors)",
        24 => "some files vanished before they could be transferred",
        25 => "the --max-delete limit stopped deletions",
        _ => "error",
    }
}

/// A source as written: where it is and how it lands in DEST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub path: PathBuf,
    /// `Some(NAME)`: the directory itself goes to `DEST/NAME`; `None`: its contents go to DEST.
    pub name: Option<OsString>,
}

/// rsync's reading of a source path: a trailing `/`, or a last component `.` or `..`, means
/// "the contents".
pub fn source(arg: &OsStr) -> Source {
    let b = arg.as_bytes();
    let path = PathBuf::from(arg);
    let last = b.rsplit(|&c| c == b'/').next().unwrap_or_default();
    if b.ends_with(b"/") || last == b"." || last == b".." {
        return Source { path, name: None };
    }
    Source {
        name: Some(OsStr::from_bytes(last).to_owned()),
        path,
    }
}

/// rsync's test for a remote path: `HOST:PATH` (a colon before any slash) or `rsync://`.
pub fn is_remote(arg: &OsStr) -> bool {
    let b = arg.as_bytes();
    if b.starts_with(b"rsync://") {
        return true;
    }
    match b.iter().position(|&c| c == b':') {
        Some(colon) => colon > 0 && !b[..colon].contains(&b'/'),
        None => false,
    }
}

/// Runs the jobs of a parsed command line and returns the exit code.
fn transfer(a: &RsyncArgs) -> u8 {
    match plan(a) {
        Ok(p) => execute(a, p),
        Err((code, message)) => {
            let _ = fail(code, &message);
            code
        }
    }
}

/// One job: a source directory onto a destination directory, one of them possibly on a far
/// host (`src`/`dst` are then the far paths).
struct Job {
    src: PathBuf,
    dst: PathBuf,
    root_name: Option<OsString>,
    far: Far,
}

/// Where the far side of a job is.
#[derive(Debug, Clone)]
enum Far {
    /// Both trees are here.
    None,
    /// The source is on this host.
    Pull(Remote),
    /// The destination is on this host.
    Push(Remote),
}

#[derive(Default)]
struct Plan {
    jobs: Vec<Job>,
    /// Sources that are missing, and whether they were named with a slash: rsync reports
    /// them and transfers the rest; a missing `SRC/` is an I/O error that turns deletions off,
    /// a missing `SRC` is not (its destination is not touched anyway).
    missing: Vec<(PathBuf, bool)>,
    /// Directories skipped for want of `-r`.
    skipped: Vec<OsString>,
}

fn plan(a: &RsyncArgs) -> Result<Plan, (u8, String)> {
    let (dest, sources) = a.paths.split_last().expect("parse insists on a path");
    if sources.is_empty() {
        return Err((
            4,
            "a single path asks rsync to list it; deltasync does not list (give SRC and DEST)"
                .into(),
        ));
    }
    // `HOST:PATH` operands (over ssh); rsync's daemon forms are refused.
    let far = |p: &OsStr| -> Result<Option<Remote>, (u8, String)> {
        if !is_remote(p) {
            return Ok(None);
        }
        match Remote::parse(&p.to_string_lossy()) {
            Some(r) if !p.as_bytes().starts_with(b"rsync://") => Ok(Some(r)),
            _ => Err((
                4,
                format!(
                    "{}: rsync daemon paths (HOST::MODULE, rsync://) are not supported; use HOST:PATH, which runs deltasync on HOST over ssh",
                    p.to_string_lossy()
                ),
            )),
        }
    };
    let dest_far = far(dest)?;
    let mut src_far = Vec::new();
    for s in sources {
        src_far.push(far(s)?);
    }
    if dest_far.is_some() && src_far.iter().any(Option::is_some) {
        return Err((
            1,
            "The source and destination cannot both be remote.".into(),
        ));
    }
    if src_far.iter().any(Option::is_some) {
        return plan_pull(a, dest, src_far);
    }
    if let Some(remote) = dest_far {
        return plan_push(a, sources, remote);
    }
    let dest = PathBuf::from(dest);
    let srcs: Vec<Source> = sources.iter().map(|s| source(s)).collect();
    let mut names: Vec<&OsStr> = srcs.iter().filter_map(|s| s.name.as_deref()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err((
            4,
            "two sources with the same name would land in the same place; run one command per source".into(),
        ));
    }
    match std::fs::metadata(&dest) {
        Ok(m) if !m.is_dir() => {
            return Err((
                3,
                format!(
                    "destination {} must be a directory: deltasync rsync copies directory trees",
                    dest.display()
                ),
            ))
        }
        Ok(_) => {}
        Err(_) if a.dry_run || a.mkpath => {}
        Err(_) => {
            let parent = dest
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                return Err((
                    11,
                    format!(
                        "mkdir {:?} failed: No such file or directory (2): its parent is missing (--mkpath creates it)",
                        dest.display().to_string()
                    ),
                ));
            }
        }
    }
    let mut plan = Plan::default();
    for s in srcs {
        if local_source(&s)? {
            plan.add(a, s, &dest, Far::None);
        } else {
            plan.missing.push((s.path, s.name.is_none()));
        }
    }
    check_merges(a, plan)
}

/// Jobs run one after the other: a sync of one `SRC/` would delete what another brought.
fn check_merges(a: &RsyncArgs, plan: Plan) -> Result<Plan, (u8, String)> {
    let deleting = a.delete && !plan.missing.iter().any(|(_, contents)| *contents);
    if deleting && plan.jobs.len() > 1 && plan.jobs.iter().any(|j| j.root_name.is_none()) {
        return Err((
            4,
            "several sources merged into one destination (SRC/ forms) with --delete are not supported; run one command per source".into(),
        ));
    }
    Ok(plan)
}

/// Sources on far hosts (`HOST:PATH`, all of them), DEST here. A far source that is missing or
/// not a directory is reported by the far side when its job runs.
fn plan_pull(
    a: &RsyncArgs,
    dest: &OsStr,
    remotes: Vec<Option<Remote>>,
) -> Result<Plan, (u8, String)> {
    if remotes.iter().any(Option::is_none) {
        return Err((
            1,
            "local and remote sources cannot be mixed in one command; run one command per host"
                .into(),
        ));
    }
    let dest = PathBuf::from(dest);
    let mut plan = Plan::default();
    for remote in remotes.into_iter().flatten() {
        // An empty far path is the login directory's contents, as `HOST:.`.
        let path = if remote.path.is_empty() {
            "."
        } else {
            &remote.path
        };
        plan.add(a, source(OsStr::new(path)), &dest, Far::Pull(remote));
    }
    check_names(&plan)?;
    check_merges(a, plan)
}

/// Local sources, DEST on a far host: each source is checked here; DEST is checked (and its
/// last component created) by the far side.
fn plan_push(a: &RsyncArgs, sources: &[OsString], remote: Remote) -> Result<Plan, (u8, String)> {
    let dest = PathBuf::from(if remote.path.is_empty() {
        "."
    } else {
        remote.path.as_str()
    });
    let mut plan = Plan::default();
    for arg in sources {
        let s = source(arg);
        if local_source(&s)? {
            plan.add(a, s, &dest, Far::Push(remote.clone()));
        } else {
            plan.missing.push((s.path, s.name.is_none()));
        }
    }
    check_names(&plan)?;
    check_merges(a, plan)
}

impl Plan {
    /// A job for source `s` into `dest` (or, without `-r`, a directory skipped).
    fn add(&mut self, a: &RsyncArgs, s: Source, dest: &Path, far: Far) {
        if !a.recursive {
            self.skipped
                .push(s.name.clone().unwrap_or_else(|| ".".into()));
            return;
        }
        let dst = match &s.name {
            Some(n) => dest.join(n),
            None => dest.to_owned(),
        };
        self.jobs.push(Job {
            src: s.path,
            dst,
            root_name: s.name,
            far,
        });
    }
}

/// Two `SRC` forms with the same last component would land in the same place.
fn check_names(plan: &Plan) -> Result<(), (u8, String)> {
    let mut names: Vec<&OsStr> = plan
        .jobs
        .iter()
        .filter_map(|j| j.root_name.as_deref())
        .collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err((
            4,
            "two sources with the same name would land in the same place; run one command per source".into(),
        ));
    }
    Ok(())
}

/// Whether a local source exists (`false`: missing, reported and skipped as rsync does); an
/// existing one must be a directory (`SRC/` may be a link to one, `SRC` may not).
fn local_source(s: &Source) -> Result<bool, (u8, String)> {
    let Ok(meta) = std::fs::symlink_metadata(&s.path) else {
        return Ok(false);
    };
    let is_dir = if s.name.is_none() {
        s.path.is_dir()
    } else {
        meta.is_dir()
    };
    if !is_dir {
        return Err((
            4,
            format!(
                "{}: only directories can be sources of deltasync rsync (give the directory that holds it, with a filter)",
                s.path.display()
            ),
        ));
    }
    Ok(true)
}

/// Filter rules as (kind, value) pairs.
type FilterPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The filter options as rsync-spelled (kind, value) pairs, rule files read here (they name
/// local files even when the job runs on a far host; `-` is standard input, read once).
fn filter_pairs(a: &RsyncArgs) -> Result<FilterPairs, (u8, String)> {
    /// Larger rule files are refused, as the core's own reader does.
    const MAX_RULE_FILE: u64 = 16 << 20;
    let read = |p: &Path| -> Result<Vec<u8>, (u8, String)> {
        let mut data = Vec::new();
        let r = if p.as_os_str() == "-" {
            std::io::Read::read_to_end(
                &mut std::io::Read::take(std::io::stdin().lock(), MAX_RULE_FILE + 1),
                &mut data,
            )
        } else {
            std::fs::File::open(p).and_then(|f| {
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(f, MAX_RULE_FILE + 1),
                    &mut data,
                )
            })
        };
        match r {
            Ok(_) if data.len() as u64 > MAX_RULE_FILE => Err((
                11,
                format!(
                    "filter file {} is larger than {MAX_RULE_FILE} bytes",
                    p.display()
                ),
            )),
            Ok(_) => Ok(data),
            Err(e) => Err((11, format!("reading filter file {}: {e}", p.display()))),
        }
    };
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for item in &a.filters {
        let (k, v) = match item {
            FilterArg::Exclude(p) => (b"exclude".to_vec(), p.clone()),
            FilterArg::Include(p) => (b"include".to_vec(), p.clone()),
            FilterArg::Filter(r) => (b"filter".to_vec(), r.clone()),
            FilterArg::ExcludeFrom(p) => (
                [b"exclude-from=", p.as_os_str().as_bytes()].concat(),
                read(p)?,
            ),
            FilterArg::IncludeFrom(p) => (
                [b"include-from=", p.as_os_str().as_bytes()].concat(),
                read(p)?,
            ),
        };
        pairs.push((k, v));
    }
    if a.delete_excluded {
        pairs.push((b"delete-excluded".to_vec(), Vec::new()));
    }
    if let Some(v) = &a.min_size {
        pairs.push((b"min-size".to_vec(), v.as_bytes().to_vec()));
    }
    if let Some(v) = &a.max_size {
        pairs.push((b"max-size".to_vec(), v.as_bytes().to_vec()));
    }
    Ok(pairs)
}

fn filter_error_code(e: &delta_core::filter::FilterError) -> u8 {
    use delta_core::filter::FilterError;
    match e {
        FilterError::Io { .. } | FilterError::FileTooLarge { .. } => 11,
        _ => 1,
    }
}

fn execute(a: &RsyncArgs, plan: Plan) -> u8 {
    let printer = Arc::new(RsyncPrinter::new(a));
    let base = match filter_pairs(a) {
        Ok(p) => p,
        Err((code, m)) => {
            let _ = fail(code, &m);
            return code;
        }
    };
    // Build every filter first: a bad rule stops the command before anything moves.
    let mut filters = Vec::new();
    for job in &plan.jobs {
        let mut pairs = base.clone();
        if let Some(n) = &job.root_name {
            pairs.push((b"root-name".to_vec(), n.as_bytes().to_vec()));
        }
        let spec = FilterSpec::rsync(pairs);
        match spec.build() {
            Ok(f) => filters.push((f, spec)),
            Err(e) => {
                let code = filter_error_code(&e);
                let _ = fail(code, &e.to_string());
                return code;
            }
        }
    }
    printer.start(plan.jobs.iter().any(|j| matches!(j.far, Far::Pull(_))));
    for s in &plan.skipped {
        printer.info(&format!("skipping directory {}", s.to_string_lossy()));
    }
    for (m, contents) in &plan.missing {
        let what = if *contents { "change_dir" } else { "link_stat" };
        printer.error(&format!(
            "{what} {:?} failed: No such file or directory (2)",
            m.display().to_string()
        ));
    }
    let io_error = plan.missing.iter().any(|(_, contents)| *contents);
    let mode = if a.delete && !io_error {
        Mode::Sync
    } else {
        Mode::Copy
    };
    if a.delete && io_error {
        printer.error("IO error encountered -- skipping file deletion");
    }
    let mut worst = if plan.missing.is_empty() { 0 } else { 23 };
    let mut deleted = 0u64;
    let mut total = Totals::default();
    let remote = remote_args(a);
    for (job, (filter, spec)) in plan.jobs.iter().zip(filters) {
        let p = printer.clone();
        // rsync names entries from the transfer root: `mail/x` for a source `mail`.
        let prefix: Vec<u8> = job
            .root_name
            .as_ref()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default();
        let max_delete = a.max_delete.map(|m| m.saturating_sub(deleted));
        let built = SyncBuilder::new(mode, &job.src, &job.dst)
            .filter(filter)
            .callback(Arc::new(move |e: &Event<'_>| p.event(e, &prefix)))
            .configure(|o| {
                o.dry_run = a.dry_run;
                o.compare.checksum = a.checksum;
                o.compare.size_only = a.size_only;
                o.compare.ignore_times = a.ignore_times;
                o.compare.ignore_existing = a.ignore_existing;
                o.compare.skip_newer_dst = a.update;
                o.transfer.inplace = a.inplace;
                o.transfer.whole_file = a.whole_file.unwrap_or(true);
                o.one_file_system = a.one_file_system;
                o.hard_links = a.hard_links;
                o.symlinks = a.links;
                o.specials = a.devices || a.specials;
                let meta = &mut o.transfer.meta;
                meta.perms = a.perms;
                meta.times = a.times;
                meta.owner = a.owner;
                meta.group = a.group;
                o.compare.meta = o.transfer.meta;
                o.max_delete = max_delete;
                o.force_delete = a.force_delete;
                if !matches!(job.far, Far::None) {
                    // Transfers not asked for ahead wait a round trip: several hide it.
                    o.transfers = delta_core::sync::remote_transfers();
                }
                // DEST's parent was checked here for local jobs; `DEST/NAME` may need DEST made.
                o.mkpath = a.mkpath || job.root_name.is_some();
            })
            .build();
        let report = match built {
            Err(e) => Err((sync_error_code(&e), e.to_string())),
            Ok(j) => match &job.far {
                Far::None => j.run().map_err(|e| (sync_error_code(&e), e.to_string())),
                Far::Pull(r) => {
                    let describe = format!("{}:{}", r.destination(), job.src.display());
                    let far = Remote {
                        path: job.src.to_string_lossy().into_owned(),
                        ..r.clone()
                    };
                    connect::pull(&j, &far, &remote, &spec, describe)
                        .map_err(|e| (remote_error_code(&e), format!("{e:#}")))
                }
                Far::Push(r) => {
                    let far = Remote {
                        path: job.dst.to_string_lossy().into_owned(),
                        ..r.clone()
                    };
                    let p = printer.clone();
                    let prefix = job
                        .root_name
                        .as_ref()
                        .map(|n| n.as_bytes().to_vec())
                        .unwrap_or_default();
                    connect::push(
                        &j,
                        &job.src,
                        &far,
                        &remote,
                        &spec,
                        printer.events(),
                        &move |e| p.event(e, &prefix),
                    )
                    .map_err(|e| (remote_error_code(&e), format!("{e:#}")))
                }
            },
        };
        let report = match report {
            Ok(r) => r,
            Err((code, message)) => {
                printer.error(&message.replace("--remote-bin", "--rsync-path"));
                worst = worse(worst, code);
                continue;
            }
        };
        deleted += report.stats.deleted;
        total.add(&report);
        worst = worse(worst, outcome_code(&report));
    }
    printer.finish(&total, a);
    if worst != 0 {
        printer.error_code(worst);
    }
    worst
}

/// rsync's flags for reaching the far side: `-e` (else `RSYNC_RSH`, else ssh),
/// `--rsync-path` (the far deltasync), `--timeout`. Unlike rsync's, deltasync's compression
/// is on by default (zstd level 3): listings always, file data while the link is backed up;
/// `-z` (or `--compress-level`) compresses all file data, as rsync's does, and `--no-z`
/// nothing.
// Field by field: the remote options this dialect has no spelling for keep their defaults.
#[allow(clippy::field_reassign_with_default)]
fn remote_args(a: &RsyncArgs) -> RemoteArgs {
    let mut r = RemoteArgs::default();
    r.rsh = a
        .rsh
        .clone()
        .or_else(|| std::env::var("RSYNC_RSH").ok().filter(|v| !v.is_empty()));
    r.remote_bin = a.rsync_path.clone();
    r.compress_level = a.compress_level.unwrap_or(3);
    r.no_compress = a.compress == Some(false);
    r.compress_always = a.compress == Some(true);
    r.timeout = Duration::from_secs(a.timeout);
    // No rsync spelling: the environment, as for the native commands.
    r.ssh_reuse = std::env::var("DELTASYNC_SSH_REUSE")
        .ok()
        .and_then(|v| crate::args::parse_wait(&v).ok())
        .unwrap_or(Duration::from_secs(600));
    r.ssh_aes_first =
        std::env::var("DELTASYNC_SSH_AES_FIRST").map_or(true, |v| v != "false" && v != "0");
    r
}

/// rsync's codes for a remote job that failed: 5 when the session could not start, 11 when
/// the far side could not do the job (e.g. DEST's parent is missing), 12 when the session
/// broke.
fn remote_error_code(e: &anyhow::Error) -> u8 {
    use delta_core::session::SessionError;
    if format!("{e:#}").starts_with("cannot start a session") {
        return 5;
    }
    match e.downcast_ref::<SessionError>() {
        Some(SessionError::Peer(_)) => 11,
        _ => 12,
    }
}

fn outcome_code(r: &Report) -> u8 {
    match r.outcome {
        Outcome::Success => 0,
        Outcome::Partial => 23,
        Outcome::Vanished => 24,
        Outcome::DeletionsStopped => 25,
        _ => 23,
    }
}

fn sync_error_code(e: &SyncError) -> u8 {
    match e {
        SyncError::SourceMissing { .. } => 23,
        SyncError::SourceNotDir { .. }
        | SyncError::DestNotDir { .. }
        | SyncError::Overlap { .. } => 3,
        SyncError::Options(_) => 1,
        _ => 11,
    }
}

/// Which of two exit codes to keep: usage and selection errors, then 23, 25, 24.
fn worse(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        0 => 0,
        24 => 1,
        25 => 2,
        23 => 3,
        _ => 4,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// Counters summed over the jobs, for `-v` and `--stats`.
#[derive(Default)]
struct Totals {
    source_entries: u64,
    created: u64,
    files_created: u64,
    deleted: u64,
    transferred_files: u64,
    total_size: u64,
    transferred_size: u64,
    literal: u64,
    matched: u64,
    elapsed: Duration,
    dry_run: bool,
}

impl Totals {
    fn add(&mut self, r: &Report) {
        let s = &r.stats;
        self.source_entries += s.source_entries;
        self.created += s.files_created + s.dirs_created + s.links_created;
        self.files_created += s.files_created;
        self.deleted += s.deleted;
        self.transferred_files += s.files_created + s.files_updated;
        self.total_size += s.total_size;
        self.transferred_size += s.transferred_size;
        self.literal += s.literal_bytes;
        self.matched += s.matched_bytes;
        self.elapsed += s.elapsed;
        self.dry_run |= r.dry_run;
    }
}

/// rsync's output: `-v` names, `-i` itemized lines, `--progress`, `--stats`, errors.
struct RsyncPrinter {
    verbose: u8,
    quiet: bool,
    itemize: bool,
    progress: bool,
    human: u8,
    out: Mutex<std::io::Stdout>,
    transfers: AtomicU64,
    started: Instant,
}

impl RsyncPrinter {
    fn new(a: &RsyncArgs) -> Self {
        RsyncPrinter {
            verbose: if a.quiet { 0 } else { a.verbose },
            quiet: a.quiet,
            itemize: a.itemize && !a.quiet,
            progress: a.progress && !a.quiet,
            human: a.human,
            out: Mutex::new(std::io::stdout()),
            transfers: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// The events a far side must send back for this output.
    fn events(&self) -> delta_core::session::Events {
        use delta_core::session::Events;
        if self.progress || self.verbose >= 2 {
            Events::All
        } else if self.verbose >= 1 || self.itemize {
            Events::Changes
        } else {
            Events::Problems
        }
    }

    fn line(&self, s: &str) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{s}");
    }

    fn start(&self, receiving: bool) {
        if self.verbose > 0 {
            self.line(if receiving {
                "receiving incremental file list"
            } else {
                "sending incremental file list"
            });
        }
    }

    fn info(&self, s: &str) {
        if !self.quiet {
            self.line(s);
        }
    }

    #[allow(clippy::print_stderr)]
    fn error(&self, s: &str) {
        let _guard = self.out.lock().unwrap_or_else(|e| e.into_inner());
        eprintln!("deltasync rsync: {s}");
    }

    /// rsync's last line when the exit code is not 0.
    #[allow(clippy::print_stderr)]
    fn error_code(&self, code: u8) {
        let _guard = self.out.lock().unwrap_or_else(|e| e.into_inner());
        eprintln!(
            "deltasync rsync error: {} (code {code})",
            code_meaning(code)
        );
    }

    fn event(&self, e: &Event<'_>, prefix: &[u8]) {
        let joined;
        let full = |path: &[u8]| -> Vec<u8> {
            match (prefix.is_empty(), path.is_empty()) {
                (true, _) => path.to_vec(),
                (false, true) => prefix.to_vec(),
                (false, false) => [prefix, b"/", path].concat(),
            }
        };
        match e {
            Event::Changed(c) => {
                joined = full(c.path);
                let c = &Change {
                    path: &joined,
                    ..*c
                };
                let transfer = matches!(c.action, Action::Create | Action::Update);
                match self.change_line(c) {
                    Some(l) => self.line(&l),
                    // --progress names each file it shows progress for.
                    None if self.progress && transfer => self.line(&show_entry(c)),
                    None => {}
                }
                if self.progress && transfer {
                    let n = self.transfers.fetch_add(1, Relaxed) + 1;
                    self.line(&format!(
                        "{:>15} 100%    (xfr#{n})",
                        human(c.size, self.human.max(1))
                    ));
                }
            }
            Event::Problem {
                path,
                problem,
                message,
            } => {
                let whole = full(path);
                let p = String::from_utf8_lossy(&whole);
                match problem {
                    Problem::Vanished => self.error(&format!("file has vanished: {p:?}")),
                    _ if path.is_empty() => self.error(message),
                    _ => self.error(&format!("{p}: {message}")),
                }
            }
            Event::Notice(n) => self.error(n),
            _ => {}
        }
    }

    fn change_line(&self, c: &Change<'_>) -> Option<String> {
        if self.itemize {
            return Some(crate::output::itemize(c));
        }
        if self.verbose == 0 {
            return None;
        }
        let name = show_entry(c);
        Some(match c.action {
            Action::Delete => format!("deleting {name}"),
            Action::Symlink => format!(
                "{name} -> {}",
                String::from_utf8_lossy(c.target.unwrap_or_default())
            ),
            Action::HardLink => format!(
                "{name} => {}",
                String::from_utf8_lossy(c.target.unwrap_or_default())
            ),
            Action::Create | Action::Update | Action::Mkdir | Action::Special => name,
            _ => return None,
        })
    }

    fn finish(&self, t: &Totals, a: &RsyncArgs) {
        if self.quiet {
            return;
        }
        let h = |n: u64| human(n, self.human.max(1));
        let secs = self.started.elapsed().as_secs_f64().max(0.000_001);
        // Between local trees nothing is "sent": report the bytes that moved, as rsync's
        // local copies report what their two processes exchanged.
        let sent = t.literal;
        if a.stats {
            for l in [
                String::new(),
                format!("Number of files: {}", h(t.source_entries + 1)),
                format!("Number of created files: {}", h(t.created)),
                format!("Number of deleted files: {}", h(t.deleted)),
                format!(
                    "Number of regular files transferred: {}",
                    h(t.transferred_files)
                ),
                format!("Total file size: {} bytes", h(t.total_size)),
                format!(
                    "Total transferred file size: {} bytes",
                    h(t.transferred_size)
                ),
                format!("Literal data: {} bytes", h(t.literal)),
                format!("Matched data: {} bytes", h(t.matched)),
                format!(
                    "File list generation time: {:.3} seconds",
                    t.elapsed.as_secs_f64()
                ),
                format!("Total bytes sent: {}", h(sent)),
                "Total bytes received: 0".to_owned(),
            ] {
                self.line(&l);
            }
        }
        if self.verbose > 0 || a.stats {
            let speedup = t.total_size as f64 / (sent.max(1)) as f64;
            self.line("");
            self.line(&format!(
                "sent {} bytes  received 0 bytes  {} bytes/sec",
                h(sent),
                h((sent as f64 / secs) as u64)
            ));
            self.line(&format!(
                "total size is {}  speedup is {speedup:.2}{}",
                h(t.total_size),
                if t.dry_run { " (DRY RUN)" } else { "" }
            ));
        }
    }
}

fn show_entry(c: &Change<'_>) -> String {
    let p = String::from_utf8_lossy(c.path);
    if c.path.is_empty() {
        "./".into()
    } else if c.kind == EntryKind::Dir {
        format!("{p}/")
    } else {
        p.into_owned()
    }
}

/// rsync's number format: level 1 thousands separators, 2 units of 1000, 3+ units of 1024.
pub fn human(n: u64, level: u8) -> String {
    match level {
        0 => n.to_string(),
        1 => {
            let digits = n.to_string();
            let mut out = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i).is_multiple_of(3) {
                    out.push(',');
                }
                out.push(c);
            }
            out
        }
        _ => {
            let unit = if level == 2 { 1000.0 } else { 1024.0 };
            if (n as f64) < unit {
                return n.to_string();
            }
            let mut v = n as f64;
            let mut suffix = ' ';
            for s in ['K', 'M', 'G', 'T', 'P'] {
                if v < unit {
                    break;
                }
                v /= unit;
                suffix = s;
            }
            format!("{v:.2}{suffix}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Parsed, UsageError> {
        let v: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&v)
    }

    fn run_args(args: &[&str]) -> RsyncArgs {
        match p(args) {
            Ok(Parsed::Run(a)) => *a,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn table_is_consistent() {
        let mut longs: Vec<_> = OPTIONS.iter().map(|d| d.long).collect();
        longs.sort_unstable();
        longs.dedup();
        assert_eq!(longs.len(), OPTIONS.len(), "duplicate long names");
        let mut shorts: Vec<_> = OPTIONS.iter().filter_map(|d| d.short).collect();
        let n = shorts.len();
        shorts.sort_unstable();
        shorts.dedup();
        assert_eq!(shorts.len(), n, "duplicate short letters");
        for d in OPTIONS {
            assert!(help().contains(d.help), "{} missing from the help", d.long);
        }
    }

    #[test]
    fn bundles_expand_like_rsync() {
        let a = run_args(&["-aHhP", "--numeric-ids", "--delete", "src/", "dst"]);
        assert!(a.recursive && a.links && a.perms && a.times && a.group && a.owner);
        assert!(a.devices && a.specials && a.hard_links && a.partial && a.progress);
        assert!(a.numeric_ids && a.delete);
        assert_eq!(a.human, 1);
        assert_eq!(a.paths, ["src/", "dst"]);
        let b = run_args(&["-azH", "/home/vmail/mail", "/new/home/vmail/"]);
        assert!(b.compress == Some(true) && b.hard_links && b.recursive);
        assert!(!b.delete);
        // -a does not include -H; -v counts.
        let c = run_args(&["-avv", "s", "d"]);
        assert!(!c.hard_links);
        assert_eq!(c.verbose, 2);
    }

    #[test]
    fn values_inline_attached_or_separate() {
        for args in [
            &["--exclude=*rspamd-vol-1", "s/", "d"][..],
            &["--exclude", "*rspamd-vol-1", "s/", "d"],
        ] {
            assert_eq!(
                run_args(args).filters,
                [FilterArg::Exclude(b"*rspamd-vol-1".to_vec())]
            );
        }
        for args in [
            &["-essh -p 22", "s/", "d"][..],
            &["-e", "ssh -p 22", "s/", "d"],
            &["--rsh=ssh -p 22", "s/", "d"],
            &["-ave", "ssh -p 22", "s/", "d"],
        ] {
            assert_eq!(run_args(args).rsh.as_deref(), Some("ssh -p 22"), "{args:?}");
        }
        let a = run_args(&["-f", "- *.log", "-f+ keep.log", "--filter=+ */", "s/", "d"]);
        assert_eq!(
            a.filters,
            [
                FilterArg::Filter(b"- *.log".to_vec()),
                FilterArg::Filter(b"+ keep.log".to_vec()),
                FilterArg::Filter(b"+ */".to_vec()),
            ]
        );
        assert_eq!(run_args(&["--max-delete=3", "s/", "d"]).max_delete, Some(3));
        assert_eq!(
            run_args(&["--max-delete", "7", "s/", "d"]).max_delete,
            Some(7)
        );
        assert_eq!(
            run_args(&["--max-delete=-1", "s/", "d"]).max_delete,
            Some(0),
            "rsync reads a negative limit as 0"
        );
    }

    #[test]
    fn order_of_options_and_negations() {
        let a = run_args(&["-a", "--no-o", "--no-g", "s/", "d"]);
        assert!(!a.owner && !a.group && a.perms);
        let b = run_args(&["--no-perms", "-a", "s/", "d"]);
        assert!(b.perms, "a later -a turns perms back on, as in rsync");
        let c = run_args(&["-a", "--no-p", "--no-times", "s/", "d"]);
        assert!(!c.perms && !c.times);
        // Options may follow the paths; `--` ends them.
        let d = run_args(&["s/", "d", "--delete", "-r"]);
        assert!(d.delete && d.recursive);
        let e = run_args(&["-r", "--", "-weird/", "d"]);
        assert_eq!(e.paths, ["-weird/", "d"]);
    }

    #[test]
    fn errors_name_the_option() {
        let e = p(&["-a", "--xattrs", "s/", "d"]).unwrap_err();
        assert!(e.to_string().starts_with("--xattrs: unknown option"), "{e}");
        assert_eq!(
            p(&["-aX", "s/", "d"]).unwrap_err(),
            UsageError::UnknownOption("-X".into())
        );
        assert_eq!(
            p(&["--max-delete=abc", "s/", "d"]).unwrap_err().to_string(),
            "--max-delete=abc: invalid numeric value"
        );
        assert_eq!(
            p(&["-a", "s/", "d", "--exclude"]).unwrap_err(),
            UsageError::MissingValue("--exclude".into())
        );
        assert_eq!(
            p(&["--delete=yes", "-r", "s/", "d"]).unwrap_err(),
            UsageError::UnexpectedValue("--delete".into())
        );
        assert_eq!(
            p(&["--no-exclude", "s/", "d"]).unwrap_err(),
            UsageError::UnknownOption("--no-exclude".into())
        );
        assert!(p(&["--delete", "s/", "d"])
            .unwrap_err()
            .to_string()
            .contains("--recursive"));
        assert!(p(&["-a", "--delete-before", "--delete-after", "s/", "d"])
            .unwrap_err()
            .to_string()
            .contains("multiple --delete-WHEN"));
        assert!(p(&["-a"]).is_err());
    }

    #[test]
    fn delete_spellings() {
        for w in [
            "--delete-before",
            "--delete-during",
            "--del",
            "--delete-after",
            "--delete-delay",
        ] {
            let a = run_args(&["-a", w, "s/", "d"]);
            assert!(a.delete, "{w}");
        }
        let a = run_args(&["-a", "--delete-excluded", "s/", "d"]);
        assert!(
            a.delete && a.delete_excluded,
            "--delete-excluded implies --delete"
        );
    }

    #[test]
    fn help_and_version() {
        assert_eq!(p(&["--help"]).unwrap(), Parsed::Help);
        assert_eq!(p(&["-h"]).unwrap(), Parsed::Help);
        assert_eq!(p(&["--version"]).unwrap(), Parsed::Version);
        // -h among other options is --human-readable.
        assert_eq!(run_args(&["-hh", "s/", "d"]).human, 2);
    }

    #[test]
    fn compression_flags_map_onto_the_session() {
        let default = remote_args(&run_args(&["-a", "s/", "h:d/"]));
        assert!(!default.no_compress && !default.compress_always);
        assert_eq!(default.compress_level, 3);
        let z = remote_args(&run_args(&["-az", "s/", "h:d/"]));
        assert!(z.compress_always, "-z compresses all data, as rsync's");
        let level = remote_args(&run_args(&["-a", "--compress-level=-3", "s/", "h:d/"]));
        assert!(
            level.compress_always && level.compress_level == -3,
            "a level implies -z"
        );
        let off = remote_args(&run_args(&["-a", "--no-z", "s/", "h:d/"]));
        assert!(off.no_compress && !off.compress_always);
        assert!(p(&["-a", "--compress-level=20", "s/", "h:d/"]).is_err());
        assert!(p(&["-a", "--compress-level=x", "s/", "h:d/"]).is_err());
    }

    #[test]
    fn sources_and_remotes() {
        let s = |x: &str| source(OsStr::new(x));
        assert_eq!(
            s("/home/vmail/mail").name.as_deref(),
            Some(OsStr::new("mail"))
        );
        assert_eq!(s("/opt/mailcow-dockerized/").name, None);
        assert_eq!(s(".").name, None);
        assert_eq!(s("a/..").name, None);
        assert_eq!(s("a/.").name, None);
        assert_eq!(s("mail").name.as_deref(), Some(OsStr::new("mail")));
        let r = |x: &str| is_remote(OsStr::new(x));
        assert!(r("root@target-machine.example.com:/opt/mailcow-dockerized"));
        assert!(r("host:path"));
        assert!(r("rsync://host/module"));
        assert!(!r("./a:b"));
        assert!(!r("/tmp/x:y"));
        assert!(!r("plain"));
    }

    #[test]
    fn numbers_like_rsync() {
        assert_eq!(human(1_234_567, 1), "1,234,567");
        assert_eq!(human(999, 1), "999");
        assert_eq!(human(1_234_567, 2), "1.23M");
        assert_eq!(human(2048, 3), "2.00K");
        assert_eq!(human(12, 2), "12");
    }

    #[test]
    fn exit_code_precedence() {
        assert_eq!(worse(0, 24), 24);
        assert_eq!(worse(24, 25), 25);
        assert_eq!(worse(25, 23), 23);
        assert_eq!(worse(23, 24), 23);
        assert_eq!(worse(23, 11), 11);
    }
}
