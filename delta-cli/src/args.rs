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
    /// Write the block signature of BASIS (rdiff-compatible)
    Signature(SignatureArgs),
    /// Write the delta that turns the signature's basis into NEWFILE (rdiff-compatible)
    Delta(DeltaArgs),
    /// Rebuild NEWFILE from BASIS and DELTA (rdiff-compatible)
    Patch(PatchArgs),
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
        Command::Signature(a) => crate::rdiff::signature(a),
        Command::Delta(a) => crate::rdiff::delta(a),
        Command::Patch(a) => crate::rdiff::patch(a),
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
}
