//! The command line: one clap definition per option, grouped per command, then dispatch.
//!
//! Raw arguments are parsed here; each front end (`rdiff`, and the tree commands) turns the
//! parsed options into delta-core options and decides the exit code.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Move large, live file trees with minimal downtime.
#[derive(Debug, Parser)]
#[command(
    name = "deltasync",
    version,
    about,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Internal: the far side of a session, started over ssh; speaks the protocol on stdin/stdout
    #[command(hide = true)]
    Server(ServerArgs),
    /// Copy SRC's contents into DST; never delete (like rclone copy)
    Copy(TreeArgs),
    /// Make DST equal to SRC, deleting extraneous entries (like rclone sync, rsync -aH --delete)
    Sync(TreeArgs),
    /// Compare SRC and DST; exit 0 only when they match
    Check(TreeArgs),
    /// Write the block signature of BASIS (rdiff-compatible)
    Signature(SignatureArgs),
    /// Write the delta that turns the signature's basis into NEWFILE (rdiff-compatible)
    Delta(DeltaArgs),
    /// Rebuild NEWFILE from BASIS and DELTA (rdiff-compatible)
    Patch(PatchArgs),
    #[command(
        about = "rsync's command line: deltasync rsync [OPTIONS] SRC... DEST (see `deltasync rsync --help`)",
        disable_help_flag = true,
        disable_version_flag = true
    )]
    Rsync(RawArgs),
    #[command(
        about = "robocopy's command line: deltasync robocopy SOURCE DEST [FILE...] [/OPTIONS] (see /?)",
        disable_help_flag = true,
        disable_version_flag = true
    )]
    Robocopy(RawArgs),
}

/// A dialect's arguments, passed on untouched to its own parser (clap can't express rsync's
/// bundling or robocopy's switch grammar).
#[derive(Debug, Args)]
pub struct RawArgs {
    /// Everything after the command name
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<OsString>,
}

/// Options of the internal `server` command.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Make sure a kept server for this binary listens, idle for at most SECS, print its
    /// socket's path, and exit (see delta_core::transport::kept)
    #[arg(long, value_name = "SECS", conflicts_with = "daemon")]
    pub keep: Option<u64>,
    /// Be the kept server: standard input is its listening socket; exit after SECS without a
    /// connection
    #[arg(long, value_name = "SECS")]
    pub daemon: Option<u64>,
}

/// Options of `copy`, `sync` and `check` (rclone's spellings).
#[derive(Debug, Args)]
pub struct TreeArgs {
    /// Source directory (its contents are copied)
    pub src: PathBuf,
    /// Destination directory (created if missing)
    pub dst: PathBuf,

    /// Show what would be done; change nothing
    #[arg(short = 'n', long, help_heading = "Pass")]
    pub dry_run: bool,
    /// Compare whole-file hashes instead of size and modification time
    #[arg(short = 'c', long, help_heading = "Pass")]
    pub checksum: bool,
    /// Compare sizes only
    #[arg(long, help_heading = "Pass")]
    pub size_only: bool,
    /// Transfer every file, even if it looks unchanged
    #[arg(short = 'I', long, help_heading = "Pass")]
    pub ignore_times: bool,
    /// Skip files that exist at the destination
    #[arg(long, help_heading = "Pass")]
    pub ignore_existing: bool,
    /// Skip files that are newer at the destination
    #[arg(short = 'u', long, help_heading = "Pass")]
    pub update: bool,
    /// Files transferred at once (default: twice the cores, 4 to 16; 8 to 16 with a remote side)
    #[arg(long, value_name = "N", help_heading = "Pass")]
    pub transfers: Option<usize>,
    /// Rewrite only the changed blocks of existing files, in place (see README: faster for huge
    /// databases, but an interrupted pass leaves a mixed file)
    #[arg(long, help_heading = "Pass")]
    pub inplace: bool,
    /// Always copy changed files whole, never by delta (the default between local trees)
    #[arg(
        short = 'W',
        long,
        help_heading = "Pass",
        overrides_with = "no_whole_file"
    )]
    pub whole_file: bool,
    /// Update large changed files by delta against the old version, even between local trees
    #[arg(long, help_heading = "Pass")]
    pub no_whole_file: bool,
    /// Reads of a source file that keeps changing before it is reported
    #[arg(long, value_name = "N", default_value_t = 2, help_heading = "Pass")]
    pub retries: u32,
    /// Wait between those reads (e.g. 2s, 500ms, 1m)
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_wait, help_heading = "Pass")]
    pub retry_wait: std::time::Duration,
    /// fsync every file before renaming it into place
    #[arg(long, help_heading = "Pass")]
    pub fsync: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Don't cross file-system boundaries in the source
    #[arg(short = 'x', long, help_heading = "Pass")]
    pub one_file_system: bool,
    /// Don't preserve hard links
    #[arg(long, help_heading = "Metadata")]
    pub no_hard_links: bool,
    /// Don't preserve permission bits
    #[arg(long, help_heading = "Metadata")]
    pub no_perms: bool,
    /// Don't preserve modification times
    #[arg(long, help_heading = "Metadata")]
    pub no_times: bool,
    /// Don't preserve owners and groups (they are preserved only as root anyway)
    #[arg(long, help_heading = "Metadata")]
    pub no_owner: bool,

    /// A filter rule: "+ PATTERN" includes, "- PATTERN" excludes, "!" clears
    #[arg(
        long = "filter",
        short = 'f',
        value_name = "RULE",
        help_heading = "Filters",
        allow_hyphen_values = true
    )]
    pub filter: Vec<String>,
    /// Read filter rules from a file
    #[arg(long, value_name = "FILE", help_heading = "Filters")]
    pub filter_from: Vec<PathBuf>,
    /// Include files matching the pattern (implies excluding everything else)
    #[arg(
        long,
        value_name = "PATTERN",
        help_heading = "Filters",
        allow_hyphen_values = true
    )]
    pub include: Vec<String>,
    /// Read include patterns from a file
    #[arg(long, value_name = "FILE", help_heading = "Filters")]
    pub include_from: Vec<PathBuf>,
    /// Exclude files matching the pattern
    #[arg(
        long,
        value_name = "PATTERN",
        help_heading = "Filters",
        allow_hyphen_values = true
    )]
    pub exclude: Vec<String>,
    /// Read exclude patterns from a file
    #[arg(long, value_name = "FILE", help_heading = "Filters")]
    pub exclude_from: Vec<PathBuf>,
    /// Match patterns case-insensitively
    #[arg(long, help_heading = "Filters")]
    pub ignore_case: bool,
    /// Only files older than this (1d, 12h, 90m, 1w, seconds, or a date)
    #[arg(long, value_name = "AGE", help_heading = "Filters")]
    pub min_age: Option<String>,
    /// Only files younger than this
    #[arg(long, value_name = "AGE", help_heading = "Filters")]
    pub max_age: Option<String>,
    /// Only files at least this big (default unit KiB; B K M G T P)
    #[arg(long, value_name = "SIZE", help_heading = "Filters")]
    pub min_size: Option<String>,
    /// Only files at most this big
    #[arg(long, value_name = "SIZE", help_heading = "Filters")]
    pub max_size: Option<String>,

    /// Also delete destination entries that the filters exclude (sync)
    #[arg(long, help_heading = "Deleting")]
    pub delete_excluded: bool,
    /// Delete at most N entries, then stop (exit 25)
    #[arg(long, value_name = "N", help_heading = "Deleting")]
    pub max_delete: Option<u64>,
    /// Delete even if the source is empty or most of the destination would go
    #[arg(long, help_heading = "Deleting")]
    pub force_delete: bool,

    /// A line per file changed (-vv: also unchanged files)
    #[arg(short = 'v', long, action = clap::ArgAction::Count, help_heading = "Output")]
    pub verbose: u8,
    /// Only errors
    #[arg(short = 'q', long, help_heading = "Output")]
    pub quiet: bool,
    /// Progress bars on a terminal
    #[arg(short = 'P', long, help_heading = "Output")]
    pub progress: bool,
    /// A line per change in rsync's --itemize-changes format
    #[arg(short = 'i', long, help_heading = "Output")]
    pub itemize_changes: bool,
    /// A summary at the end
    #[arg(long, help_heading = "Output")]
    pub stats: bool,
    /// Write a JSON report to standard output at the end (and nothing else there)
    #[arg(long, help_heading = "Output")]
    pub json: bool,
}

/// Parses a wait such as `2s`, `500ms`, `1m` or a plain number of seconds.
pub fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?}: use ms, s, m or h")),
    };
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Signature formats on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// librsync's default: RabinKarp + BLAKE2 (magic 0x72730147), as `rdiff signature`
    Rdiff,
    /// librsync's legacy format: rollsum + MD4 (magic 0x72730136), as `rdiff -H md4 -R rollsum`
    RdiffMd4,
    /// deltasync's own: seeded XXH3 block hashes and a verified whole-file hash
    Native,
}

/// rdiff's `-H`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HashArg {
    Blake2,
    Md4,
}

/// rdiff's `-R`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RollsumArg {
    Rabinkarp,
    Rollsum,
}

/// Options every rdiff-style command takes.
#[derive(Debug, Args)]
pub struct RdiffCommon {
    /// Overwrite an existing output file (rdiff refuses without it)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Print statistics to standard error
    #[arg(short = 's', long)]
    pub statistics: bool,
    /// Worker threads (default: all cores)
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct SignatureArgs {
    /// Signature format
    #[arg(long, value_enum, conflicts_with_all = ["hash", "rollsum"])]
    pub format: Option<FormatArg>,
    /// Strong hash, as rdiff's -H (blake2 or md4)
    #[arg(short = 'H', long = "hash", value_enum)]
    pub hash: Option<HashArg>,
    /// Rolling checksum, as rdiff's -R (rabinkarp or rollsum)
    #[arg(short = 'R', long = "rollsum", value_enum)]
    pub rollsum: Option<RollsumArg>,
    /// Block length in bytes (0 or absent: the format's rule)
    #[arg(short = 'b', long = "block-size", value_name = "BYTES")]
    pub block_size: Option<u32>,
    /// Strong hash bytes kept per block (0: all, -1: rdiff's minimum for the file size)
    #[arg(
        short = 'S',
        long = "sum-size",
        value_name = "BYTES",
        allow_hyphen_values = true
    )]
    pub sum_size: Option<i64>,
    #[command(flatten)]
    pub common: RdiffCommon,
    /// Basis file ('-' or absent: standard input)
    pub basis: Option<PathBuf>,
    /// Signature output ('-' or absent: standard output)
    pub signature: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DeltaArgs {
    #[command(flatten)]
    pub common: RdiffCommon,
    /// Signature file ('-': standard input)
    pub signature: PathBuf,
    /// New file ('-' or absent: standard input)
    pub newfile: Option<PathBuf>,
    /// Delta output ('-' or absent: standard output)
    pub delta: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PatchArgs {
    #[command(flatten)]
    pub common: RdiffCommon,
    /// Refuse deltas that would produce more than this many bytes
    #[arg(long, value_name = "BYTES")]
    pub max_output: Option<u64>,
    /// Basis file (must be a file: copies read from anywhere in it)
    pub basis: PathBuf,
    /// Delta ('-' or absent: standard input)
    pub delta: Option<PathBuf>,
    /// Output ('-' or absent: standard output)
    pub newfile: Option<PathBuf>,
}

/// Parses and runs; never panics on bad input.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Copy(a) => crate::native::run(delta_core::sync::Mode::Copy, a),
        Command::Sync(a) => crate::native::run(delta_core::sync::Mode::Sync, a),
        Command::Check(a) => crate::native::run(delta_core::sync::Mode::Check, a),
        Command::Server(a) => crate::native::server(a),
        Command::Signature(a) => crate::rdiff::signature(a),
        Command::Delta(a) => crate::rdiff::delta(a),
        Command::Patch(a) => crate::rdiff::patch(a),
        Command::Rsync(a) => crate::rsync::run(a.args),
        Command::Robocopy(a) => crate::robocopy::run(a.args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn rdiff_spellings_parse() {
        let cli = Cli::try_parse_from([
            "deltasync",
            "signature",
            "-H",
            "md4",
            "-R",
            "rollsum",
            "-b",
            "4096",
            "-S",
            "-1",
            "in",
            "out",
        ])
        .unwrap();
        let Command::Signature(a) = cli.command else {
            panic!("not signature")
        };
        assert_eq!(
            (a.hash, a.rollsum, a.block_size, a.sum_size),
            (
                Some(HashArg::Md4),
                Some(RollsumArg::Rollsum),
                Some(4096),
                Some(-1)
            )
        );
        assert!(
            Cli::try_parse_from(["deltasync", "signature", "--format", "native", "-H", "md4"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["deltasync", "signature", "--format", "bogus"]).is_err());
    }

    #[test]
    fn guide_lines_parse() {
        // The MailStore guide's rclone passes, with deltasync in place of rclone.
        let cli = Cli::try_parse_from([
            "deltasync",
            "copy",
            "src",
            "dst",
            "--filter",
            "- index*",
            "--filter",
            "+ *.dat",
            "--filter",
            "- **",
            "--min-age",
            "1d",
        ])
        .unwrap();
        let Command::Copy(a) = cli.command else {
            panic!("not copy")
        };
        assert_eq!(a.filter, ["- index*", "+ *.dat", "- **"]);
        assert_eq!(a.min_age.as_deref(), Some("1d"));
        assert!(Cli::try_parse_from(["deltasync", "sync", "src", "dst"]).is_ok());
        assert!(Cli::try_parse_from(["deltasync", "copy", "src"]).is_err());
    }

    #[test]
    fn dialects_get_their_arguments_untouched() {
        for (cmd, args) in [
            (
                "rsync",
                &["-aHhP", "--help", "-h", "--version", "-V", "src/", "dst"][..],
            ),
            (
                "robocopy",
                &["src", "dst", "*.dat", "/xf", "index*", "-s", "/?"],
            ),
        ] {
            let cli = Cli::try_parse_from(["deltasync", cmd].iter().chain(args)).unwrap();
            let (Command::Rsync(a) | Command::Robocopy(a)) = cli.command else {
                panic!("not a dialect")
            };
            assert_eq!(a.args, args, "{cmd}");
        }
    }

    #[test]
    fn waits() {
        assert_eq!(parse_wait("2s").unwrap(), std::time::Duration::from_secs(2));
        assert_eq!(
            parse_wait("500ms").unwrap(),
            std::time::Duration::from_millis(500)
        );
        assert_eq!(parse_wait("3").unwrap(), std::time::Duration::from_secs(3));
        assert_eq!(
            parse_wait("1m").unwrap(),
            std::time::Duration::from_secs(60)
        );
        assert!(parse_wait("2x").is_err());
        assert!(parse_wait("-1s").is_err());
    }
}

/// How a far deltasync is reached (used when SRC or DST is `[user@]host:path`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RemoteArgs {
    /// Give up when the far side has sent nothing for this long (e.g. 30s, 5m; 0: never)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_wait, help_heading = "Remote")]
    pub timeout: std::time::Duration,
    /// Remote shell used to start the far deltasync (default: ssh), e.g. "ssh -p 2222 -i key"
    #[arg(
        short = 'e',
        long = "rsh",
        value_name = "COMMAND",
        help_heading = "Remote"
    )]
    pub rsh: Option<String>,
    /// Keep the ssh login open this long after a pass, so the next pass starts without
    /// logging in again (OpenSSH ControlMaster; only when ssh's own configuration does not
    /// multiplex already; 0: off)
    #[arg(long, value_name = "DURATION", env = "DELTASYNC_SSH_REUSE", default_value = "10m", value_parser = parse_wait, help_heading = "Remote")]
    pub ssh_reuse: std::time::Duration,
    /// Offer AES-GCM first where the CPU has AES instructions (about twice chacha20's speed),
    /// unless ssh's configuration sets its own cipher list
    #[arg(long, value_name = "BOOL", env = "DELTASYNC_SSH_AES_FIRST", default_value_t = true, action = clap::ArgAction::Set, help_heading = "Remote")]
    pub ssh_aes_first: bool,
    /// Path of deltasync on the far host (default: deltasync, found through its PATH)
    #[arg(long, value_name = "PATH", help_heading = "Remote")]
    pub remote_bin: Option<String>,
    /// zstd level for remote transfers (1-19; negative levels down to -7 are faster)
    #[arg(long, value_name = "N", default_value_t = 3, allow_negative_numbers = true, value_parser = clap::value_parser!(i32).range(-7..=19), help_heading = "Remote")]
    pub compress_level: i32,
    /// Send remote data uncompressed
    #[arg(long, help_heading = "Remote", conflicts_with = "compress_always")]
    pub no_compress: bool,
    /// Compress all file data; by default file data is compressed only while the link is
    /// backed up (listings always)
    #[arg(long, help_heading = "Remote")]
    pub compress_always: bool,
    /// ssh: run the ssh command; libssh2: connect in-process (no ssh binary needed; reads -p,
    /// -l, -i and common -o options from -e)
    #[arg(long, value_name = "HOW", default_value = "ssh", value_parser = ["ssh", "libssh2"], help_heading = "Remote")]
    pub ssh_transport: String,
    /// Private key to log in with (repeatable; tried in order)
    #[arg(long, value_name = "FILE", help_heading = "Remote")]
    pub identity: Vec<std::path::PathBuf>,
    /// known_hosts file to check the host key against (default ~/.ssh/known_hosts)
    #[arg(long, value_name = "FILE", help_heading = "Remote")]
    pub known_hosts: Option<std::path::PathBuf>,
    /// Host keys: yes refuses unknown and changed ones (default), accept-new records unknown
    /// ones, no checks nothing
    #[arg(long, value_name = "WHEN", value_parser = ["yes", "accept-new", "no"], help_heading = "Remote")]
    pub ssh_host_key_check: Option<String>,
}
