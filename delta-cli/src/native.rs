//! `copy`, `sync` and `check`: rclone's spellings mapped onto a delta-core sync job.
//!
//! Exit codes: 0 success; 1 usage error, a pass that could not start, or `check` differences;
//! 23 some entries failed; 24 some source files vanished; 25 deletions stopped by
//! `--max-delete` or a safety rail.

use std::process::ExitCode;
use std::sync::Arc;

use delta_core::exec::Event;
use delta_core::filter::{RcloneFilterBuilder, TimeBase};
use delta_core::session::RemoteSource;
use delta_core::sync::{Mode, SyncBuilder};
use delta_core::transport::{Duplex, Remote, SshCommand};

use crate::args::TreeArgs;
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

fn run_inner(mode: Mode, a: TreeArgs) -> anyhow::Result<u8> {
    let mut f = RcloneFilterBuilder::new();
    for r in &a.filter {
        f.filter(r);
    }
    for p in &a.filter_from {
        f.filter_from(p);
    }
    for r in &a.include {
        f.include(r);
    }
    for p in &a.include_from {
        f.include_from(p);
    }
    for r in &a.exclude {
        f.exclude(r);
    }
    for p in &a.exclude_from {
        f.exclude_from(p);
    }
    f.ignore_case(a.ignore_case)
        .delete_excluded(a.delete_excluded)
        .time_base(TimeBase::now_local());
    if let Some(v) = &a.min_age {
        f.min_age(v);
    }
    if let Some(v) = &a.max_age {
        f.max_age(v);
    }
    if let Some(v) = &a.min_size {
        f.min_size(v);
    }
    if let Some(v) = &a.max_size {
        f.max_size(v);
    }
    let filter = f.build()?;

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
    if Remote::parse(&a.dst.to_string_lossy()).is_some() {
        anyhow::bail!(
            "pushing to a far destination ({}) is not supported yet; run deltasync on the destination host and pull from the source instead",
            a.dst.display()
        );
    }
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
            if let Some(t) = a.transfers {
                o.transfers = t;
            }
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
    let report = match remote_src {
        None => job.run()?,
        Some(remote) => {
            let mut ssh = match &a.rsh {
                Some(rsh) => SshCommand::with_rsh(rsh).map_err(anyhow::Error::msg)?,
                None => SshCommand::default(),
            };
            if let Some(bin) = &a.remote_bin {
                ssh.remote_bin = bin.clone();
            }
            let mut child = ssh.spawn(&remote, &["server".to_string()])?;
            let duplex = child.duplex().expect("fresh child has its pipes");
            let source = RemoteSource::connect(
                duplex,
                remote.path.as_bytes(),
                mode,
                a.dry_run,
                src_arg.clone(),
            )
            .map_err(|e| {
                anyhow::anyhow!("cannot start a session with {}: {e}", remote.destination())
            })?;
            let report = job.run_from(Box::new(source));
            let _ = child.child.wait();
            report?
        }
    };
    printer.finish(&report, a.stats);
    Ok(report.outcome.exit_code())
}

/// `deltasync server`: the far side of a session, on standard input and output.
pub fn server() -> ExitCode {
    let duplex = Duplex::new(std::io::stdin(), std::io::stdout());
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
