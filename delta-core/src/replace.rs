//! Atomic replacement: new content is written to a temporary file beside its target and
//! renamed into place only when complete, so an interruption leaves the old file or the new
//! one, never a mix. This is the only module allowed to rename files into place.
//!
//! Temporaries are named `.<name>.dstmp.<8 hex digits>` in the target's directory (same file
//! system, so the rename is atomic), created with `O_EXCL` and mode 0600, and removed when
//! dropped uncommitted. [`is_temp_name`] recognises strays left by a killed process so a later
//! pass can clean them up.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

const MARK: &[u8] = b".dstmp.";

/// A temporary file that becomes `target` on [`TempFile::commit`].
#[derive(Debug)]
pub struct TempFile {
    file: Option<File>,
    path: PathBuf,
    target: PathBuf,
}

impl TempFile {
    /// Creates a fresh temporary in `target`'s directory.
    pub fn beside(target: &Path) -> io::Result<Self> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = target.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} has no file name", target.display()),
            )
        })?;
        for _ in 0..16 {
            let tmp = temp_name(name.as_bytes());
            let path = dir.join(OsString::from_vec(tmp));
            match OpenOptions::new()
                .write(true)
                .read(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(Self {
                        file: Some(file),
                        path,
                        target: target.to_path_buf(),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free temporary name",
        ))
    }

    /// The open temporary.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("file is present until commit")
    }

    /// Where the temporary is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes (with `fsync` when `durable`) and renames the temporary onto the target.
    pub fn commit(mut self, durable: bool) -> io::Result<()> {
        let file = self.file.take().expect("commit once");
        if durable {
            file.sync_all()?;
        }
        drop(file);
        #[allow(clippy::disallowed_methods)] // the one sanctioned rename
        std::fs::rename(&self.path, &self.target)?;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The temporary's name for a target called `name`: `.<name>.dstmp.<8 hex digits>`, the name
/// cut to 200 bytes so the result fits NAME_MAX. The suffix is a per-process random base plus
/// a counter (no system call per file); creation with `O_EXCL` settles any collision.
pub(crate) fn temp_name(name: &[u8]) -> Vec<u8> {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;
    static BASE: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = *BASE.get_or_init(|| crate::signature::random_seed() as u32);
    // An odd multiplier walks all 2^32 suffixes before repeating.
    let suffix = base.wrapping_add(
        NEXT.fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9),
    );
    let name = &name[..name.len().min(200)];
    let mut tmp = Vec::with_capacity(name.len() + 16);
    tmp.push(b'.');
    tmp.extend_from_slice(name);
    tmp.extend_from_slice(MARK);
    tmp.extend_from_slice(format!("{suffix:08x}").as_bytes());
    tmp
}

/// Whether `name` is one of our temporaries (a stray if no pass is running).
pub fn is_temp_name(name: &[u8]) -> bool {
    name.len() > MARK.len() + 9
        && name[0] == b'.'
        && name[name.len() - 8..].iter().all(u8::is_ascii_hexdigit)
        && &name[name.len() - 8 - MARK.len()..name.len() - 8] == MARK
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn commit_replaces_and_drop_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f");
        std::fs::write(&target, b"old").unwrap();
        {
            let mut t = TempFile::beside(&target).unwrap();
            t.file().write_all(b"half").unwrap();
            assert!(is_temp_name(t.path().file_name().unwrap().as_bytes()));
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temporary removed on drop"
        );
        let mut t = TempFile::beside(&target).unwrap();
        t.file().write_all(b"new").unwrap();
        t.commit(true).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn recognises_only_our_names() {
        assert!(is_temp_name(b".a.dat.dstmp.0badf00d"));
        assert!(!is_temp_name(b"a.dat.dstmp.0badf00d"));
        assert!(!is_temp_name(b".a.dat.dstmp.0badf00"));
        assert!(!is_temp_name(b".a.dat.dstmp.0badf00x"));
        assert!(!is_temp_name(b".dstmp."));
    }
}
