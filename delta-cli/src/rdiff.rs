//! The rdiff-compatible commands: `signature`, `delta`, `patch`, in rdiff's argument order.
//!
//! Exit codes follow rdiff (librsync's `rs_result`): 0 done, 100 I/O error, 101 usage error,
//! 103 input ended early, 104 bad magic, 106 corrupt input, 108 bad parameter. Messages are one
//! line on standard error.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use delta_core::checksum::{StrongKind, WeakKind};
use delta_core::delta::{self, ApplyOptions, Basis, BlockIndex, DeltaOptions};
use delta_core::replace::TempFile;
use delta_core::{
    Access, ApplyError, DeltaError, InputFile, Signature, SignatureError, SignatureFormat,
    SignatureLimits, SignatureOptions,
};

use crate::args::{
    DeltaArgs, FormatArg, HashArg, PatchArgs, RdiffCommon, RollsumArg, SignatureArgs,
};

const IO_ERROR: u8 = 100;
const SYNTAX_ERROR: u8 = 101;
const INPUT_ENDED: u8 = 103;
const BAD_MAGIC: u8 = 104;
const CORRUPT: u8 = 106;
const PARAM_ERROR: u8 = 108;

/// Runs a command body and maps its error to rdiff's exit code.
fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("deltasync: {e:#}");
            }
            ExitCode::from(exit_code(&e))
        }
    }
}

fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(e) = cause.downcast_ref::<SignatureError>() {
            return match e {
                SignatureError::BadMagic { .. } => BAD_MAGIC,
                SignatureError::Truncated { .. } => INPUT_ENDED,
                SignatureError::Io(_) => IO_ERROR,
                _ => CORRUPT,
            };
        }
        if let Some(e) = cause.downcast_ref::<ApplyError>() {
            return match e {
                ApplyError::BadMagic { .. } => BAD_MAGIC,
                ApplyError::Truncated { .. } => INPUT_ENDED,
                ApplyError::Io(_) => IO_ERROR,
                _ => CORRUPT,
            };
        }
        if let Some(e) = cause.downcast_ref::<DeltaError>() {
            return match e {
                DeltaError::BadOptions { .. } => PARAM_ERROR,
                _ => IO_ERROR,
            };
        }
        if let Some(u) = cause.downcast_ref::<UsageError>() {
            let _ = u;
            return SYNTAX_ERROR;
        }
    }
    IO_ERROR
}

/// A bad combination of arguments.
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn is_stdio(p: &Option<PathBuf>) -> bool {
    p.as_deref().is_none_or(|p| p == Path::new("-"))
}

fn open_input(p: &Option<PathBuf>) -> anyhow::Result<Box<dyn Read>> {
    Ok(match p {
        Some(path) if path != Path::new("-") => Box::new(BufReader::with_capacity(
            1 << 20,
            File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
        _ => Box::new(BufReader::with_capacity(1 << 20, io::stdin().lock())),
    })
}

/// Where output goes: standard output, or a temporary renamed onto the file at the end.
enum Output {
    Stdout(BufWriter<io::StdoutLock<'static>>),
    File(BufWriter<File>, TempFile),
}

impl Output {
    fn create(p: &Option<PathBuf>, common: &RdiffCommon) -> anyhow::Result<Self> {
        match p {
            Some(path) if path != Path::new("-") => {
                if !common.force && path.symlink_metadata().is_ok() {
                    return Err(UsageError(format!(
                        "{} exists; use -f to overwrite",
                        path.display()
                    ))
                    .into());
                }
                let mut tmp = TempFile::beside(path)
                    .with_context(|| format!("cannot create a file beside {}", path.display()))?;
                let file = tmp.file().try_clone()?;
                Ok(Output::File(BufWriter::with_capacity(1 << 20, file), tmp))
            }
            _ => Ok(Output::Stdout(BufWriter::with_capacity(
                1 << 20,
                io::stdout().lock(),
            ))),
        }
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::Stdout(w) => w,
            Output::File(w, _) => w,
        }
    }

    /// Keeps the output: flushes, and renames a file into place.
    fn commit(self) -> anyhow::Result<()> {
        match self {
            Output::Stdout(mut w) => w.flush()?,
            Output::File(mut w, tmp) => {
                w.flush()?;
                drop(w);
                let target = tmp.path().to_path_buf();
                tmp.commit(false)
                    .with_context(|| format!("cannot rename {} into place", target.display()))?;
            }
        }
        Ok(())
    }
}

fn threads(common: &RdiffCommon) -> anyhow::Result<Option<usize>> {
    match common.threads {
        Some(0) => Err(UsageError("--threads must be at least 1".into()).into()),
        t => Ok(t),
    }
}

fn stats(common: &RdiffCommon, line: std::fmt::Arguments<'_>) {
    if common.statistics {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("deltasync: {line}");
        }
    }
}

/// `deltasync signature [BASIS [SIGNATURE]]`.
pub fn signature(a: SignatureArgs) -> ExitCode {
    finish((|| {
        let format = match (a.format, a.hash, a.rollsum) {
            (Some(FormatArg::Rdiff), ..) => SignatureFormat::Rdiff,
            (Some(FormatArg::RdiffMd4), ..) => SignatureFormat::RdiffMd4,
            (Some(FormatArg::Native), ..) => SignatureFormat::Native,
            (None, hash, roll) => SignatureFormat::Librsync {
                weak: match roll {
                    Some(RollsumArg::Rollsum) => WeakKind::Rollsum,
                    _ => WeakKind::RabinKarp,
                },
                strong: match hash {
                    Some(HashArg::Md4) => StrongKind::Md4,
                    _ => StrongKind::Blake2b,
                },
            },
        };
        let sum_size = match a.sum_size {
            None | Some(0) => None,
            Some(-1) => Some(-1),
            Some(n) if n > 0 && n <= 32 => Some(n),
            Some(n) => {
                return Err(UsageError(format!(
                    "bad --sum-size {n}: use 0 (whole hash), -1 (minimum) or 1..=32"
                ))
                .into())
            }
        };
        let opts = |len: Option<u64>| {
            let block_len = a.block_size.filter(|&b| b > 0);
            let strong_len = sum_size.map(|s| {
                if s == -1 {
                    let bl = block_len.unwrap_or_else(|| format.default_block_len(len));
                    delta_core::signature::min_strong_len(format, len, bl)
                } else {
                    s as u32
                }
            });
            Ok::<_, anyhow::Error>(SignatureOptions {
                format,
                block_len,
                strong_len,
                seed: None,
                threads: threads(&a.common)?,
            })
        };
        let mut out = Output::create(&a.signature, &a.common)?;
        let sig = if is_stdio(&a.basis) {
            Signature::from_reader(&mut io::stdin().lock(), &opts(None)?)?
        } else {
            let path = a.basis.as_deref().expect("not stdio");
            let len = std::fs::metadata(path)
                .with_context(|| format!("cannot open {}", path.display()))?
                .len();
            Signature::from_path(path, Access::Live, &opts(Some(len))?)
                .with_context(|| format!("cannot read {}", path.display()))?
        };
        sig.write_to(out.writer())?;
        out.commit()?;
        stats(
            &a.common,
            format_args!(
                "signature: {} blocks of {} bytes, {:?}",
                sig.block_count(),
                sig.block_len(),
                sig.format()
            ),
        );
        Ok(())
    })())
}

/// `deltasync delta SIGNATURE [NEWFILE [DELTA]]`.
pub fn delta(a: DeltaArgs) -> ExitCode {
    finish((|| {
        if a.signature == Path::new("-") && is_stdio(&a.newfile) {
            return Err(UsageError(
                "the signature and the new file cannot both come from standard input".into(),
            )
            .into());
        }
        let sig = Signature::read_from(
            &mut open_input(&Some(a.signature.clone()))?,
            &SignatureLimits::default(),
        )
        .with_context(|| format!("cannot read signature {}", a.signature.display()))?;
        let index = BlockIndex::new(&sig);
        let opts = DeltaOptions {
            threads: threads(&a.common)?,
            ..DeltaOptions::default()
        };
        let mut out = Output::create(&a.delta, &a.common)?;
        let st = if is_stdio(&a.newfile) {
            delta::delta_reader(&sig, &index, &mut io::stdin().lock(), out.writer(), &opts)?
        } else {
            let path = a.newfile.as_deref().expect("not stdio");
            let input = InputFile::open(path, Access::Live)
                .with_context(|| format!("cannot open {}", path.display()))?;
            delta::delta_file(&sig, &index, &input, out.writer(), &opts)
                .with_context(|| format!("cannot read {}", path.display()))?
        };
        out.commit()?;
        stats(
            &a.common,
            format_args!(
                "delta: {} bytes: {} literal, {} matched, {} bytes of delta",
                st.new_len, st.literal_bytes, st.copied_bytes, st.delta_len
            ),
        );
        Ok(())
    })())
}

/// `deltasync patch BASIS [DELTA [NEWFILE]]`.
pub fn patch(a: PatchArgs) -> ExitCode {
    finish((|| {
        if a.basis == Path::new("-") {
            return Err(UsageError("the basis must be a file, not standard input".into()).into());
        }
        // The basis is ours to read but may be someone's live file: positioned reads, no map.
        let basis = InputFile::open(&a.basis, Access::Live)
            .with_context(|| format!("cannot open {}", a.basis.display()))?;
        let mut delta_in = open_input(&a.delta)?;
        let mut out = Output::create(&a.newfile, &a.common)?;
        let opts = ApplyOptions {
            max_output: a.max_output.unwrap_or(u64::MAX),
        };
        let st = delta::apply(Basis::File(&basis), &mut delta_in, out.writer(), &opts)
            .with_context(|| {
                format!(
                    "cannot apply {}",
                    a.delta.as_deref().unwrap_or(Path::new("-")).display()
                )
            })?;
        out.commit()?;
        stats(
            &a.common,
            format_args!(
                "patch: {} bytes: {} copied, {} literal{}",
                st.output_len,
                st.copied_bytes,
                st.literal_bytes,
                if st.verified {
                    ", whole-file hash verified"
                } else {
                    ""
                }
            ),
        );
        Ok(())
    })())
}
