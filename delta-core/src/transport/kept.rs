//! A far deltasync kept between passes, reached through a forward on the kept ssh login.
//!
//! Every pass over `ssh` costs, before any work: a start of `ssh`, a session on the (kept)
//! connection, the far user's login shell with its startup files (on some hosts a tenth of a
//! second or more: version managers, banners), and a start of deltasync. A migration runs
//! the same command many times, the last one in the downtime. So, with login reuse on
//! ([`super::tune`]), the first pass also leaves a small server on the far side, and the
//! passes that follow reach it directly:
//!
//! - **Far side.** `deltasync server --keep SECS` ([`ensure`]) makes sure a *kept server*
//!   listens on a Unix socket in the far user's private runtime directory
//!   (`$XDG_RUNTIME_DIR/deltasync`, else `/tmp/deltasync-UID`: mode 0700, ours, not a link),
//!   starting one if none answers, and prints the socket's path. The kept server
//!   ([`run_kept_server`]) is `deltasync server --daemon SECS`, in a session of its own, with
//!   the listening socket as its standard input: for each connection it starts
//!   `deltasync server` on it, exactly what ssh would have started, then writes
//!   [`PREAMBLE`]; it exits after `SECS` without a connection. The socket's name hashes the
//!   binary's path, size, modification time and version, so another binary (an upgrade) gets
//!   its own kept server.
//! - **Near side.** After a pass started over ssh, a helper asks the far side for that path
//!   (one more command on the kept login) and has the ssh master forward a Unix socket of
//!   ours, beside the master's own socket, to it (`ssh -O forward -L LOCAL:FAR`). The next
//!   pass connects to that local socket and reads [`PREAMBLE`] ([`reach`]); then the session
//!   runs over it as over ssh's pipes. Anything else (no socket, a dead master, a far server
//!   gone) removes the local socket and the pass starts over ssh, as before.
//!
//! Who can connect: only the user, on both sides (private directories); the kept server
//! starts the same `deltasync server` with the same rights as a login would. Nothing of a
//! tree is read or written here; the sessions are confined to their roots as always.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::tune::{default_dir, is_socket, private_dir};

/// What a kept server writes on each connection once the session's server has started: the
/// near side reads it before the session begins, so a forward whose far end is gone is told
/// from a live one before anything of the session is sent.
pub const PREAMBLE: &[u8; 8] = b"DSKEPT1\n";

/// How long the near side waits for [`PREAMBLE`].
const PREAMBLE_WAIT: Duration = Duration::from_secs(10);

/// Far side: the path of the kept server for this binary, started (listening on a socket it
/// is handed, idle for at most `idle`) if none answers there.
pub fn ensure(idle: Duration) -> io::Result<PathBuf> {
    let dir = private_dir(&default_dir()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            "no private runtime directory for a kept server",
        )
    })?;
    let exe = std::env::current_exe()?;
    let path = dir.join(socket_name(&exe)?);
    for _ in 0..2 {
        if UnixStream::connect(&path).is_ok() {
            return Ok(path);
        }
        // Nobody answers: a socket left by a server that ended can go (the directory is ours).
        if is_socket(&path) {
            let _ = std::fs::remove_file(&path);
        }
        match UnixListener::bind(&path) {
            Ok(listener) => {
                start_kept_server(&exe, listener, idle)?;
                return Ok(path);
            }
            // Another pass started one in the meantime: ask it again.
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("{} is taken and does not answer", path.display()),
    ))
}

/// `server-HASH.sock`, HASH naming this binary (path, size, modification time) and version.
fn socket_name(exe: &Path) -> io::Result<String> {
    use std::os::unix::ffi::OsStrExt;
    let m = std::fs::metadata(exe)?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(exe.as_os_str().as_bytes());
    h.update(&m.len().to_le_bytes());
    h.update(&m.mtime().to_le_bytes());
    h.update(&m.mtime_nsec().to_le_bytes());
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    Ok(format!("server-{:016x}.sock", h.digest()))
}

/// Starts `exe server --daemon SECS` in a session of its own, with `listener` as its standard
/// input and nothing else of ours.
fn start_kept_server(exe: &Path, listener: UnixListener, idle: Duration) -> io::Result<()> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(exe);
    cmd.args(["server", "--daemon", &idle.as_secs().max(1).to_string()])
        .stdin(Stdio::from(OwnedFd::from(listener)))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure runs in the child between fork and exec and only calls setsid,
    // which is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Not waited for: it outlives this process, and init reaps it.
    cmd.spawn().map(drop)
}

/// Far side: the kept server's loop, on the listening socket `listener`. Each connection gets
/// `exe server` on it, then [`PREAMBLE`]; servers that ended are reaped within a second (no
/// `<defunct>` entry lingers until the next connection); the process exits after `idle`
/// without a new connection, removing its socket.
pub fn run_kept_server(listener: UnixListener, idle: Duration) -> io::Result<()> {
    let exe = std::env::current_exe()?;
    let path = listener.local_addr()?.as_pathname().map(Path::to_path_buf);
    let ino = path
        .as_deref()
        .and_then(|p| std::fs::symlink_metadata(p).ok())
        .map(|m| m.ino());
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let children: Arc<Mutex<Vec<Child>>> = Arc::default();
    {
        let last = Arc::clone(&last);
        let children = Arc::clone(&children);
        std::thread::spawn(move || loop {
            reap(&children);
            let since = Duration::from_millis(last.load(Ordering::Relaxed));
            let quiet = start.elapsed().saturating_sub(since);
            if quiet >= idle {
                // Our socket only: a later kept server may have taken the name.
                if let (Some(p), Some(ino)) = (&path, ino) {
                    if std::fs::symlink_metadata(p).is_ok_and(|m| m.ino() == ino) {
                        let _ = std::fs::remove_file(p);
                    }
                }
                std::process::exit(0);
            }
            std::thread::sleep((idle - quiet).min(Duration::from_secs(1)));
        });
    }
    loop {
        let (stream, _) = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
        reap(&children);
        if let Ok(c) = start_server(&exe, &stream) {
            children.lock().unwrap_or_else(|e| e.into_inner()).push(c);
            // The server writes only after the near side's Hello, which waits for this. A
            // near side already gone (a probe that only connects) fails this write; its
            // server then reads end of input and ends, and is reaped like any other.
            let _ = (&stream).write_all(PREAMBLE);
        }
    }
}

/// Waits for the servers that ended, and forgets them.
fn reap(children: &Mutex<Vec<Child>>) {
    children
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
}

/// Starts `exe server` on `stream`.
fn start_server(exe: &Path, stream: &UnixStream) -> io::Result<Child> {
    let input = stream.as_fd().try_clone_to_owned()?;
    let output = stream.as_fd().try_clone_to_owned()?;
    Command::new(exe)
        .arg("server")
        .stdin(Stdio::from(input))
        .stdout(Stdio::from(output))
        .stderr(Stdio::null())
        .spawn()
}

/// Near side: a connection to a kept server through the local end of its forward at `local`,
/// once the kept server has answered.
pub fn reach(local: &Path) -> io::Result<UnixStream> {
    let mut s = UnixStream::connect(local)?;
    s.set_read_timeout(Some(PREAMBLE_WAIT))?;
    let mut got = [0u8; PREAMBLE.len()];
    s.read_exact(&mut got)?;
    if &got != PREAMBLE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a kept deltasync server",
        ));
    }
    s.set_read_timeout(None)?;
    Ok(s)
}

/// Near side: where the forward to the kept server of `remote_bin` goes, beside the master's
/// socket `master`.
pub(crate) fn local_socket(master: &str, remote_bin: &str) -> PathBuf {
    let h = xxhash_rust::xxh3::xxh3_64(remote_bin.as_bytes());
    PathBuf::from(format!("{master}.{:08x}", h as u32))
}

/// Near side, after a pass started over ssh: asks the far side for its kept server (`ssh`
/// is the ssh command with the master's options, up to the destination) and forwards `local`
/// to it on the master at `master`. Quietly does nothing when any step fails: the next pass
/// then starts over ssh again.
pub(crate) fn establish(
    ssh: &[String],
    destination: &str,
    remote_bin: &str,
    idle: Duration,
    master: &Path,
    local: &Path,
) {
    // The master appears once this pass's ssh has logged in.
    let until = Instant::now() + Duration::from_secs(10);
    while !is_socket(master) {
        if Instant::now() > until {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = idle.as_secs().max(1).to_string();
    let keep = super::remote_command(remote_bin, &["server".into(), "--keep".into(), secs]);
    let Some(out) = run_bounded(
        Command::new(&ssh[0])
            .args(&ssh[1..])
            .arg(destination)
            .arg(keep),
    ) else {
        return;
    };
    let Some(far) = far_path(&out) else {
        return;
    };
    // The master may still hold this very forward from an earlier pass (its far end gone
    // since): it would answer "already have" and listen on nothing, so it is cancelled
    // first. Cancelling leaves the socket file, which goes too.
    let spec = format!("{}:{far}", local.display());
    let control = |op: &str| {
        run_bounded(
            Command::new(&ssh[0])
                .args(&ssh[1..])
                .args(["-O", op, "-L", &spec])
                .arg(destination),
        )
    };
    let _ = control("cancel");
    if is_socket(local) {
        let _ = std::fs::remove_file(local);
    }
    let _ = control("forward");
}

/// The far side's answer to `server --keep`: one absolute path, no more than a socket path
/// can be, of plain characters (it goes into an ssh option).
fn far_path(out: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(out).ok()?.strip_suffix('\n')?;
    let plain = s
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b':' && b != b'%' && b != b'\\');
    (s.starts_with('/') && s.len() < 108 && plain).then_some(s)
}

/// Runs `cmd` (stdin and stderr closed) for at most ten seconds; its standard output if it
/// succeeded.
fn run_bounded(cmd: &mut Command) -> Option<Vec<u8>> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut out = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.by_ref().take(4096).read_to_end(&mut v);
        v
    });
    let until = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    let out = reader.join().ok()?;
    status.success().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_far_path_must_be_one_plain_absolute_path() {
        assert_eq!(
            far_path(b"/tmp/deltasync-0/server-0123.sock\n"),
            Some("/tmp/deltasync-0/server-0123.sock")
        );
        for bad in [
            &b"relative/x.sock\n"[..],
            b"/no/newline",
            b"/two\n/lines\n",
            b"/with space\n",
            b"/with:colon\n",
            b"/x\xff\n",
            b"",
        ] {
            assert_eq!(far_path(bad), None, "{bad:?}");
        }
        let long = format!("/{}\n", "a".repeat(200));
        assert_eq!(far_path(long.as_bytes()), None);
    }

    #[test]
    fn the_local_socket_sits_beside_the_master_per_remote_bin() {
        let a = local_socket("/run/user/1/deltasync/abc", "deltasync");
        let b = local_socket("/run/user/1/deltasync/abc", "/opt/deltasync");
        assert!(a.starts_with("/run/user/1/deltasync"));
        assert!(a
            .to_str()
            .unwrap()
            .starts_with("/run/user/1/deltasync/abc."));
        assert_ne!(a, b);
    }

    /// The near side takes a stream only after the preamble; a wrong answer or a connection
    /// closed at once (a forward whose far end is gone) is an error, so the pass can fall
    /// back to ssh. (The kept server itself runs in the ssh tests of delta-cli.)
    #[test]
    fn a_connection_reads_the_preamble_or_fails_clearly() {
        let dir = std::env::temp_dir().join(format!("ds-kept-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        // A listener that answers with the preamble, as a kept server does.
        let listener = UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(PREAMBLE).unwrap();
            let mut b = [0u8; 5];
            s.read_exact(&mut b).unwrap();
            s.write_all(&b).unwrap();
            // Then one that answers with something else.
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"SSH-2.0-").unwrap();
            // And one that closes at once (a forward whose far end is gone).
            let (s, _) = listener.accept().unwrap();
            drop(s);
        });
        let mut s = reach(&path).unwrap();
        s.write_all(b"hello").unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).unwrap();
        assert_eq!(
            &b, b"hello",
            "the stream carries the session after the preamble"
        );
        let e = reach(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let e = reach(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        t.join().unwrap();
        assert!(reach(&dir.join("none.sock")).is_err(), "no socket");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
