//! Pipe capacity: the byte streams to and from `ssh` (and a server's standard input and
//! output) are pipes, 64 KiB by default on Linux. Bulk data then crosses in 64 KiB steps, each
//! a sleep and a wake-up of the writer and of `ssh`; a 1 MiB pipe lets a whole frame cross
//! at once. The one `unsafe` call of this module is behind [`widen`].

use std::os::fd::{AsRawFd, BorrowedFd};

/// The capacity asked for: Linux's default `/proc/sys/fs/pipe-max-size`, the most an
/// unprivileged process may set.
pub const CAPACITY: usize = 1 << 20;

/// Asks for `fd`'s pipe to hold [`CAPACITY`] bytes; returns the capacity it has afterwards,
/// or `None` if `fd` is not a pipe or the call is refused (a smaller system limit, another
/// kernel). Never fails: a pipe keeps working at its old size.
pub fn widen(fd: BorrowedFd<'_>) -> Option<usize> {
    // SAFETY: F_SETPIPE_SZ takes an integer and touches no memory of ours; `fd` is open for
    // the call (a non-pipe descriptor is refused with EBADF/EINVAL).
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, CAPACITY as libc::c_int) };
    (r > 0).then_some(r as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_pipe_is_widened_and_a_file_is_left_alone() {
        let (r, w) = std::io::pipe().unwrap();
        assert_eq!(widen(w.as_fd()), Some(CAPACITY));
        assert_eq!(widen(r.as_fd()), Some(CAPACITY), "both ends share the pipe");
        let f = tempfile::tempfile().unwrap();
        assert_eq!(widen(f.as_fd()), None);
    }
}
