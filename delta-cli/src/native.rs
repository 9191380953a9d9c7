//! `copy`, `sync` and `check`: rclone's spellings mapped onto a delta-core sync job.
//!
//! Exit codes: 0 success; 1 usage error, a pass that could not start, or `check` differences;
//! 23 some entries failed; 24 some source files vanished; 25 deletions stopped by
//! `--max-delete` or a safety rail.

use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use delta_core::exec::Event;
use delta_core::session::options::{self, FilterSpec};
use delta_core::sync::{Mode, SyncBuilder};
use delta_core::transport::{Duplex, Remote};

use crate::args::TreeArgs;
use crate::connect;
use crate::output::{Printer, Style};

/// Runs one pass and returns the exit code.
pub fn run(mode: Mode, a: TreeArgs) -> ExitCode {
    match run_inner(mode, a) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("deltasync: {e:#}");
            }
            ExitCode::from(1)
        }
    }
}

/// The filter flags as (kind, value) pairs, rule files read here (they name local files even
/// when the pass runs on the far side).
fn filter_pairs(a: &TreeArgs) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut rule = |k: &str, v: &str| pairs.push((k.as_bytes().to_vec(), v.as_bytes().to_vec()));
    a.filter.iter().for_each(|v| rule("filter", v));
    a.include.iter().for_each(|v| rule("include", v));
    a.exclude.iter().for_each(|v| rule("exclude", v));
    for (k, v) in [
        ("min-age", &a.min_age),
        ("max-age", &a.max_age),
        ("min-size", &a.min_size),
        ("max-size", &a.max_size),
    ] {
        if let Some(v) = v {
            rule(k, v);
        }
    }
    if a.ignore_case {
        rule("ignore-case", "");
    }
    if a.delete_excluded {
        rule("delete-excluded", "");
    }
    for (k, files) in [
        ("filter-from", &a.filter_from),
        ("include-from", &a.include_from),
        ("exclude-from", &a.exclude_from),
    ] {
        for f in files {
            let data =
                std::fs::read(f).with_context(|| format!("cannot read --{k} {}", f.display()))?;
            pairs.push((format!("{k}={}", f.display()).into_bytes(), data));
        }
    }
    Ok(pairs)
}

fn run_inner(mode: Mode, a: TreeArgs) -> anyhow::Result<u8> {
    let pairs = filter_pairs(&a)?;
    let filter = options::build_filter(&pairs)?;

    let style = Style {
        verbose: a.verbose,
        quiet: a.quiet,
        itemize: a.itemize_changes,
        progress: a.progress,
        json: a.json,
        dry_run: a.dry_run,
    };
    let printer = Arc::new(Printer::new(style, mode));
    let p = printer.clone();
    let src_arg = a.src.to_string_lossy().into_owned();
    let remote_src = Remote::parse(&src_arg);
    let remote_dst = Remote::parse(&a.dst.to_string_lossy());
    if remote_src.is_some() && remote_dst.is_some() {
        anyhow::bail!("both the source and the destination are remote; one side must be local");
    }
    let remote = remote_src.is_some() || remote_dst.is_some();
    let job = SyncBuilder::new(mode, &a.src, &a.dst)
        .filter(filter)
        .callback(Arc::new(move |e: &Event<'_>| p.event(e)))
        .configure(|o| {
            o.dry_run = a.dry_run;
            o.compare.checksum = a.checksum;
            o.compare.size_only = a.size_only;
            o.compare.ignore_times = a.ignore_times;
            o.compare.ignore_existing = a.ignore_existing;
            o.compare.skip_newer_dst = a.update;
            o.transfers = match a.transfers {
                Some(t) => t,
                // Transfers not asked for ahead wait a round trip: several hide it.
                None if remote => delta_core::sync::remote_transfers(),
                None => o.transfers,
            };
            o.transfer.inplace = a.inplace;
            o.transfer.whole_file = !a.no_whole_file;
            o.transfer.retries = a.retries;
            o.transfer.retry_wait = a.retry_wait;
            o.transfer.fsync = a.fsync;
            o.one_file_system = a.one_file_system;
            o.hard_links = !a.no_hard_links;
            let meta = &mut o.transfer.meta;
            meta.perms = !a.no_perms;
            meta.times = !a.no_times;
            meta.owner = !a.no_owner;
            meta.group = !a.no_owner;
            o.compare.meta = o.transfer.meta;
            o.max_delete = a.max_delete;
            o.force_delete = a.force_delete;
        })
        .build()?;
    let spec = FilterSpec::rclone(pairs);
    let report = match (remote_src, remote_dst) {
        (Some(remote), _) => connect::pull(&job, &remote, &a.remote, &spec, src_arg)?,
        (None, Some(remote)) => {
            let events = style.events();
            connect::push(&job, &a.src, &remote, &a.remote, &spec, events, &|e| {
                printer.event(e)
            })?
        }
        (None, None) => job.run()?,
    };
    printer.finish(&report, a.stats);
    Ok(report.outcome.exit_code())
}

/// A descriptor of its own for `fd` (standard input or output), its pipe widened.
fn raw(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<std::fs::File> {
    delta_core::transport::pipe::widen(fd);
    Ok(std::fs::File::from(fd.try_clone_to_owned()?))
}

/// `deltasync server`: the far side of a session, on standard input and output.
pub fn server(a: crate::args::ServerArgs) -> ExitCode {
    use delta_core::transport::kept;
    if let Some(secs) = a.keep {
        return match kept::ensure(Duration::from_secs(secs)) {
            Ok(path) => {
                #[allow(clippy::print_stdout)]
                {
                    println!("{}", path.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("deltasync server --keep: {e}");
                }
                ExitCode::from(1)
            }
        };
    }
    if let Some(secs) = a.daemon {
        let listener = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map(std::os::unix::net::UnixListener::from);
        return match listener.and_then(|l| kept::run_kept_server(l, Duration::from_secs(secs))) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1),
        };
    }
    // A client that stalls past the job's --timeout: nothing more can be done here, and
    // threads may be blocked writing to it; leave as rsync does (code 30).
    // The raw descriptors, not std's locked and line-buffered handles: frames are binary
    // and already written whole; the pipes from sshd are widened for bulk data.
    let (input, output) = match (
        raw(std::io::stdin().as_fd()),
        raw(std::io::stdout().as_fd()),
    ) {
        (Ok(i), Ok(o)) => (i, o),
        (Err(e), _) | (_, Err(e)) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("deltasync server: standard input or output: {e}");
            }
            return ExitCode::from(12);
        }
    };
    let duplex = Duplex::new(input, output).with_abort(|| {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("deltasync server: the client sent nothing within --timeout; giving up");
        }
        std::process::exit(30)
    });
    match delta_core::session::serve(duplex) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("deltasync server: {e}");
            }
            ExitCode::from(12)
        }
    }
}
