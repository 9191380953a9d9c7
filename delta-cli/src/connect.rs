//! Maps the remote flags (`-e/--rsh`, `--remote-bin`, `--compress-level`, `--no-compress`)
//! onto delta-core's [`Connector`]: how the far deltasync is started and reached; and the
//! two ways a pass runs with a far side, pull and push, shared by the native commands and the
//! rsync dialect.

use std::path::Path;

use anyhow::Context;
use delta_core::exec::{Event, Report};
use delta_core::session::options::FilterSpec;
use delta_core::session::{self, RemoteSource, SessionOptions};
use delta_core::sync::SyncJob;
use delta_core::transport::{Connector, Remote, SshCommand};

use crate::args::RemoteArgs;

/// The connector the flags ask for.
pub fn connector(a: &RemoteArgs) -> anyhow::Result<Box<dyn Connector>> {
    let mut ssh = match &a.rsh {
        Some(rsh) => SshCommand::with_rsh(rsh).map_err(anyhow::Error::msg)?,
        None => SshCommand::default(),
    };
    if let Some(bin) = &a.remote_bin {
        ssh.remote_bin = bin.clone();
    }
    Ok(Box::new(ssh))
}

/// Compression (`--compress-level`, `--no-compress`) and the idle timeout (`--timeout`).
pub fn session_options(a: &RemoteArgs) -> SessionOptions {
    SessionOptions {
        compress: (!a.no_compress).then_some(a.compress_level),
        timeout: (!a.timeout.is_zero()).then_some(a.timeout),
    }
}

/// Runs `job` (whose source is the far tree `remote`) here, from a far sender.
pub fn pull(
    job: &SyncJob,
    remote: &Remote,
    a: &RemoteArgs,
    filter: &FilterSpec,
    describe: String,
) -> anyhow::Result<Report> {
    let mut conn = connector(a)?.connect(remote, &server_args())?;
    let duplex = conn
        .take_duplex()
        .context("the connection has no streams")?;
    let source = RemoteSource::connect(
        duplex,
        remote.path.as_bytes(),
        job.options(),
        filter,
        describe,
        &session_options(a),
    )
    .map_err(|e| {
        anyhow::Error::new(e).context(format!(
            "cannot start a session with {}",
            remote.destination()
        ))
    })?;
    let report = job.run_from(&source);
    drop(source);
    let _ = conn.finish();
    Ok(report?)
}

/// Pushes the local tree `src` to the far tree `remote`: the far side runs `job`'s pass, its
/// events come back to `callback`.
pub fn push(
    job: &SyncJob,
    src: &Path,
    remote: &Remote,
    a: &RemoteArgs,
    filter: &FilterSpec,
    callback: &(dyn Fn(&Event<'_>) + Sync),
) -> anyhow::Result<Report> {
    match std::fs::metadata(src) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => anyhow::bail!("source {} is not a directory", src.display()),
        Err(e) => anyhow::bail!("source {}: {e}", src.display()),
    }
    let mut conn = connector(a)?.connect(remote, &server_args())?;
    let duplex = conn
        .take_duplex()
        .context("the connection has no streams")?;
    let report = session::push(
        duplex,
        src,
        remote.path.as_bytes(),
        job.options(),
        filter,
        &session_options(a),
        callback,
    );
    let _ = conn.finish();
    report.map_err(|e| anyhow::Error::new(e).context(remote.destination()))
}

fn server_args() -> Vec<String> {
    vec!["server".to_string()]
}
