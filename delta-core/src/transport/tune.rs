//! Tuning the user's own `ssh` for passes: reusing one login for the passes that follow
//! (OpenSSH's connection multiplexing), and AES-GCM first among the ciphers where the CPU has
//! AES instructions. Both only where the user's command line and configuration leave the
//! choice open, as `ssh -G` reports it.
//!
//! **Reuse.** A migration runs the same command several times: pre-stage passes while the
//! service is live, then the final one in the downtime. Every pass over a fresh connection
//! pays a whole login (key exchange, host key, user authentication: a third of a second on a
//! small machine, more over a long link), often more than a no-change pass itself. With reuse,
//! the first pass leaves a master connection in the background for [`SshTuning::reuse`], and
//! the passes within that time open a channel on it instead of logging in again. Added only
//! when neither `ControlMaster` nor `ControlPath` is set, in the configuration (`ssh -G`) or
//! on the command line: a user who configured multiplexing keeps theirs, one who switched it
//! off keeps it off. The sockets live in a directory only we can enter:
//! `$XDG_RUNTIME_DIR/deltasync`, else `/tmp/deltasync-UID` (created with mode 0700, refused
//! if it is a link, another user's, or open to others), one per ssh command line and
//! destination, named by their hash. A pass that finds its socket there uses it without
//! asking `ssh -G` again (the configuration was read when the master started; a change to
//! it applies from the next master on).
//!
//! **Cipher order.** OpenSSH puts chacha20-poly1305 first, the right choice without AES
//! hardware; with it, AES-GCM (as strong, and constant-time there) moves data about twice as
//! fast (measured on loopback: 1 GB in 0.9 s against 1.85 s), and bulk copies over ssh are
//! bound by the cipher. So where the CPU has AES instructions and `ssh -G` shows OpenSSH's
//! default cipher list unchanged, the same list goes to ssh with the two AES-GCM ciphers
//! first. The server still picks from its own list; a configured list is left alone.
//!
//! The options are added only when a word of the remote shell command is `ssh` (after
//! wrappers such as `sshpass -p … ssh`). Anything unexpected means the command runs as given,
//! never a failed connection.

use std::ffi::OsString;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// What to tune in the user's ssh command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTuning {
    /// How long a master connection waits for the next pass after the last one ended
    /// (zero: no reuse).
    pub reuse: Duration,
    /// Put AES-GCM first where the CPU has AES instructions.
    pub aes_first: bool,
    /// Where the control sockets go (default: see the module doc).
    pub dir: Option<PathBuf>,
}

/// What [`SshTuning::options`] adds to a remote shell command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tuned {
    /// Where in the command the options go.
    pub at: usize,
    /// The options.
    pub opts: Vec<String>,
    /// The master's control socket, when login reuse was added.
    pub master: Option<String>,
}

/// OpenSSH's default client cipher list (unchanged since 6.9): only this exact list is
/// reordered.
const OPENSSH_CIPHERS: &str = "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com";

impl SshTuning {
    /// Reuse for `reuse` after each pass, AES-GCM first, sockets in the default directory.
    pub fn new(reuse: Duration) -> Self {
        Self {
            reuse,
            aes_first: true,
            dir: None,
        }
    }

    /// The ssh options to add, and the index in `rsh` to insert them at (right after the
    /// `ssh` word: ssh keeps the first value it sees of an option, and these are only added
    /// when nothing set them). `None`: the command runs as given.
    pub(crate) fn options(&self, rsh: &[String], destination: &str) -> Option<Tuned> {
        let at = ssh_word(rsh)?;
        let aes = self.aes_first && cpu_has_aes();
        let reuse = !self.reuse.is_zero() && !sets_multiplexing(&rsh[at + 1..]);
        if !reuse && !aes {
            return None;
        }
        let socket = reuse
            .then(|| self.socket_path(&rsh[at..], destination))
            .flatten();
        // A master of ours is up: the pass opens a channel on it. `ssh -G` (a process start,
        // tens of milliseconds of every pass) is not asked again, and the cipher order does
        // not matter on a connection that already exists.
        if let Some(path) = socket.as_deref().filter(|p| is_socket(Path::new(p))) {
            return Some(Tuned {
                at: at + 1,
                opts: self.reuse_options(path),
                master: socket.clone(),
            });
        }
        let g = effective_config(&rsh[at..], destination)?;
        let master = socket.filter(|_| !config_multiplexes(&g));
        let mut opts = master
            .as_deref()
            .map_or_else(Vec::new, |path| self.reuse_options(path));
        if aes {
            if let Some(list) = aes_first(&g) {
                opts.extend(["-o".to_string(), format!("Ciphers={list}")]);
            }
        }
        (!opts.is_empty()).then_some(Tuned {
            at: at + 1,
            opts,
            master,
        })
    }

    /// The options that start a master at `path`, or use the one there.
    fn reuse_options(&self, path: &str) -> Vec<String> {
        vec![
            "-o".to_string(),
            "ControlMaster=auto".into(),
            "-o".into(),
            format!("ControlPath={path}"),
            "-o".into(),
            format!("ControlPersist={}s", self.reuse.as_secs().max(1)),
        ]
    }

    /// `DIR/HASH` for ssh's `ControlPath`, if the directory is private and the path short.
    /// `HASH` names the whole ssh command line and destination (`ssh_and_args`: the `ssh`
    /// word and what follows it), so a pass finds its master by the path alone, and
    /// commands that differ in anything (another key, port or option) never share one.
    fn socket_path(&self, ssh_and_args: &[String], destination: &str) -> Option<String> {
        let dir = match &self.dir {
            Some(d) => private_dir(d)?,
            None => private_dir(&default_dir())?,
        };
        // ssh expands `%` and `~` in the path: only ours may be there.
        if dir.to_str()?.contains(['%', '~']) {
            return None;
        }
        let mut key = xxhash_rust::xxh3::Xxh3::new();
        for w in ssh_and_args.iter().map(String::as_str).chain([destination]) {
            key.update(&(w.len() as u64).to_le_bytes());
            key.update(w.as_bytes());
        }
        let path = dir
            .join(format!("{:032x}", key.digest128()))
            .to_str()?
            .to_string();
        // Unix socket paths are short (108 bytes), and ssh adds a 17-byte suffix while it
        // sets a master up.
        (path.len() + 17 < 108).then_some(path)
    }
}

/// Whether `path` is a socket (a master's, alive or stale: ssh removes a stale one itself
/// and starts a new master).
pub(crate) fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// Whether the user's ssh options (the words after the `ssh` word) set multiplexing either
/// way: `-M`, `-S PATH`, or a `ControlMaster`/`ControlPath` option. `ssh -G` cannot tell an
/// explicit `ControlMaster=no` from the default, so the command line is read too.
fn sets_multiplexing(args: &[String]) -> bool {
    args.iter().any(|w| {
        let lower = w.to_ascii_lowercase();
        w == "-M"
            || w.starts_with("-S")
            || lower.contains("controlmaster")
            || lower.contains("controlpath")
    })
}

/// Whether this CPU encrypts AES-GCM in hardware.
pub(crate) fn cpu_has_aes() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// From `ssh -G` output: OpenSSH's default cipher list with AES-GCM first, if the list is
/// that default.
fn aes_first(g: &str) -> Option<String> {
    let list = g.lines().find_map(|l| l.strip_prefix("ciphers "))?.trim();
    (list == OPENSSH_CIPHERS).then(|| {
        "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr".to_string()
    })
}

/// The index of the word of a remote shell command that runs ssh: `ssh`, or a path ending
/// in `/ssh` (wrappers such as `sshpass -p … ssh` come before it). Options for ssh go right
/// after it.
pub fn ssh_word(rsh: &[String]) -> Option<usize> {
    rsh.iter().position(|w| w == "ssh" || w.ends_with("/ssh"))
}

/// What `ssh -G` says the command `ssh_and_args` (the `ssh` word and what follows it) would
/// use, options and the user's configuration applied; `None` if it cannot tell (an old ssh,
/// an option it refuses).
fn effective_config(ssh_and_args: &[String], destination: &str) -> Option<String> {
    let out = Command::new(&ssh_and_args[0])
        .args(&ssh_and_args[1..])
        .arg("-G")
        .arg(destination)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Reads `ssh -G` output: multiplexing is configured if `controlmaster` is anything but
/// `false` or a `controlpath` is set.
fn config_multiplexes(g: &str) -> bool {
    let mut master_off = false;
    let mut path_set = false;
    for line in g.lines() {
        let mut kv = line.splitn(2, ' ');
        let (Some(k), Some(v)) = (kv.next(), kv.next()) else {
            continue;
        };
        match k.to_ascii_lowercase().as_str() {
            "controlmaster" => master_off = v.trim() == "false",
            "controlpath" => path_set = v.trim() != "none",
            _ => {}
        }
    }
    !master_off || path_set
}

/// `$XDG_RUNTIME_DIR/deltasync` when that is set and absolute, else `/tmp/deltasync-UID`.
pub(crate) fn default_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(d) if d.is_absolute() => d.join("deltasync"),
        _ => {
            // SAFETY: geteuid has no preconditions and cannot fail.
            let uid = unsafe { libc::geteuid() };
            let mut p = OsString::from("/tmp/deltasync-");
            p.push(uid.to_string());
            PathBuf::from(p)
        }
    }
}

/// `dir`, created with mode 0700 if missing, if it is a real directory of ours that nobody
/// else can enter.
pub(crate) fn private_dir(dir: &Path) -> Option<PathBuf> {
    let _ = std::fs::DirBuilder::new().mode(0o700).create(dir);
    let m = std::fs::symlink_metadata(dir).ok()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    (m.file_type().is_dir() && m.uid() == uid && m.mode() & 0o077 == 0).then(|| dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn the_ssh_word_is_found_after_wrappers() {
        assert_eq!(ssh_word(&words("ssh -p 22")), Some(0));
        assert_eq!(
            ssh_word(&words("sshpass -p pw /usr/bin/ssh -p 22")),
            Some(3)
        );
        assert_eq!(ssh_word(&words("ssh_count ssh -p 22")), Some(1));
        assert_eq!(ssh_word(&words("rsh host")), None);
        assert_eq!(ssh_word(&words("/opt/fake-ssh -p 1")), None);
    }

    #[test]
    fn ssh_g_output_is_read_for_multiplexing() {
        assert!(!config_multiplexes(
            "user root\ncontrolmaster false\ncontrolpersist no\n"
        ));
        assert!(config_multiplexes("controlmaster auto\n"));
        assert!(config_multiplexes(
            "controlmaster false\ncontrolpath /home/u/.ssh/cm-%C\n"
        ));
        assert!(!config_multiplexes(
            "controlmaster false\ncontrolpath none\n"
        ));
        // No controlmaster line at all: an ssh we do not understand is left alone.
        assert!(config_multiplexes("user root\n"));
    }

    #[test]
    fn the_socket_directory_must_be_private() {
        let base = std::env::temp_dir().join(format!("ds-reuse-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let fresh = base.join("fresh");
        assert_eq!(private_dir(&fresh), Some(fresh.clone()));
        assert_eq!(
            std::fs::metadata(&fresh).unwrap().mode() & 0o777,
            0o700,
            "created private"
        );
        let open = base.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        assert_eq!(private_dir(&open), None, "a directory others can enter");
        let link = base.join("link");
        std::os::unix::fs::symlink(&fresh, &link).unwrap();
        assert_eq!(
            private_dir(&link),
            None,
            "a symlink, even to a good directory"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn no_options_without_an_ssh_word_or_with_everything_off() {
        let r = SshTuning::new(Duration::from_secs(60));
        assert_eq!(r.options(&words("rsh -l u"), "h"), None);
        let off = SshTuning {
            aes_first: false,
            ..SshTuning::new(Duration::ZERO)
        };
        assert_eq!(off.options(&words("ssh -p 22"), "h"), None);
    }

    #[test]
    fn a_live_master_is_used_without_asking_ssh() {
        let dir = std::env::temp_dir().join(format!("ds-live-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let r = SshTuning {
            aes_first: false,
            dir: Some(dir.clone()),
            ..SshTuning::new(Duration::from_secs(60))
        };
        // This "ssh" cannot run: without a master, `ssh -G` fails and nothing is added.
        let rsh = words("/nonexistent/ssh -p 2222");
        assert_eq!(r.options(&rsh, "u@h"), None);
        let path = r.socket_path(&rsh, "u@h").unwrap();
        assert!(path.starts_with(dir.to_str().unwrap()));
        let _master = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let Tuned { at, opts, master } = r.options(&rsh, "u@h").expect("the live master is used");
        assert_eq!(at, 1);
        assert_eq!(master.as_deref(), Some(&*path));
        assert!(opts.contains(&"ControlMaster=auto".to_string()));
        assert!(opts.contains(&format!("ControlPath={path}")));
        assert!(opts.contains(&"ControlPersist=60s".to_string()));
        // Another port, key or destination is another master.
        assert_ne!(
            r.socket_path(&words("/nonexistent/ssh -p 2223"), "u@h"),
            Some(path.clone())
        );
        assert_ne!(r.socket_path(&rsh, "v@h"), Some(path.clone()));
        assert_eq!(r.options(&words("/nonexistent/ssh -p 2223"), "u@h"), None);
        // A command line that sets multiplexing itself, either way, is left alone.
        for own in [
            "/nonexistent/ssh -p 2222 -o ControlMaster=no",
            "/nonexistent/ssh -p 2222 -S /tmp/cm",
            "/nonexistent/ssh -p 2222 -oControlPath=none",
        ] {
            assert!(sets_multiplexing(&words(own)[1..]), "{own}");
            assert_eq!(r.options(&words(own), "u@h"), None, "{own}");
        }
        assert!(!sets_multiplexing(&words(
            "-p 2222 -i key -o StrictHostKeyChecking=no"
        )));
        drop(_master);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_the_default_cipher_list_is_reordered() {
        let g = format!("user root\nciphers {OPENSSH_CIPHERS}\nmacs x\n");
        let list = aes_first(&g).unwrap();
        assert!(list.starts_with("aes128-gcm@openssh.com,aes256-gcm@openssh.com,"));
        let mut a: Vec<_> = list.split(',').collect();
        let mut b: Vec<_> = OPENSSH_CIPHERS.split(',').collect();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "the same ciphers, reordered");
        assert_eq!(
            aes_first("ciphers aes256-ctr\n"),
            None,
            "a configured list stays"
        );
        assert_eq!(aes_first("user root\n"), None);
    }
}
