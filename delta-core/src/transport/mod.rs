//! The only module that spawns processes or opens connections: how a session with a far
//! deltasync is reached.
//!
//! - [`Remote::parse`] recognises `[user@]host:path` operands (rsync's rule: a colon before
//!   the first slash);
//! - [`SshCommand`] builds the command line that starts `deltasync --server` on the far side
//!   through the user's own `ssh` (so `~/.ssh/config`, agents, ProxyJump and ControlMaster
//!   apply), or through the `-e/--rsh` command the user gave;
//! - [`Duplex`] is any pair of byte streams a session runs over: a child's pipes, or an
//!   in-memory pair ([`Duplex::pair`]) for tests and for embedding;
//! - [`Connector`] is how a far deltasync is started and reached: [`SshCommand`] spawns the
//!   user's `ssh`; any other way (an in-process SSH client, a socket) implements the same trait
//!   and yields a [`Connection`];
//! - [`kept`]: with login reuse, passes after the first reach a far deltasync kept from the
//!   first, through a forward on the kept ssh login, without a login shell or an `ssh` start;
//! - [`libssh2::Libssh2Connector`] (cargo feature `libssh2`, on by default) reaches the far
//!   side in-process over libssh2, without an `ssh` binary: host-key checking against
//!   known_hosts, keys from the agent or files, full duplex through one pump thread.

pub mod kept;
#[cfg(feature = "libssh2")]
pub mod libssh2;
pub mod pipe;
pub mod tune;

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::Duration;

/// A remote tree operand: `[user@]host:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// Login name, when given.
    pub user: Option<String>,
    /// Host name or address (IPv6 in brackets is unwrapped).
    pub host: String,
    /// Path on the far side (may be empty: the login directory).
    pub path: String,
}

impl Remote {
    /// Parses `arg` as a remote operand. Like rsync, a colon counts only before the first `/`,
    /// so `./a:b` and `/x:y` are local paths; `host::module` (rsync daemon syntax) is not
    /// supported and is refused as local too.
    pub fn parse(arg: &str) -> Option<Remote> {
        let (hostpart, path) = if let Some(rest) = arg.strip_prefix('[') {
            // [v6addr]:path or user@[v6]:path are rare; accept [addr]:path.
            let close = rest.find(']')?;
            let after = &rest[close + 1..];
            let path = after.strip_prefix(':')?;
            (&arg[..close + 2], path)
        } else {
            let colon = arg.find(':')?;
            if arg[..colon].contains('/') || colon == 0 {
                return None;
            }
            (&arg[..colon], &arg[colon + 1..])
        };
        if path.starts_with(':') {
            return None;
        }
        let (user, host) = match hostpart.rsplit_once('@') {
            Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
            Some(_) => return None,
            None => (None, hostpart),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return None;
        }
        Some(Remote {
            user,
            host: host.to_string(),
            path: path.to_string(),
        })
    }

    /// `user@host` or `host`, as ssh takes it.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

/// How to start the far side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshCommand {
    /// The remote shell and its arguments (default `ssh`).
    pub rsh: Vec<String>,
    /// The far side's deltasync binary (default `deltasync`).
    pub remote_bin: String,
    /// Login reuse and cipher order ([`tune`]); default none: the command runs as given.
    pub tuning: Option<tune::SshTuning>,
}

impl Default for SshCommand {
    fn default() -> Self {
        Self {
            rsh: vec!["ssh".into()],
            remote_bin: "deltasync".into(),
            tuning: None,
        }
    }
}

impl SshCommand {
    /// With a user-given remote shell command, split as a shell would (quotes and backslashes).
    pub fn with_rsh(rsh: &str) -> Result<Self, String> {
        let words = shell_words(rsh)?;
        if words.is_empty() {
            return Err("empty remote shell command".into());
        }
        Ok(Self {
            rsh: words,
            ..Self::default()
        })
    }

    /// The full command line: the remote shell, the destination, then the remote command
    /// (quoted for the far side's shell).
    /// With [`SshCommand::tuning`] set, this asks `ssh -G` what the user's configuration
    /// leaves open (see [`tune`]).
    pub fn argv(&self, remote: &Remote, server_args: &[String]) -> Vec<OsString> {
        self.full_argv(&self.tuned(remote).0, remote, server_args)
    }

    /// The remote shell's words with the tuning's options in place, and the master's socket
    /// when login reuse was added.
    fn tuned(&self, remote: &Remote) -> (Vec<String>, Option<String>) {
        let mut words = self.rsh.clone();
        let mut master = None;
        if let Some(t) = self
            .tuning
            .as_ref()
            .and_then(|r| r.options(&self.rsh, &remote.destination()))
        {
            words.splice(t.at..t.at, t.opts);
            master = t.master;
        }
        (words, master)
    }

    fn full_argv(
        &self,
        words: &[String],
        remote: &Remote,
        server_args: &[String],
    ) -> Vec<OsString> {
        let mut v: Vec<OsString> = words.iter().map(OsString::from).collect();
        v.push(remote.destination().into());
        v.push(remote_command(&self.remote_bin, server_args).into());
        v
    }

    /// Starts the far side; its standard error is passed through to ours.
    pub fn spawn(&self, remote: &Remote, server_args: &[String]) -> io::Result<SshChild> {
        self.spawn_argv(self.argv(remote, server_args))
    }

    fn spawn_argv(&self, argv: Vec<OsString>) -> io::Result<SshChild> {
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot start {:?}: {e}", self.rsh[0]))
            })?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        {
            use std::os::fd::AsFd;
            pipe::widen(stdin.as_fd());
            pipe::widen(stdout.as_fd());
        }
        Ok(SshChild {
            child,
            stdin: Some(stdin),
            stdout: Some(stdout),
        })
    }
}

/// Starts a far deltasync and yields the byte streams to it.
pub trait Connector: Send + Sync {
    /// Runs `remote_bin server_args...` on `remote`'s host.
    fn connect(&self, remote: &Remote, server_args: &[String]) -> io::Result<Connection>;
}

impl Connector for SshCommand {
    fn connect(&self, remote: &Remote, server_args: &[String]) -> io::Result<Connection> {
        let (words, master) = self.tuned(remote);
        // With login reuse, a far server kept from an earlier pass ([`kept`]) is reached
        // through its forward; anything amiss there and the pass starts over ssh. Not for a
        // far command of several words (`sudo deltasync`): its server could not be reached
        // as the login user, so it runs as given every pass.
        let plain_bin = shell_words(&self.remote_bin).is_ok_and(|w| w.len() == 1);
        let kept_route = master
            .filter(|_| plain_bin && server_args == ["server"])
            .map(|m| {
                let local = kept::local_socket(&m, &self.remote_bin);
                (std::path::PathBuf::from(m), local)
            });
        if let Some((_, local)) = &kept_route {
            if tune::is_socket(local) {
                match kept::reach(local) {
                    Ok(stream) => return kept_connection(stream),
                    Err(_) => {
                        let _ = std::fs::remove_file(local);
                    }
                }
            }
        }
        let mut child = self.spawn_argv(self.full_argv(&words, remote, server_args))?;
        let duplex = child.duplex().expect("a fresh child has its pipes");
        let child = std::sync::Arc::new(std::sync::Mutex::new(child.child));
        let killer = std::sync::Arc::downgrade(&child);
        // Aborting kills the remote shell: its pipes close, so every blocked read and write
        // of the session returns.
        let duplex = duplex.with_abort(move || {
            if let Some(c) = killer.upgrade() {
                let _ = c.lock().unwrap_or_else(|e| e.into_inner()).kill();
            }
        });
        // Meanwhile, keep a far server for the passes that follow.
        let helper = kept_route.map(|(master, local)| {
            let destination = remote.destination();
            let remote_bin = self.remote_bin.clone();
            let idle = self.tuning.as_ref().map_or(Duration::ZERO, |t| t.reuse);
            std::thread::spawn(move || {
                kept::establish(&words, &destination, &remote_bin, idle, &master, &local)
            })
        });
        Ok(Connection::new(duplex, move || {
            let status = child.lock().unwrap_or_else(|e| e.into_inner()).wait()?;
            if let Some(h) = helper {
                let _ = h.join();
            }
            Ok(status.code())
        }))
    }
}

/// A session's streams over a connection to a kept server.
fn kept_connection(stream: std::os::unix::net::UnixStream) -> io::Result<Connection> {
    let reader = stream.try_clone()?;
    let closer = stream.try_clone()?;
    let duplex = Duplex::new(reader, SocketWriter(stream)).with_abort(move || {
        let _ = closer.shutdown(std::net::Shutdown::Both);
    });
    Ok(Connection::new(duplex, || Ok(None)))
}

/// The writing half of a socket: dropping it ends our direction (the far side reads the end
/// of its input), as closing a pipe to ssh does, although the reading half stays open.
struct SocketWriter(std::os::unix::net::UnixStream);

impl Write for SocketWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Drop for SocketWriter {
    fn drop(&mut self) {
        let _ = self.0.shutdown(std::net::Shutdown::Write);
    }
}

/// A far side being talked to: its byte streams, and how to wait for it to end.
pub struct Connection {
    /// The byte streams; take them with [`Connection::take_duplex`].
    duplex: Option<Duplex>,
    finish: Option<Box<dyn FnOnce() -> io::Result<Option<i32>> + Send>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection over `duplex`; `finish` waits for the far side and returns its exit code
    /// (`None` when it has none, e.g. killed by a signal).
    pub fn new(
        duplex: Duplex,
        finish: impl FnOnce() -> io::Result<Option<i32>> + Send + 'static,
    ) -> Self {
        Self {
            duplex: Some(duplex),
            finish: Some(Box::new(finish)),
        }
    }

    /// The byte streams (once).
    pub fn take_duplex(&mut self) -> Option<Duplex> {
        self.duplex.take()
    }

    /// Waits for the far side to end (drop the duplex first) and returns its exit code.
    pub fn finish(mut self) -> io::Result<Option<i32>> {
        self.duplex = None;
        match self.finish.take() {
            Some(f) => f(),
            None => Ok(None),
        }
    }
}

/// The command line the far side's shell runs: `remote_bin` is a command, split as a shell
/// would (so `sudo deltasync` works, as rsync's `--rsync-path` does; a path with spaces must be
/// quoted), then each argument quoted.
pub fn remote_command(remote_bin: &str, args: &[String]) -> String {
    let words = match shell_words(remote_bin) {
        Ok(w) if !w.is_empty() => w,
        _ => vec![remote_bin.to_string()],
    };
    let mut cmd = String::new();
    for w in words.iter().chain(args) {
        if !cmd.is_empty() {
            cmd.push(' ');
        }
        cmd.push_str(&shell_quote(w));
    }
    cmd
}

/// A started far side.
#[derive(Debug)]
pub struct SshChild {
    /// The process.
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
}

impl SshChild {
    /// The byte streams to the far side (once).
    pub fn duplex(&mut self) -> Option<Duplex> {
        Some(Duplex {
            reader: Box::new(self.stdout.take()?),
            writer: Box::new(self.stdin.take()?),
            abort: None,
        })
    }
}

/// Tears a connection down so that blocked reads and writes on it return (kills the remote
/// shell, closes the socket).
pub type Abort = std::sync::Arc<dyn Fn() + Send + Sync>;

/// A bidirectional byte stream.
pub struct Duplex {
    /// Bytes from the peer.
    pub reader: Box<dyn Read + Send>,
    /// Bytes to the peer.
    pub writer: Box<dyn Write + Send>,
    /// How to tear the stream down when the peer stalls (used by the session's idle timeout;
    /// without it a timed-out session reports the error but a write blocked on a full pipe
    /// stays blocked until the peer goes away).
    pub abort: Option<Abort>,
}

/// Bytes that crossed a [`Duplex`] each way, as counted by [`Duplex::counted`]: what a
/// session wrote to and read from its ssh pipes or socket (after compression, before ssh's
/// encryption).
#[derive(Debug, Clone, Default)]
pub struct WireCount {
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    received: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl WireCount {
    /// Bytes written to the far side so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Bytes read from the far side so far.
    pub fn received(&self) -> u64 {
        self.received.load(std::sync::atomic::Ordering::Relaxed)
    }
}

struct CountingReader {
    inner: Box<dyn Read + Send>,
    n: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

struct CountingWriter {
    inner: Box<dyn Write + Send>,
    n: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let n = self.inner.write_vectored(bufs)?;
        self.n
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl std::fmt::Debug for Duplex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Duplex").finish_non_exhaustive()
    }
}

impl Duplex {
    /// Any reader and writer.
    pub fn new(reader: impl Read + Send + 'static, writer: impl Write + Send + 'static) -> Self {
        Self {
            reader: Box::new(reader),
            writer: Box::new(writer),
            abort: None,
        }
    }

    /// The same streams, counting the bytes that cross them each way.
    pub fn counted(self) -> (Duplex, WireCount) {
        let count = WireCount::default();
        let duplex = Duplex {
            reader: Box::new(CountingReader {
                inner: self.reader,
                n: count.received.clone(),
            }),
            writer: Box::new(CountingWriter {
                inner: self.writer,
                n: count.sent.clone(),
            }),
            abort: self.abort,
        };
        (duplex, count)
    }

    /// The same streams, torn down by `abort` when the session gives up on a stalled peer.
    pub fn with_abort(mut self, abort: impl Fn() + Send + Sync + 'static) -> Self {
        self.abort = Some(std::sync::Arc::new(abort));
        self
    }

    /// Two connected in-memory ends, with `capacity` chunks of buffering each way.
    pub fn pair(capacity: usize) -> (Duplex, Duplex) {
        let (a_tx, a_rx) = sync_channel(capacity);
        let (b_tx, b_rx) = sync_channel(capacity);
        (
            Duplex::new(
                ChanReader {
                    rx: b_rx,
                    buf: Vec::new(),
                    pos: 0,
                },
                ChanWriter { tx: a_tx },
            ),
            Duplex::new(
                ChanReader {
                    rx: a_rx,
                    buf: Vec::new(),
                    pos: 0,
                },
                ChanWriter { tx: b_tx },
            ),
        )
    }
}

struct ChanWriter {
    tx: SyncSender<Vec<u8>>,
}

impl Write for ChanWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.tx
            .send(data.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "peer closed"))?;
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads the chunks sent over a channel as one byte stream; the end of the channel is the
/// end of the stream.
pub(crate) struct ChanReader {
    rx: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl ChanReader {
    pub(crate) fn new(rx: Receiver<Vec<u8>>) -> Self {
        Self {
            rx,
            buf: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChanReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Splits a command line as a POSIX shell would for words: whitespace separates; single
/// quotes keep everything; double quotes keep everything but `\"` and `\\`; a backslash
/// outside quotes escapes the next character.
pub fn shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated single quote in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(format!("unterminated double quote in {s:?}")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(format!("unterminated double quote in {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => return Err(format!("trailing backslash in {s:?}")),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Quotes a word for a POSIX shell (the far side's login shell runs the remote command).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_duplex_counts_each_way() {
        let (a, b) = Duplex::pair(8);
        let (mut a, count) = a.counted();
        let mut b = b;
        a.writer.write_all(b"hello").unwrap();
        // A vectored write may take only part: what it took is what counts.
        let n = a
            .writer
            .write_vectored(&[io::IoSlice::new(b"ab"), io::IoSlice::new(b"c")])
            .unwrap();
        a.writer.flush().unwrap();
        b.writer.write_all(b"0123456789").unwrap();
        b.writer.flush().unwrap();
        let mut got = [0u8; 10];
        a.reader.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"0123456789");
        let mut got = Vec::new();
        drop(a.writer);
        b.reader.read_to_end(&mut got).unwrap();
        assert_eq!(got, &b"helloabc"[..5 + n]);
        assert_eq!((count.sent(), count.received()), (5 + n as u64, 10));
    }

    #[test]
    fn remote_operands() {
        let r = |s| Remote::parse(s);
        assert_eq!(
            r("host:/srv/mail"),
            Some(Remote {
                user: None,
                host: "host".into(),
                path: "/srv/mail".into()
            })
        );
        assert_eq!(
            r("root@10.0.0.5:/var/lib/docker/volumes"),
            Some(Remote {
                user: Some("root".into()),
                host: "10.0.0.5".into(),
                path: "/var/lib/docker/volumes".into()
            })
        );
        assert_eq!(
            r("h:"),
            Some(Remote {
                user: None,
                host: "h".into(),
                path: "".into()
            })
        );
        assert_eq!(
            r("[::1]:x"),
            Some(Remote {
                user: None,
                host: "::1".into(),
                path: "x".into()
            })
        );
        for local in [
            "/abs/path",
            "./a:b",
            "a/b:c",
            "plain",
            ":x",
            "host::module",
            "@:x",
        ] {
            assert_eq!(r(local), None, "{local}");
        }
        assert_eq!(r("u@h:p").unwrap().destination(), "u@h");
    }

    #[test]
    fn rsh_words_and_quoting() {
        assert_eq!(
            shell_words("ssh -p 2222 -i 'my key' -o \"A=b c\"").unwrap(),
            ["ssh", "-p", "2222", "-i", "my key", "-o", "A=b c"]
        );
        assert_eq!(shell_words(r"ssh -i a\ b").unwrap(), ["ssh", "-i", "a b"]);
        assert!(shell_words("ssh 'x").is_err());
        assert_eq!(shell_quote("simple-path/x"), "simple-path/x");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        let cmd = SshCommand::with_rsh("ssh -p 2222").unwrap();
        let argv = cmd.argv(
            &Remote::parse("u@h:/p").unwrap(),
            &["--server".into(), "/a b".into()],
        );
        assert_eq!(
            argv,
            ["ssh", "-p", "2222", "u@h", "deltasync --server '/a b'"].map(OsString::from)
        );
        // The far binary is a command, as rsync's --rsync-path.
        assert_eq!(
            remote_command("sudo '/opt/my tools/deltasync'", &["server".into()]),
            "sudo '/opt/my tools/deltasync' server"
        );
        assert_eq!(remote_command("", &["server".into()]), "'' server");
    }

    #[test]
    fn in_memory_pair_carries_bytes_both_ways() {
        let (mut a, mut b) = Duplex::pair(4);
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 5];
            b.reader.read_exact(&mut buf).unwrap();
            b.writer.write_all(&buf).unwrap();
        });
        a.writer.write_all(b"hello").unwrap();
        let mut back = [0u8; 5];
        a.reader.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello");
        t.join().unwrap();
    }
}
