//! Maps the remote flags onto delta-core: `-e/--rsh`, `--remote-bin`, `--ssh-transport`,
//! `--identity`, `--known-hosts`, `--ssh-host-key-check` choose the [`Connector`] (how the far
//! deltasync is started and reached); `--compress-level`, `--no-compress`, `--timeout` the
//! [`SessionOptions`]. Also the two ways a pass runs with a far side, pull and push, shared by
//! the native commands and the rsync dialect.

use std::path::Path;

use anyhow::Context;
use delta_core::exec::{Event, Report};
use delta_core::session::options::FilterSpec;
use delta_core::session::{self, Events, RemoteSource, SessionOptions};
use delta_core::sync::SyncJob;
use delta_core::transport::tune::{self, SshTuning};
use delta_core::transport::{Connector, Remote, SshCommand};

use crate::args::RemoteArgs;

/// The connector the flags ask for: `ssh` (the user's ssh command, `-e`) or `libssh2`
/// (in-process; takes its port, user, keys and host-key options from `-e` too). The explicit
/// `--identity`, `--known-hosts` and `--ssh-host-key-check` win over `-e`'s, for both.
pub fn connector(a: &RemoteArgs) -> anyhow::Result<Box<dyn Connector>> {
    if a.ssh_transport == "libssh2" {
        use delta_core::transport::libssh2::{HostKeyPolicy, Libssh2Connector};
        let mut c = Libssh2Connector::new();
        if let Some(rsh) = &a.rsh {
            c.apply_ssh_command(rsh)?;
        }
        c.identities.splice(0..0, a.identity.iter().cloned());
        if let Some(f) = &a.known_hosts {
            c.known_hosts = f.clone();
        }
        if let Some(check) = &a.ssh_host_key_check {
            c.host_key_policy = HostKeyPolicy::parse(check).context("--ssh-host-key-check")?;
        }
        if let Some(bin) = &a.remote_bin {
            c.remote_bin = bin.clone();
        }
        c.aes_first = a.ssh_aes_first;
        c.stderr = std::sync::Arc::new(|b: &[u8]| {
            use std::io::Write;
            let _ = std::io::stderr().write_all(b);
        });
        return Ok(Box::new(c));
    }
    let mut ssh = match &a.rsh {
        Some(rsh) => SshCommand::with_rsh(rsh).map_err(anyhow::Error::msg)?,
        None => SshCommand::default(),
    };
    // Right after the program name: ssh keeps the first value of an option, so these win
    // over the same options given in -e.
    let mut extra = Vec::new();
    for f in &a.identity {
        extra.extend(["-i".to_string(), f.to_string_lossy().into_owned()]);
    }
    if let Some(f) = &a.known_hosts {
        extra.extend([
            "-o".to_string(),
            format!("UserKnownHostsFile={}", f.to_string_lossy()),
        ]);
    }
    if let Some(check) = &a.ssh_host_key_check {
        extra.extend(["-o".to_string(), format!("StrictHostKeyChecking={check}")]);
    }
    // After the word that runs ssh (wrappers such as sshpass come first).
    let at = tune::ssh_word(&ssh.rsh).map_or(1, |i| i + 1);
    ssh.rsh.splice(at..at, extra);
    ssh.tuning = Some(SshTuning {
        aes_first: a.ssh_aes_first,
        ..SshTuning::new(a.ssh_reuse)
    });
    if let Some(bin) = &a.remote_bin {
        ssh.remote_bin = bin.clone();
    }
    Ok(Box::new(ssh))
}

/// Compression (`--compress-level`, `--no-compress`, `--compress-always`) and the idle
/// timeout (`--timeout`).
pub fn session_options(a: &RemoteArgs) -> SessionOptions {
    SessionOptions {
        compress: (!a.no_compress).then_some(a.compress_level),
        compress_always: a.compress_always,
        timeout: (!a.timeout.is_zero()).then_some(a.timeout),
        events: Events::All,
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
    // The report counted the bytes up to the pass's end; the session's last frames cross
    // when the source is dropped.
    let wire = source.wire_count();
    drop(source);
    let _ = conn.finish();
    let mut report = report?;
    if let Some(w) = wire {
        (report.stats.wire_sent, report.stats.wire_received) = (w.sent(), w.received());
    }
    Ok(report)
}

/// Pushes the local tree `src` to the far tree `remote`: the far side runs `job`'s pass, the
/// `events` the output needs come back to `callback`.
pub fn push(
    job: &SyncJob,
    src: &Path,
    remote: &Remote,
    a: &RemoteArgs,
    filter: &FilterSpec,
    events: Events,
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
        &SessionOptions {
            events,
            ..session_options(a)
        },
        callback,
    );
    let _ = conn.finish();
    report.map_err(|e| anyhow::Error::new(e).context(remote.destination()))
}

fn server_args() -> Vec<String> {
    vec!["server".to_string()]
}
