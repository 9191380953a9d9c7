//! Reading files the engine works on: the one place that decides between positioned reads and
//! a memory map.
//!
//! A *live* file (the sender's source, which the user's service may be writing) is never
//! mapped: a truncation under a mapping raises SIGBUS and kills the process. It is opened
//! read-only, without updating its access time where the OS allows, never locked, and read
//! with large positioned reads. An *owned* file (the destination's basis, our temporaries) may
//! be mapped, which saves a copy per byte when patching.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Who else may be writing the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Someone else may write it while we read: positioned reads only.
    Live,
    /// Only we write it: it may be memory-mapped.
    Owned,
}

/// An open file and, for owned files, its mapping.
#[derive(Debug)]
pub struct InputFile {
    file: File,
    len: u64,
    map: Option<memmap2::Mmap>,
}

impl InputFile {
    /// Opens `path` read-only for the given access.
    pub fn open(path: &Path, access: Access) -> io::Result<Self> {
        Self::from_file(open_noatime(path)?, access)
    }

    /// Wraps an already open file.
    pub fn from_file(file: File, access: Access) -> io::Result<Self> {
        let len = file.metadata()?.len();
        let map = match access {
            Access::Owned if len > 0 => map_owned(&file).ok(),
            _ => None,
        };
        Ok(Self { file, len, map })
    }

    /// Length when opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file was empty when opened.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole contents, when the file is mapped.
    pub fn as_slice(&self) -> Option<&[u8]> {
        self.map.as_deref()
    }

    /// The underlying file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Reads at `offset` until `buf` is full or the file ends; returns the bytes read.
    pub fn read_full_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if let Some(map) = &self.map {
            let start = (offset.min(map.len() as u64)) as usize;
            let n = buf.len().min(map.len() - start);
            buf[..n].copy_from_slice(&map[start..start + n]);
            return Ok(n);
        }
        read_full_at(&self.file, buf, offset)
    }
}

/// Positioned read that retries short reads until `buf` is full or end of file.
pub fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Opens read-only with `O_NOATIME` where permitted (it needs ownership or CAP_FOWNER), falling
/// back to a plain read-only open.
pub fn open_noatime(path: &Path) -> io::Result<File> {
    #[cfg(target_os = "linux")]
    {
        match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOATIME)
            .open(path)
        {
            Ok(f) => return Ok(f),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            Err(e) => return Err(e),
        }
    }
    std::fs::OpenOptions::new().read(true).open(path)
}

/// Maps a file that only this process writes.
fn map_owned(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: callers reach this only through `Access::Owned`, which promises that no other
    // process truncates or rewrites the file while the mapping lives (it is the destination's
    // basis or our own temporary). Under that contract the mapped bytes stay valid and
    // unchanging for the mapping's lifetime.
    unsafe { memmap2::Mmap::map(file) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn live_and_owned_read_the_same() {
        let mut t = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        t.write_all(&data).unwrap();
        let live = InputFile::open(t.path(), Access::Live).unwrap();
        let owned = InputFile::open(t.path(), Access::Owned).unwrap();
        assert!(live.as_slice().is_none());
        assert_eq!(owned.as_slice().unwrap(), &data[..]);
        for (off, n) in [(0u64, 10usize), (99_990, 100), (200_000, 5)] {
            let (mut a, mut b) = (vec![0; n], vec![0; n]);
            let ra = live.read_full_at(&mut a, off).unwrap();
            let rb = owned.read_full_at(&mut b, off).unwrap();
            assert_eq!((ra, &a[..ra]), (rb, &b[..rb]));
        }
    }
}
