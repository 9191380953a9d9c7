//! The in-process SSH transport: a far deltasync reached through libssh2 (the `ssh2` crate)
//! instead of the user's `ssh` binary, for programs that embed delta-core and for hosts
//! without an ssh client.
//!
//! What it owns: the TCP connection, the SSH session on it (handshake, host-key check,
//! public-key authentication), one `exec` channel running `remote_bin server_args...`, and the
//! thread that moves bytes through it. It may use the network and the files named in its
//! configuration (the identities, and the known_hosts file, which it appends to only under
//! [`HostKeyPolicy::AcceptNew`]). It never prints: the far command's standard error goes to
//! the [`Libssh2Connector::stderr`] callback, and every failure is a [`Libssh2Error`].
//!
//! # Threading model
//!
//! A session runs with a reader and a writer on different threads, and the writer may be
//! blocked (the peer is not reading) while the reader must go on. A blocking libssh2 session
//! holds its lock for the whole of a blocking read, so a writer on another thread would wait
//! for that read to end: a deadlock as soon as both sides write at once. So the session is
//! switched to non-blocking mode after the channel is opened and handed to **one pump
//! thread** that owns it. The [`Duplex`] given to the caller is a pair of bounded channel
//! ends:
//!
//! - the writer queues chunks on a bounded `mpsc` channel (full: the writer waits, which is
//!   the back-pressure of a slow peer);
//! - the pump moves queued chunks into the SSH channel and SSH data into another bounded
//!   `mpsc` channel that the reader drains; the far command's standard error (extended data
//!   stream 1) goes to the `stderr` callback as it comes;
//! - when a round moved nothing, the pump sleeps in `poll(2)` on the TCP socket, for the
//!   directions libssh2 reports it is blocked on, and on a wake-up socket that the reader and
//!   writer signal whenever they queue or take a chunk or are dropped (a timeout of 250 ms is
//!   only a safety net).
//!
//! The duplex's abort hook (the session's idle timeout) stops the pump at once: the reader's
//! stream ends, the writer fails, and the socket is closed.
//!
//! End of stream both ways: dropping the writer sends the channel's EOF (the far side sees
//! the end of its standard input); the far side's EOF ends the reader's stream, after its
//! pending standard error has been passed on. [`Connection::finish`] waits for the pump,
//! closes the channel and returns the far command's exit status.
//!
//! # Host keys
//!
//! The server's key is checked against [`Libssh2Connector::known_hosts`] (OpenSSH's format,
//! hashed names included) before any authentication, as OpenSSH does: a host on a port other
//! than 22 is looked up as `[host]:port`, exactly as `ssh` and `ssh-keyscan` write it, and
//! the key types already known for the host are preferred in the key exchange so that a host
//! recorded with an ed25519 key is not reached with its ECDSA key. Under
//! [`HostKeyPolicy::Strict`] (the default) an unknown host is refused with the
//! `ssh-keyscan` line that adds it, and a changed key is refused loudly with the file and the
//! line to remove; [`HostKeyPolicy::AcceptNew`] appends an unknown host's key to the file and
//! still refuses a changed one; [`HostKeyPolicy::Off`] checks nothing. Lines libssh2 cannot
//! read (certificate authorities, security-key types) are skipped, not fatal.
//!
//! # Authentication
//!
//! Public keys only, never a prompt: the [`Libssh2Connector::identities`] in order; when
//! there are none, every key of the ssh agent (`SSH_AUTH_SOCK`), then `~/.ssh/id_ed25519`,
//! `id_ecdsa` and `id_rsa`. A key protected by a passphrase must be loaded into the agent.
//! When nothing is accepted, the error lists every key tried and why it failed.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ssh2::{Channel, CheckResult, ErrorCode, HashType, HostKeyType, MethodType, Session};

use super::{remote_command, shell_quote, shell_words, Connection, Connector, Duplex, Remote};

/// What to do with the server's host key (OpenSSH's `StrictHostKeyChecking`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostKeyPolicy {
    /// Refuse a host that is not in known_hosts, or whose key differs from the recorded one.
    #[default]
    Strict,
    /// Record an unknown host's key in known_hosts and go on; refuse a changed key.
    AcceptNew,
    /// Check nothing (for throwaway hosts only: anyone in the path can pose as the server).
    Off,
}

impl HostKeyPolicy {
    /// Parses OpenSSH's values: `yes` and `ask` (nobody is asked here) are
    /// [`Strict`](Self::Strict), `accept-new` is [`AcceptNew`](Self::AcceptNew), `no` and
    /// `off` are [`Off`](Self::Off).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "yes" | "ask" | "strict" => Some(Self::Strict),
            "accept-new" => Some(Self::AcceptNew),
            "no" | "off" => Some(Self::Off),
            _ => None,
        }
    }
}

/// Where the far command's standard error goes, chunk by chunk as it arrives.
pub type StderrSink = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// Reaches a far deltasync over SSH in-process (libssh2). Build it with
/// [`Libssh2Connector::new`], then set the fields.
#[non_exhaustive]
pub struct Libssh2Connector {
    /// TCP port of the SSH server (default 22).
    pub port: u16,
    /// Login name; when `None`, the remote operand's `user@`, else `$USER` (or `$LOGNAME`),
    /// else the effective user's name.
    pub user: Option<String>,
    /// Private key files, tried in order. When empty: the ssh agent's keys, then
    /// `~/.ssh/id_ed25519`, `~/.ssh/id_ecdsa`, `~/.ssh/id_rsa`.
    pub identities: Vec<PathBuf>,
    /// The known_hosts file (default `~/.ssh/known_hosts`).
    pub known_hosts: PathBuf,
    /// What an unknown or changed host key leads to (default [`HostKeyPolicy::Strict`]).
    pub host_key_policy: HostKeyPolicy,
    /// The far side's deltasync (default `deltasync`, found through the far PATH); a command,
    /// split as a shell would (`sudo deltasync` works).
    pub remote_bin: String,
    /// Limit for the TCP connection, the SSH handshake and authentication (default 30 s).
    pub connect_timeout: Duration,
    /// Receives the far command's standard error (default: discarded).
    pub stderr: StderrSink,
    /// Offer AES-GCM first where the CPU has AES instructions (default true; see
    /// [`super::tune`]).
    pub aes_first: bool,
}

impl fmt::Debug for Libssh2Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Libssh2Connector")
            .field("port", &self.port)
            .field("user", &self.user)
            .field("identities", &self.identities)
            .field("known_hosts", &self.known_hosts)
            .field("host_key_policy", &self.host_key_policy)
            .field("remote_bin", &self.remote_bin)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for Libssh2Connector {
    fn default() -> Self {
        Self::new()
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// `~/x` → `$HOME/x`, as ssh expands `-i` and `UserKnownHostsFile`.
fn expand_tilde(p: &str) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => home().join(rest),
        None if p == "~" => home(),
        None => PathBuf::from(p),
    }
}

/// The ssh options [`Libssh2Connector::apply_ssh_command`] understands, for messages.
const SUPPORTED_SSH_OPTIONS: &str = "-p, -l, -i, -o Port/User/IdentityFile/UserKnownHostsFile/StrictHostKeyChecking/ConnectTimeout (and the no-ops -q -T -x -a -C, BatchMode, LogLevel, IdentitiesOnly)";

impl Libssh2Connector {
    /// Port 22, the default keys and `~/.ssh/known_hosts`, strict host-key checking,
    /// `deltasync` on the far side, a 30 s connection limit, standard error discarded.
    pub fn new() -> Self {
        Self {
            port: 22,
            user: None,
            identities: Vec::new(),
            known_hosts: home().join(".ssh").join("known_hosts"),
            host_key_policy: HostKeyPolicy::Strict,
            remote_bin: "deltasync".into(),
            aes_first: true,
            connect_timeout: Duration::from_secs(30),
            stderr: Arc::new(|_: &[u8]| {}),
        }
    }

    /// Takes the port, login name, identities, known_hosts file, host-key policy and
    /// connection timeout from an ssh command line such as
    /// `ssh -p 2222 -l user -i ~/.ssh/key -o StrictHostKeyChecking=accept-new` (the `-e`
    /// option of the command-line tool), so the same line works with both transports. Any
    /// option that would change what ssh does and that this transport cannot honour
    /// (`-J`, `-F`, `-o ProxyCommand=…`) is refused, never ignored.
    pub fn apply_ssh_command(&mut self, rsh: &str) -> Result<(), Libssh2Error> {
        let bad = |option: &str, reason: String| Libssh2Error::SshOption {
            option: option.to_string(),
            reason,
        };
        let words = shell_words(rsh).map_err(|e| bad(rsh, e))?;
        let Some((program, args)) = words.split_first() else {
            return Err(bad(rsh, "empty remote shell command".into()));
        };
        if Path::new(program).file_name() != Some("ssh".as_ref()) {
            return Err(bad(
                program,
                "the libssh2 transport reads ssh's options from this command but cannot run another program".into(),
            ));
        }
        let mut it = args.iter();
        while let Some(word) = it.next() {
            let Some(flags) = word.strip_prefix('-').filter(|f| !f.is_empty()) else {
                return Err(bad(
                    word,
                    "a remote shell command must not name the host or a command; the host comes from the remote path".into(),
                ));
            };
            for (i, c) in flags.char_indices() {
                match c {
                    'q' | 'T' | 'x' | 'a' | 'C' => continue,
                    'p' | 'l' | 'i' | 'o' => {}
                    _ => {
                        return Err(bad(
                            &format!("-{c}"),
                            format!("not supported by the libssh2 transport (it reads {SUPPORTED_SSH_OPTIONS}); use the ssh transport for it"),
                        ))
                    }
                }
                let rest = &flags[i + c.len_utf8()..];
                let value = if !rest.is_empty() {
                    rest.to_string()
                } else {
                    it.next()
                        .cloned()
                        .ok_or_else(|| bad(&format!("-{c}"), "needs a value".into()))?
                };
                match c {
                    'p' => self.port = parse_port(&value).map_err(|r| bad("-p", r))?,
                    'l' => self.user = Some(value),
                    'i' => self.identities.push(expand_tilde(&value)),
                    _ => self.apply_ssh_config_option(&value)?,
                }
                break;
            }
        }
        Ok(())
    }

    /// One `-o Key=Value` (or `-o "Key Value"`).
    fn apply_ssh_config_option(&mut self, kv: &str) -> Result<(), Libssh2Error> {
        let (key, value) = match kv.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => kv
                .trim()
                .split_once(char::is_whitespace)
                .map(|(k, v)| (k, v.trim()))
                .unwrap_or((kv.trim(), "")),
        };
        let bad = |reason: String| Libssh2Error::SshOption {
            option: format!("-o {kv}"),
            reason,
        };
        if value.is_empty() {
            return Err(bad("needs a value".into()));
        }
        match key.to_ascii_lowercase().as_str() {
            "port" => self.port = parse_port(value).map_err(bad)?,
            "user" => self.user = Some(value.to_string()),
            "identityfile" => self.identities.push(expand_tilde(value)),
            "userknownhostsfile" => {
                // ssh takes several files; the first is the one it reads and writes.
                let first = value.split_whitespace().next().unwrap_or(value);
                self.known_hosts = expand_tilde(first);
            }
            "stricthostkeychecking" => {
                self.host_key_policy = HostKeyPolicy::parse(value)
                    .ok_or_else(|| bad("expects yes, accept-new or no".into()))?;
            }
            "connecttimeout" => {
                let secs: u64 = value
                    .parse()
                    .map_err(|_| bad("expects a number of seconds".into()))?;
                self.connect_timeout = Duration::from_secs(secs.max(1));
            }
            // Nothing here ever prompts or logs, and identities are only what is listed.
            "batchmode" | "loglevel" | "identitiesonly" => {}
            _ => {
                return Err(bad(format!(
                    "not supported by the libssh2 transport (it reads {SUPPORTED_SSH_OPTIONS}); use the ssh transport for it"
                )))
            }
        }
        Ok(())
    }

    /// The far command line, quoted for the far side's shell (as the ssh transport's).
    fn command(&self, server_args: &[String]) -> String {
        remote_command(&self.remote_bin, server_args)
    }

    fn login(&self, remote: &Remote) -> Result<String, Libssh2Error> {
        self.user
            .clone()
            .or_else(|| remote.user.clone())
            .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
            .or_else(|| std::env::var("LOGNAME").ok().filter(|u| !u.is_empty()))
            .or_else(login_name)
            .ok_or(Libssh2Error::NoUser)
    }

    /// Connects, checks the host key, authenticates and starts the far command; the session
    /// is still blocking.
    fn open(
        &self,
        remote: &Remote,
        server_args: &[String],
    ) -> Result<(Session, Channel, TcpStream), Libssh2Error> {
        let addr = display_addr(&remote.host, self.port);
        let ssh = |stage: &'static str| {
            let addr = addr.clone();
            move |e: ssh2::Error| Libssh2Error::Ssh {
                stage,
                addr,
                message: e.message().to_string(),
            }
        };
        let tcp = self.tcp(&remote.host, &addr)?;
        // The pump polls this duplicate of the socket; libssh2 keeps it non-blocking.
        let socket = tcp.try_clone().map_err(|source| Libssh2Error::Connect {
            addr: addr.clone(),
            source,
        })?;
        let mut session = Session::new().map_err(ssh("setup"))?;
        session.set_tcp_stream(tcp);
        session.set_timeout(millis(self.connect_timeout));
        let known = KnownHostsFile::read(&self.known_hosts)?;
        let name = known_hosts_name(&remote.host, self.port);
        if self.host_key_policy != HostKeyPolicy::Off {
            let types = known.key_types_for(&session, &name);
            let supported = session
                .supported_algs(MethodType::HostKey)
                .unwrap_or_default();
            if let Some(pref) = host_key_preference(&supported, &types) {
                // A refused preference only means libssh2 picks its own order.
                let _ = session.method_pref(MethodType::HostKey, &pref);
            }
        }
        if self.aes_first && super::tune::cpu_has_aes() {
            for dir in [MethodType::CryptCs, MethodType::CryptSc] {
                let supported = session.supported_algs(dir).unwrap_or_default();
                if let Some(pref) = aes_gcm_first(&supported) {
                    // A refused preference only means libssh2's own order.
                    let _ = session.method_pref(dir, &pref);
                }
            }
        }
        session.handshake().map_err(ssh("handshake"))?;
        self.check_host_key(&session, &known, &name, &addr, &remote.host)?;
        let user = self.login(remote)?;
        self.authenticate(&session, &user, &addr)?;
        let mut channel = session
            .channel_session()
            .map_err(ssh("opening a channel"))?;
        channel
            .exec(&self.command(server_args))
            .map_err(ssh("starting the far command"))?;
        Ok((session, channel, socket))
    }

    fn tcp(&self, host: &str, addr: &str) -> Result<TcpStream, Libssh2Error> {
        let addrs: Vec<_> = (host, self.port)
            .to_socket_addrs()
            .map_err(|source| Libssh2Error::Resolve {
                host: host.to_string(),
                source,
            })?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.connect_timeout) {
                Ok(s) => {
                    // Requests are small frames answered one by one: don't hold them back.
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = e,
            }
        }
        Err(Libssh2Error::Connect {
            addr: addr.to_string(),
            source: last,
        })
    }

    fn check_host_key(
        &self,
        session: &Session,
        known: &KnownHostsFile,
        name: &str,
        addr: &str,
        host: &str,
    ) -> Result<(), Libssh2Error> {
        if self.host_key_policy == HostKeyPolicy::Off {
            return Ok(());
        }
        let (key, kind) = session.host_key().ok_or_else(|| Libssh2Error::Ssh {
            stage: "handshake",
            addr: addr.to_string(),
            message: "the server sent no host key".into(),
        })?;
        let key_type = key_type_name(kind);
        let offered = format!(
            "{key_type} {}",
            session
                .host_key_hash(HashType::Sha256)
                .map(fingerprint)
                .unwrap_or_else(|| "(no fingerprint)".into())
        );
        let known_types = known.key_types_for(session, name);
        let found = of_type(known.check(session, name, key)?, key_type, &known_types);
        match decide(found, self.host_key_policy) {
            Decision::Accept => Ok(()),
            Decision::Record => {
                append_known_host(&self.known_hosts, &known_hosts_line(name, key_type, key))
            }
            Decision::RefuseUnknown => Err(Libssh2Error::UnknownHostKey {
                addr: addr.to_string(),
                known_hosts: self.known_hosts.clone(),
                offered,
                keyscan: keyscan_hint(host, self.port, &self.known_hosts),
                known_types,
            }),
            Decision::RefuseChanged => Err(Libssh2Error::ChangedHostKey {
                addr: addr.to_string(),
                known_hosts: self.known_hosts.clone(),
                offered,
                remove: format!(
                    "ssh-keygen -R {} -f {}",
                    shell_quote(name),
                    shell_quote(&self.known_hosts.to_string_lossy())
                ),
            }),
        }
    }

    fn authenticate(&self, session: &Session, user: &str, addr: &str) -> Result<(), Libssh2Error> {
        let auth_error = |tried: Vec<String>| Libssh2Error::Auth {
            user: user.to_string(),
            addr: addr.to_string(),
            tried,
        };
        // Asking for the methods tries "none", which some servers accept.
        let methods = match session.auth_methods(user) {
            Ok(m) => m.to_string(),
            Err(_) if session.authenticated() => return Ok(()),
            Err(e) => {
                return Err(Libssh2Error::Ssh {
                    stage: "authentication",
                    addr: addr.to_string(),
                    message: e.message().to_string(),
                })
            }
        };
        if !methods.split(',').any(|m| m == "publickey") {
            return Err(auth_error(vec![format!(
                "nothing: the server accepts only {methods}, and this transport authenticates with keys only"
            )]));
        }
        let mut tried = Vec::new();
        if self.identities.is_empty() {
            if try_agent(session, user, &mut tried) {
                return Ok(());
            }
            for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
                let path = home().join(".ssh").join(name);
                if path.exists() && try_key_file(session, user, &path, &mut tried) {
                    return Ok(());
                }
            }
            if tried.len() <= 1 {
                tried.push("~/.ssh/id_ed25519, id_ecdsa, id_rsa (none exists)".into());
            }
        } else {
            for path in &self.identities {
                if try_key_file(session, user, path, &mut tried) {
                    return Ok(());
                }
            }
        }
        Err(auth_error(tried))
    }
}

impl Connector for Libssh2Connector {
    fn connect(&self, remote: &Remote, server_args: &[String]) -> io::Result<Connection> {
        let (session, channel, socket) = self.open(remote, server_args)?;
        start_pump(session, channel, socket, self.stderr.clone())
    }
}

/// The name of the effective user in the password database (what ssh logs in as).
fn login_name() -> Option<String> {
    let mut pw = std::mem::MaybeUninit::<libc::passwd>::uninit();
    let mut buf = vec![0 as libc::c_char; 16 << 10];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: geteuid has no preconditions; getpwuid_r writes only into `pw` and `buf`, whose
    // sizes are given, and sets `found` to `pw` or null. `pw_name` then points into `buf`,
    // which outlives the copy made below.
    unsafe {
        let r = libc::getpwuid_r(
            libc::geteuid(),
            pw.as_mut_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        );
        if r != 0 || found.is_null() || (*found).pw_name.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr((*found).pw_name);
        Some(name.to_string_lossy().into_owned()).filter(|n| !n.is_empty())
    }
}

fn parse_port(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("{s:?} is not a port number"))
}

fn millis(d: Duration) -> u32 {
    d.as_millis().clamp(1, u128::from(u32::MAX)) as u32
}

/// `host:port` for messages (`[v6]:port` for IPv6 addresses).
fn display_addr(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The host's name in known_hosts, as OpenSSH writes it: `host` on port 22,
/// `[host]:port` on any other.
pub fn known_hosts_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

fn keyscan_hint(host: &str, port: u16, known_hosts: &Path) -> String {
    let port = if port == 22 {
        String::new()
    } else {
        format!("-p {port} ")
    };
    format!(
        "ssh-keyscan {port}{} >> {}",
        shell_quote(host),
        shell_quote(&known_hosts.to_string_lossy())
    )
}

fn key_type_name(kind: HostKeyType) -> &'static str {
    match kind {
        HostKeyType::Rsa => "ssh-rsa",
        HostKeyType::Dss => "ssh-dss",
        HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        HostKeyType::Ed25519 => "ssh-ed25519",
        HostKeyType::Unknown => "unknown",
    }
}

/// OpenSSH's fingerprint of a key: `SHA256:` and the unpadded base64 of its SHA-256.
fn fingerprint(sha256: &[u8]) -> String {
    let mut b = base64_encode(sha256);
    while b.ends_with('=') {
        b.pop();
    }
    format!("SHA256:{b}")
}

fn known_hosts_line(name: &str, key_type: &str, key: &[u8]) -> String {
    format!("{name} {key_type} {}\n", base64_encode(key))
}

/// Appends one line to the known_hosts file, creating it (mode 0600) and its directory
/// (0700) as ssh does.
fn append_known_host(path: &Path, line: &str) -> Result<(), Libssh2Error> {
    let err = |e: io::Error| Libssh2Error::KnownHostsFile {
        path: path.to_path_buf(),
        message: format!("cannot record the new host key: {e}"),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(err)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        }
    }
    let needs_newline = std::fs::read(path)
        .map(|d| !d.is_empty() && !d.ends_with(b"\n"))
        .unwrap_or(false);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    let text = if needs_newline {
        format!("\n{line}")
    } else {
        line.to_string()
    };
    f.write_all(text.as_bytes()).map_err(err)
}

/// What the known_hosts lookup found for the offered key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    /// The host is recorded with this key.
    Match,
    /// The host is not recorded with a key of this type.
    Unknown,
    /// The host is recorded with another key of this type.
    Mismatch,
}

/// What to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Accept,
    Record,
    RefuseUnknown,
    RefuseChanged,
}

/// libssh2 compares the offered key with every key recorded for the host, whatever its
/// type; OpenSSH compares keys of the same type only, and a host known by another type of key
/// is a new key to it, not a changed one. `known_types` are the types recorded for the host.
fn of_type(found: Lookup, offered_type: &str, known_types: &[String]) -> Lookup {
    match found {
        Lookup::Mismatch if !known_types.iter().any(|t| t == offered_type) => Lookup::Unknown,
        other => other,
    }
}

fn decide(found: Lookup, policy: HostKeyPolicy) -> Decision {
    match (policy, found) {
        (HostKeyPolicy::Off, _) | (_, Lookup::Match) => Decision::Accept,
        (HostKeyPolicy::AcceptNew, Lookup::Unknown) => Decision::Record,
        (HostKeyPolicy::Strict, Lookup::Unknown) => Decision::RefuseUnknown,
        (_, Lookup::Mismatch) => Decision::RefuseChanged,
    }
}

/// The host-key algorithms to offer: those of the key types known_hosts has for the host
/// first (as OpenSSH orders them), then the rest of what libssh2 supports; `None` when no
/// type is known (libssh2's own order then).
/// libssh2's ciphers with the AES-GCM ones first, if it has any.
fn aes_gcm_first(supported: &[&str]) -> Option<String> {
    let gcm = |a: &&str| a.starts_with("aes") && a.contains("-gcm");
    let mut first: Vec<&str> = supported.iter().copied().filter(gcm).collect();
    if first.is_empty() {
        return None;
    }
    // AES-128 first: as strong for this use, with fewer rounds.
    first.sort_by_key(|a| !a.starts_with("aes128"));
    let rest = supported.iter().copied().filter(|a| !gcm(a));
    Some(first.into_iter().chain(rest).collect::<Vec<_>>().join(","))
}

fn host_key_preference(supported: &[&str], known_types: &[String]) -> Option<String> {
    fn algs(t: &str) -> Vec<&str> {
        match t {
            "ssh-rsa" => vec!["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
            t => vec![t],
        }
    }
    let known: Vec<&str> = known_types.iter().flat_map(|t| algs(t)).collect();
    let first: Vec<&str> = supported
        .iter()
        .copied()
        .filter(|a| known.contains(a))
        .collect();
    if first.is_empty() {
        return None;
    }
    let rest = supported.iter().copied().filter(|a| !known.contains(a));
    Some(first.into_iter().chain(rest).collect::<Vec<_>>().join(","))
}

/// The lines of a known_hosts file (none when it does not exist).
struct KnownHostsFile {
    path: PathBuf,
    lines: Vec<String>,
}

impl KnownHostsFile {
    fn read(path: &Path) -> Result<Self, Libssh2Error> {
        let text = match std::fs::read(path) {
            Ok(d) => String::from_utf8_lossy(&d).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(Libssh2Error::KnownHostsFile {
                    path: path.to_path_buf(),
                    message: format!("cannot read it: {e}"),
                })
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            lines: text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from)
                .collect(),
        })
    }

    /// libssh2's collection of the lines it can read; the others are skipped.
    fn collection(&self, session: &Session) -> Result<ssh2::KnownHosts, ssh2::Error> {
        let mut kh = session.known_hosts()?;
        for line in &self.lines {
            let _ = kh.read_str(line, ssh2::KnownHostFileKind::OpenSSH);
        }
        Ok(kh)
    }

    /// Looks `name` (already `[host]:port` when the port is not 22) up with `key`. The name
    /// is given whole, without a port, so that libssh2 matches it as OpenSSH does: an entry
    /// for the bare host does not count for another port.
    fn check(&self, session: &Session, name: &str, key: &[u8]) -> Result<Lookup, Libssh2Error> {
        let failed = |message: String| Libssh2Error::KnownHostsFile {
            path: self.path.clone(),
            message,
        };
        let kh = self
            .collection(session)
            .map_err(|e| failed(e.message().to_string()))?;
        match kh.check(name, key) {
            CheckResult::Match => Ok(Lookup::Match),
            CheckResult::NotFound => Ok(Lookup::Unknown),
            CheckResult::Mismatch => Ok(Lookup::Mismatch),
            CheckResult::Failure => Err(failed(format!("cannot look up {name} in it"))),
        }
    }

    /// The key types recorded for `name`, in file order, each once.
    fn key_types_for(&self, session: &Session, name: &str) -> Vec<String> {
        let Ok(kh) = self.collection(session) else {
            return Vec::new();
        };
        let mut types: Vec<String> = Vec::new();
        for line in &self.lines {
            if line.starts_with('@') {
                continue;
            }
            let mut fields = line.split_whitespace().skip(1);
            let (Some(t), Some(b64)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Some(blob) = base64_decode(b64) else {
                continue;
            };
            // This line's key, looked up under our name: a match means the line (or an
            // identical one) is for this host.
            if matches!(kh.check(name, &blob), CheckResult::Match) && !types.iter().any(|x| x == t)
            {
                types.push(t.to_string());
            }
        }
        types
    }
}

fn is_eagain(e: &ssh2::Error) -> bool {
    e.code() == ErrorCode::Session(-37) // LIBSSH2_ERROR_EAGAIN
}

/// Why one key was not accepted, for the list in [`Libssh2Error::Auth`].
fn auth_failure(e: &ssh2::Error) -> String {
    match e.code() {
        // LIBSSH2_ERROR_AUTHENTICATION_FAILED, LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED
        ErrorCode::Session(-18 | -19) => "refused by the server".into(),
        // LIBSSH2_ERROR_FILE
        ErrorCode::Session(-16) => format!(
            "cannot use it: {}; a key with a passphrase must be loaded into ssh-agent",
            e.message()
        ),
        _ => e.message().to_string(),
    }
}

fn try_key_file(session: &Session, user: &str, path: &Path, tried: &mut Vec<String>) -> bool {
    if !path.is_file() {
        tried.push(format!("{} (not found)", path.display()));
        return false;
    }
    match session.userauth_pubkey_file(user, None, path, None) {
        Ok(()) if session.authenticated() => true,
        Ok(()) => {
            tried.push(format!("{} (more authentication required)", path.display()));
            false
        }
        Err(e) => {
            tried.push(format!("{} ({})", path.display(), auth_failure(&e)));
            false
        }
    }
}

fn try_agent(session: &Session, user: &str, tried: &mut Vec<String>) -> bool {
    if std::env::var_os("SSH_AUTH_SOCK").is_none() {
        tried.push("the ssh agent (none: SSH_AUTH_SOCK is not set)".into());
        return false;
    }
    let mut agent = match session.agent() {
        Ok(a) => a,
        Err(e) => {
            tried.push(format!("the ssh agent ({})", e.message()));
            return false;
        }
    };
    if let Err(e) = agent.connect().and_then(|()| agent.list_identities()) {
        tried.push(format!("the ssh agent ({})", e.message()));
        return false;
    }
    let ids = agent.identities().unwrap_or_default();
    if ids.is_empty() {
        tried.push("the ssh agent (it holds no keys)".into());
    }
    let mut ok = false;
    for id in ids {
        match agent.userauth(user, &id) {
            Ok(()) if session.authenticated() => {
                ok = true;
                break;
            }
            Ok(()) => tried.push(format!(
                "agent key {:?} (more authentication required)",
                id.comment()
            )),
            Err(e) => tried.push(format!(
                "agent key {:?} ({})",
                id.comment(),
                auth_failure(&e)
            )),
        }
    }
    let _ = agent.disconnect();
    ok
}

/// Why the in-process SSH transport could not reach the far side.
#[derive(Debug)]
#[non_exhaustive]
pub enum Libssh2Error {
    /// The host name has no address.
    Resolve {
        /// The name.
        host: String,
        /// Why.
        source: io::Error,
    },
    /// No TCP connection to the server.
    Connect {
        /// `host:port`.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// A step of the SSH protocol failed.
    Ssh {
        /// Which step.
        stage: &'static str,
        /// `host:port`.
        addr: String,
        /// libssh2's message.
        message: String,
    },
    /// The known_hosts file could not be read or written.
    KnownHostsFile {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The server's key is not in known_hosts (strict checking).
    UnknownHostKey {
        /// `host:port`.
        addr: String,
        /// The known_hosts file.
        known_hosts: PathBuf,
        /// The offered key's type and fingerprint.
        offered: String,
        /// The command that adds the host's keys.
        keyscan: String,
        /// Key types known_hosts has for the host, none of which the server offered.
        known_types: Vec<String>,
    },
    /// The server's key differs from the one recorded in known_hosts.
    ChangedHostKey {
        /// `host:port`.
        addr: String,
        /// The known_hosts file.
        known_hosts: PathBuf,
        /// The offered key's type and fingerprint.
        offered: String,
        /// The command that removes the recorded key.
        remove: String,
    },
    /// No key was accepted.
    Auth {
        /// The login name.
        user: String,
        /// `host:port`.
        addr: String,
        /// Each key tried, with why it failed.
        tried: Vec<String>,
    },
    /// No login name: none given, `$USER` is not set and the user has no name.
    NoUser,
    /// An ssh option this transport cannot honour, or a malformed one.
    SshOption {
        /// The option as written.
        option: String,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for Libssh2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Resolve { host, source } => write!(f, "cannot resolve {host}: {source}"),
            Self::Connect { addr, source } => write!(f, "cannot connect to {addr}: {source}"),
            Self::Ssh {
                stage,
                addr,
                message,
            } => write!(f, "ssh {stage} with {addr} failed: {message}"),
            Self::KnownHostsFile { path, message } => {
                write!(f, "known_hosts file {}: {message}", path.display())
            }
            Self::UnknownHostKey {
                addr,
                known_hosts,
                offered,
                keyscan,
                known_types,
            } => {
                write!(
                    f,
                    "host key for {addr} is not in {} (the server offers {offered}",
                    known_hosts.display()
                )?;
                if !known_types.is_empty() {
                    write!(
                        f,
                        "; the file lists it only with keys of type {}, which the server did not offer",
                        known_types.join(", ")
                    )?;
                }
                write!(
                    f,
                    "); add it with `{keyscan}` or pass --ssh-host-key-check accept-new"
                )
            }
            Self::ChangedHostKey {
                addr,
                known_hosts,
                offered,
                remove,
            } => write!(
                f,
                "HOST KEY CHANGED: the host key for {addr} does not match the one in {}; refusing to connect. \
                 Someone may be intercepting the connection, or the host was reinstalled. The server offers {offered}; \
                 if that is the host's new key, remove the old one with `{remove}`",
                known_hosts.display()
            ),
            Self::Auth { user, addr, tried } => write!(
                f,
                "authentication as {user} on {addr} failed; tried: {}",
                tried.join(", ")
            ),
            Self::NoUser => f.write_str("no login name: give user@host"),
            Self::SshOption { option, reason } => write!(f, "ssh option {option}: {reason}"),
        }
    }
}

// The message already includes the underlying error: no `source`, or it would be shown twice.
impl std::error::Error for Libssh2Error {}

impl From<Libssh2Error> for io::Error {
    fn from(e: Libssh2Error) -> io::Error {
        let kind = match &e {
            Libssh2Error::Resolve { source, .. } | Libssh2Error::Connect { source, .. } => {
                source.kind()
            }
            Libssh2Error::UnknownHostKey { .. }
            | Libssh2Error::ChangedHostKey { .. }
            | Libssh2Error::Auth { .. } => io::ErrorKind::PermissionDenied,
            Libssh2Error::SshOption { .. } | Libssh2Error::NoUser => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

// ---------------------------------------------------------------------------------------------
// The pump: one thread owns the non-blocking session and moves bytes both ways.

/// Chunks queued by the writer (each at most one protocol frame, about 1 MiB).
const OUT_CHUNKS: usize = 8;
/// Chunks of SSH data waiting for the reader.
const IN_CHUNKS: usize = 32;
/// Bytes read from the channel at a time.
const READ_SIZE: usize = 64 << 10;
/// The pump's longest sleep when nothing wakes it (a safety net).
const POLL_LIMIT: Duration = Duration::from_millis(250);
/// How long [`Connection::finish`] waits for the far side to close the channel.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the reader and writer share with the pump.
struct Shared {
    /// The other end of the pump's wake-up socket.
    wake: UnixStream,
    /// Why the pump stopped, when it failed.
    failure: Mutex<Option<String>>,
    /// Set by the duplex's abort hook: the pump stops at once.
    aborted: AtomicBool,
}

impl Shared {
    fn wake(&self) {
        // A full socket already holds a wake-up; nothing else can fail here.
        let _ = (&self.wake).write(&[1]);
    }

    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

struct PumpWriter {
    tx: Option<SyncSender<Vec<u8>>>,
    shared: Arc<Shared>,
}

impl Write for PumpWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let sent = self.tx.as_ref().map(|tx| tx.send(data.to_vec()));
        match sent {
            Some(Ok(())) => {
                self.shared.wake();
                Ok(data.len())
            }
            _ => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                self.shared
                    .failure()
                    .unwrap_or_else(|| "the far side closed the ssh channel".into()),
            )),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for PumpWriter {
    fn drop(&mut self) {
        self.tx = None;
        self.shared.wake();
    }
}

struct PumpReader {
    rx: Option<Receiver<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
    shared: Arc<Shared>,
}

impl Read for PumpReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            let Some(rx) = &self.rx else { return Ok(0) };
            match rx.recv() {
                Ok(b) => {
                    self.buf = b;
                    self.pos = 0;
                    // The pump may be holding a chunk for a full channel.
                    self.shared.wake();
                }
                Err(_) => {
                    self.rx = None;
                    return match self.shared.failure() {
                        Some(why) => Err(io::Error::new(io::ErrorKind::ConnectionAborted, why)),
                        None => Ok(0),
                    };
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for PumpReader {
    fn drop(&mut self) {
        self.rx = None;
        self.shared.wake();
    }
}

fn start_pump(
    session: Session,
    channel: Channel,
    socket: TcpStream,
    stderr: StderrSink,
) -> io::Result<Connection> {
    let (wake_rx, wake_tx) = UnixStream::pair()?;
    wake_rx.set_nonblocking(true)?;
    wake_tx.set_nonblocking(true)?;
    let shared = Arc::new(Shared {
        wake: wake_tx,
        failure: Mutex::new(None),
        aborted: AtomicBool::new(false),
    });
    let (out_tx, out_rx) = sync_channel(OUT_CHUNKS);
    let (in_tx, in_rx) = sync_channel(IN_CHUNKS);
    session.set_blocking(false);
    let pump = Pump {
        session,
        channel,
        socket,
        wake: wake_rx,
        out_rx: Some(out_rx),
        in_tx: Some(in_tx),
        stderr,
        shared: shared.clone(),
    };
    let handle = std::thread::Builder::new()
        .name("deltasync-ssh".into())
        .spawn(move || pump.run())?;
    let duplex = Duplex::new(
        PumpReader {
            rx: Some(in_rx),
            buf: Vec::new(),
            pos: 0,
            shared: shared.clone(),
        },
        PumpWriter {
            tx: Some(out_tx),
            shared: shared.clone(),
        },
    )
    // The session gives up on a stalled peer: the pump stops, which ends the reader's stream,
    // fails the writer, and closes the socket (the far sshd then ends the far command).
    .with_abort(move || {
        shared.aborted.store(true, Ordering::SeqCst);
        shared.wake();
    });
    Ok(Connection::new(duplex, move || {
        let (session, mut channel) = handle
            .join()
            .map_err(|_| io::Error::other("the ssh pump thread panicked"))??;
        session.set_blocking(true);
        session.set_timeout(millis(CLOSE_TIMEOUT));
        let _ = channel.close();
        let _ = channel.wait_close();
        let signal = channel.exit_signal().ok().and_then(|s| s.exit_signal);
        let status = channel.exit_status().map_err(io::Error::from)?;
        let _ = session.disconnect(None, "done", None);
        Ok(if signal.is_some() { None } else { Some(status) })
    }))
}

struct Pump {
    session: Session,
    channel: Channel,
    socket: TcpStream,
    wake: UnixStream,
    out_rx: Option<Receiver<Vec<u8>>>,
    in_tx: Option<SyncSender<Vec<u8>>>,
    stderr: StderrSink,
    shared: Arc<Shared>,
}

impl Pump {
    /// Runs until our side has sent its EOF and the far side's output has ended (or nobody
    /// reads it any more); gives the session and channel back for closing. On failure, the
    /// reason is recorded before the channel ends are dropped, so the reader and the writer
    /// report it rather than a clean end.
    fn run(mut self) -> io::Result<(Session, Channel)> {
        match self.pump() {
            Ok(()) => Ok((self.session, self.channel)),
            Err(e) => {
                *self
                    .shared
                    .failure
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) =
                    Some(format!("the ssh connection failed: {e}"));
                Err(e)
            }
        }
    }

    fn pump(&mut self) -> io::Result<()> {
        let mut buf = vec![0u8; READ_SIZE];
        let mut pending_out: Option<(Vec<u8>, usize)> = None;
        let mut eof_sent = false;
        let mut pending_in: Option<Vec<u8>> = None;
        let mut far_eof = false;
        let mut stderr_done = false;
        loop {
            if self.shared.aborted.load(Ordering::SeqCst) {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the connection was torn down",
                ));
            }
            let mut progress = false;
            // The socket directions some call of this round would have blocked on.
            let mut want = Want::default();

            // Our writer → the channel.
            if pending_out.is_none() {
                if let Some(rx) = &self.out_rx {
                    match rx.try_recv() {
                        Ok(chunk) => pending_out = Some((chunk, 0)),
                        Err(TryRecvError::Empty) => {}
                        Err(TryRecvError::Disconnected) => self.out_rx = None,
                    }
                }
            }
            if let Some((chunk, pos)) = &mut pending_out {
                match self.channel.write(&chunk[*pos..]) {
                    Ok(n) => {
                        *pos += n;
                        progress |= n > 0;
                        if *pos == chunk.len() {
                            pending_out = None;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => want.add(&self.session),
                    Err(_) => {
                        // The far side is gone for writing (closed or failed): our writer
                        // gets a broken pipe; what it sent before can still be read.
                        pending_out = None;
                        self.out_rx = None;
                        eof_sent = true;
                        progress = true;
                    }
                }
            }
            if self.out_rx.is_none() && pending_out.is_none() && !eof_sent {
                match self.channel.send_eof() {
                    Ok(()) => {
                        eof_sent = true;
                        progress = true;
                    }
                    Err(e) if is_eagain(&e) => want.add(&self.session),
                    // Already closed by the far side: nothing more to say anyway.
                    Err(_) => eof_sent = true,
                }
            }

            // The far command's standard error → the sink.
            if !stderr_done {
                match self.channel.stderr().read(&mut buf) {
                    // 0 also while the far side's EOF waits behind unread output.
                    Ok(0) => stderr_done = self.channel.eof(),
                    Ok(n) => {
                        (self.stderr)(&buf[..n]);
                        progress = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => want.add(&self.session),
                    Err(e) => return Err(e),
                }
            }

            // The channel → our reader.
            if pending_in.is_none() && !far_eof {
                match self.channel.read(&mut buf) {
                    Ok(0) if self.channel.eof() => {
                        far_eof = true;
                        progress = true;
                    }
                    // Not the end: libssh2 had nothing for us without saying so.
                    Ok(0) => want.read = true,
                    Ok(n) => {
                        pending_in = Some(buf[..n].to_vec());
                        progress = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => want.add(&self.session),
                    Err(e) => return Err(e),
                }
            }
            if let Some(chunk) = pending_in.take() {
                if let Some(tx) = &self.in_tx {
                    match tx.try_send(chunk) {
                        Ok(()) => progress = true,
                        Err(TrySendError::Full(chunk)) => pending_in = Some(chunk),
                        Err(TrySendError::Disconnected(_)) => {
                            self.in_tx = None;
                            progress = true;
                        }
                    }
                }
            }
            if far_eof && pending_in.is_none() && self.in_tx.is_some() {
                // Pass on what the far side said on its way out before our reader sees the
                // end (the far side's EOF means all of it has arrived).
                self.drain_stderr(&mut buf);
                self.in_tx = None;
            }
            // The far side closed the channel while we still have data for it: it will
            // never read it.
            if far_eof && (pending_out.is_some() || self.out_rx.is_some()) {
                match self.channel.wait_close() {
                    Ok(()) => {
                        pending_out = None;
                        self.out_rx = None;
                        eof_sent = true;
                        progress = true;
                    }
                    Err(e) if is_eagain(&e) => want.add(&self.session),
                    Err(_) => {}
                }
            }

            if eof_sent && (self.in_tx.is_none() || (far_eof && pending_in.is_none())) {
                if far_eof {
                    self.drain_stderr(&mut buf);
                }
                return Ok(());
            }
            if !progress {
                let socket = (want.read || want.write).then(|| self.socket.as_fd());
                if wait(socket, want.read, want.write, self.wake.as_fd(), POLL_LIMIT)? {
                    while matches!((&self.wake).read(&mut [0u8; 64]), Ok(n) if n > 0) {}
                }
            }
        }
    }

    fn drain_stderr(&mut self, buf: &mut [u8]) {
        while let Ok(n) = self.channel.stderr().read(buf) {
            if n == 0 {
                break;
            }
            (self.stderr)(&buf[..n]);
        }
    }
}

/// The socket directions the pump waits for.
#[derive(Default)]
struct Want {
    read: bool,
    write: bool,
}

impl Want {
    /// Adds what libssh2 says its last call would have blocked on.
    fn add(&mut self, session: &Session) {
        match session.block_directions() {
            ssh2::BlockDirections::Inbound => self.read = true,
            ssh2::BlockDirections::Outbound => self.write = true,
            ssh2::BlockDirections::Both => (self.read, self.write) = (true, true),
            ssh2::BlockDirections::None => {}
        }
    }
}

/// Sleeps until `socket` is ready in one of the wanted directions, `wake` is readable, or
/// `timeout` passes; returns whether `wake` is readable.
fn wait(
    socket: Option<BorrowedFd<'_>>,
    want_in: bool,
    want_out: bool,
    wake: BorrowedFd<'_>,
    timeout: Duration,
) -> io::Result<bool> {
    let mut events = 0;
    if want_in {
        events |= libc::POLLIN;
    }
    if want_out {
        events |= libc::POLLOUT;
    }
    let mut fds = [
        libc::pollfd {
            // A negative descriptor is ignored by poll(2).
            fd: socket.map_or(-1, |s| s.as_raw_fd()),
            events,
            revents: 0,
        },
        libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `fds` is a valid, writable array of two `pollfd` for the whole call, and both
    // descriptors are borrowed, so they stay open until it returns.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(fds[1].revents != 0)
}

// ---------------------------------------------------------------------------------------------
// Base64 (RFC 4648, with padding), for known_hosts lines and fingerprints.

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in s.bytes() {
        let v = B64.iter().position(|&x| x == b)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_gcm_ciphers_go_first_and_nothing_is_lost() {
        let supported = [
            "aes128-ctr",
            "aes256-ctr",
            "aes256-gcm@openssh.com",
            "aes128-gcm@openssh.com",
            "chacha20-poly1305@openssh.com",
        ];
        assert_eq!(
            aes_gcm_first(&supported).as_deref(),
            Some("aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,aes256-ctr,chacha20-poly1305@openssh.com")
        );
        assert_eq!(aes_gcm_first(&["aes128-ctr", "aes256-ctr"]), None);
    }

    #[test]
    fn host_key_decisions() {
        use Decision::*;
        use HostKeyPolicy::*;
        use Lookup::*;
        let cases = [
            (Strict, Match, Accept),
            (Strict, Unknown, RefuseUnknown),
            (Strict, Mismatch, RefuseChanged),
            (AcceptNew, Match, Accept),
            (AcceptNew, Unknown, Record),
            (AcceptNew, Mismatch, RefuseChanged),
            (Off, Match, Accept),
            (Off, Unknown, Accept),
            (Off, Mismatch, Accept),
        ];
        for (policy, found, want) in cases {
            assert_eq!(decide(found, policy), want, "{policy:?} {found:?}");
        }
        for (s, p) in [
            ("yes", Strict),
            ("ask", Strict),
            ("accept-new", AcceptNew),
            ("no", Off),
            ("off", Off),
            ("Yes", Strict),
        ] {
            assert_eq!(HostKeyPolicy::parse(s), Some(p), "{s}");
        }
        assert_eq!(HostKeyPolicy::parse("maybe"), None);
        // A host known only by another type of key has a new key, not a changed one.
        let ed = ["ssh-ed25519".to_string()];
        assert_eq!(of_type(Mismatch, "ssh-ed25519", &ed), Mismatch);
        assert_eq!(of_type(Mismatch, "ecdsa-sha2-nistp256", &ed), Unknown);
        assert_eq!(of_type(Match, "ssh-ed25519", &ed), Match);
        assert_eq!(of_type(Unknown, "ssh-ed25519", &[]), Unknown);
    }

    #[test]
    fn names_and_hints_as_openssh_writes_them() {
        assert_eq!(known_hosts_name("example.org", 22), "example.org");
        assert_eq!(known_hosts_name("127.0.0.1", 2222), "[127.0.0.1]:2222");
        assert_eq!(known_hosts_name("::1", 2222), "[::1]:2222");
        assert_eq!(display_addr("::1", 22), "[::1]:22");
        assert_eq!(display_addr("h", 2222), "h:2222");
        assert_eq!(
            keyscan_hint("127.0.0.1", 2222, Path::new("/root/.ssh/known_hosts")),
            "ssh-keyscan -p 2222 127.0.0.1 >> /root/.ssh/known_hosts"
        );
        assert_eq!(
            keyscan_hint("h", 22, Path::new("/a b/kh")),
            "ssh-keyscan h >> '/a b/kh'"
        );
        assert_eq!(
            known_hosts_line("[h]:2", "ssh-ed25519", b"key"),
            "[h]:2 ssh-ed25519 a2V5\n"
        );
    }

    #[test]
    fn base64_and_fingerprints() {
        for (raw, enc) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(raw), enc);
            assert_eq!(base64_decode(enc).unwrap(), raw);
        }
        assert_eq!(base64_decode("a$b"), None);
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base64_decode(&base64_encode(&all)).unwrap(), all);
        // SHA-256 of the empty string, as `ssh-keygen -l` would print such a digest.
        let digest = [
            0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f,
            0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b,
            0x78, 0x52, 0xb8, 0x55,
        ];
        assert_eq!(
            fingerprint(&digest),
            "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }

    #[test]
    fn known_key_types_come_first() {
        let supported = [
            "ecdsa-sha2-nistp256",
            "ssh-ed25519",
            "rsa-sha2-512",
            "rsa-sha2-256",
            "ssh-rsa",
        ];
        assert_eq!(host_key_preference(&supported, &[]), None);
        assert_eq!(
            host_key_preference(&supported, &["ssh-ed25519".into()]).unwrap(),
            "ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256,ssh-rsa"
        );
        assert_eq!(
            host_key_preference(&supported, &["ssh-rsa".into()]).unwrap(),
            "rsa-sha2-512,rsa-sha2-256,ssh-rsa,ecdsa-sha2-nistp256,ssh-ed25519"
        );
        assert_eq!(
            host_key_preference(&supported, &["sk-ssh-ed25519@openssh.com".into()]),
            None
        );
    }

    /// A fake key blob: libssh2's known_hosts code compares keys, it does not parse them.
    fn blob(tag: u8) -> Vec<u8> {
        let mut b = b"\0\0\0\x0bssh-ed25519\0\0\0\x20".to_vec();
        b.extend(std::iter::repeat_n(tag, 32));
        b
    }

    #[test]
    fn known_hosts_lookup_matches_openssh() {
        let session = Session::new().unwrap();
        let kh = |text: &str| KnownHostsFile {
            path: "kh".into(),
            lines: text.lines().map(String::from).collect(),
        };
        let line = |name: &str, tag| format!("{name} ssh-ed25519 {}", base64_encode(&blob(tag)));
        let file = kh(&[
            line("[127.0.0.1]:2222", 1),
            line("127.0.0.1", 2),
            "@cert-authority *.example.org ssh-ed25519 AAAA".into(),
            "garbage that libssh2 cannot read".into(),
            line("a.example.org,b.example.org", 3),
        ]
        .join("\n"));
        let check = |name: &str, tag| file.check(&session, name, &blob(tag)).unwrap();
        assert_eq!(check("[127.0.0.1]:2222", 1), Lookup::Match);
        assert_eq!(check("[127.0.0.1]:2222", 9), Lookup::Mismatch);
        // An entry for the bare host does not vouch for another port, as in OpenSSH.
        assert_eq!(check("[127.0.0.1]:2223", 2), Lookup::Unknown);
        assert_eq!(check("127.0.0.1", 2), Lookup::Match);
        assert_eq!(check("b.example.org", 3), Lookup::Match);
        assert_eq!(check("c.example.org", 3), Lookup::Unknown);
        assert_eq!(
            file.key_types_for(&session, "[127.0.0.1]:2222"),
            ["ssh-ed25519"]
        );
        assert!(file.key_types_for(&session, "other").is_empty());
    }

    #[test]
    fn ssh_command_options() {
        let mut c = Libssh2Connector::new();
        c.apply_ssh_command(
            "ssh -p 2222 -l bob -i '/k 1' -i/k2 -qT -o StrictHostKeyChecking=accept-new -o 'UserKnownHostsFile /kh' -oConnectTimeout=5 -o BatchMode=yes -o LogLevel=ERROR",
        )
        .unwrap();
        assert_eq!(c.port, 2222);
        assert_eq!(c.user.as_deref(), Some("bob"));
        assert_eq!(c.identities, [PathBuf::from("/k 1"), PathBuf::from("/k2")]);
        assert_eq!(c.host_key_policy, HostKeyPolicy::AcceptNew);
        assert_eq!(c.known_hosts, PathBuf::from("/kh"));
        assert_eq!(c.connect_timeout, Duration::from_secs(5));

        let mut c = Libssh2Connector::new();
        c.apply_ssh_command("/usr/bin/ssh -p2200 -o Port=2201 -o User=al -o IdentityFile=/x -o StrictHostKeyChecking=no")
            .unwrap();
        assert_eq!(
            (c.port, c.user.as_deref(), c.host_key_policy),
            (2201, Some("al"), HostKeyPolicy::Off)
        );
        assert_eq!(c.identities, [PathBuf::from("/x")]);

        let err = |s: &str| {
            Libssh2Connector::new()
                .apply_ssh_command(s)
                .unwrap_err()
                .to_string()
        };
        assert!(
            err("ssh -J jump").starts_with("ssh option -J: not supported by the libssh2 transport")
        );
        assert!(err("ssh -o ProxyCommand=nc")
            .starts_with("ssh option -o ProxyCommand=nc: not supported"));
        assert!(err("ssh -p").contains("needs a value"));
        assert!(err("ssh -p x").contains("is not a port number"));
        assert!(err("ssh -o StrictHostKeyChecking=maybe").contains("expects yes, accept-new or no"));
        assert!(err("rsh -p 1").contains("cannot run another program"));
        assert!(err("ssh host").contains("must not name the host"));
        assert!(err("ssh 'x").contains("unterminated"));
    }

    #[test]
    fn far_command_is_quoted() {
        let mut c = Libssh2Connector::new();
        c.remote_bin = "sudo '/opt/delta sync/deltasync'".into();
        assert_eq!(
            c.command(&["server".into(), "a b".into()]),
            "sudo '/opt/delta sync/deltasync' server 'a b'"
        );
    }

    #[test]
    fn messages() {
        let unknown = Libssh2Error::UnknownHostKey {
            addr: "127.0.0.1:2222".into(),
            known_hosts: "/root/.ssh/known_hosts".into(),
            offered: "ssh-ed25519 SHA256:abc".into(),
            keyscan: "ssh-keyscan -p 2222 127.0.0.1 >> /root/.ssh/known_hosts".into(),
            known_types: vec![],
        };
        assert_eq!(
            unknown.to_string(),
            "host key for 127.0.0.1:2222 is not in /root/.ssh/known_hosts (the server offers ssh-ed25519 SHA256:abc); \
             add it with `ssh-keyscan -p 2222 127.0.0.1 >> /root/.ssh/known_hosts` or pass --ssh-host-key-check accept-new"
        );
        let other_type = Libssh2Error::UnknownHostKey {
            addr: "127.0.0.1:2222".into(),
            known_hosts: "/root/.ssh/known_hosts".into(),
            offered: "ssh-ed25519 SHA256:abc".into(),
            keyscan: "ssh-keyscan -p 2222 127.0.0.1 >> /root/.ssh/known_hosts".into(),
            known_types: vec!["ssh-rsa".into()],
        };
        assert!(other_type.to_string().contains(
            "(the server offers ssh-ed25519 SHA256:abc; the file lists it only with keys of type ssh-rsa, which the server did not offer)"
        ));
        let changed = Libssh2Error::ChangedHostKey {
            addr: "h:22".into(),
            known_hosts: "/kh".into(),
            offered: "ssh-ed25519 SHA256:abc".into(),
            remove: "ssh-keygen -R h -f /kh".into(),
        };
        let text = changed.to_string();
        assert!(text.starts_with("HOST KEY CHANGED: the host key for h:22 does not match the one in /kh; refusing to connect"), "{text}");
        assert!(
            text.ends_with("remove the old one with `ssh-keygen -R h -f /kh`"),
            "{text}"
        );
        let auth = Libssh2Error::Auth {
            user: "root".into(),
            addr: "h:22".into(),
            tried: vec!["/k (refused by the server)".into(), "/j (not found)".into()],
        };
        assert_eq!(
            auth.to_string(),
            "authentication as root on h:22 failed; tried: /k (refused by the server), /j (not found)"
        );
        assert_eq!(
            io::Error::from(auth).kind(),
            io::ErrorKind::PermissionDenied
        );
    }
}
