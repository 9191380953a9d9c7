//! A counting relay for a remote shell: `ssh_count ssh -p PORT host cmd...` runs the rest of
//! its command line with piped standard input and output, copies both directions unchanged
//! (stderr passes straight through), and exits with the child's code.
//!
//! Put it first in a tool's `-e` (`rsync -e "ssh_count ssh -p 2222"`, `deltasync -e ...`) to
//! measure what crosses the ssh pipe: the tool's own bytes, before ssh encrypts them (or
//! compresses them, if ssh's `Compression` is on). When it ends it appends one line to the
//! file named by `SSH_COUNT_FILE` (if set):
//!
//! ```text
//! SENT RECEIVED SENT_CHUNKS RECEIVED_CHUNKS TURNS
//! ```
//!
//! SENT is the bytes from the tool to ssh, RECEIVED from ssh to the tool; the chunks are the
//! reads that delivered them, and TURNS counts the changes of direction between consecutive
//! chunks, a rough measure of how conversational the protocol is (a strict request/reply
//! exchange turns twice per round trip; a stream that is sent at once turns rarely). Lines are
//! appended in one write, so a tool that opens several connections adds one line each.
//!
//! Used by `tree_bench --ssh`.

#![allow(clippy::print_stderr)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    sent_chunks: AtomicU64,
    received_chunks: AtomicU64,
    turns: AtomicU64,
    /// The direction of the last chunk: 0 none yet, 1 sent, 2 received.
    last: AtomicU8,
}

impl Counters {
    fn chunk(&self, dir: u8, n: usize) {
        let (bytes, chunks) = if dir == 1 {
            (&self.sent, &self.sent_chunks)
        } else {
            (&self.received, &self.received_chunks)
        };
        bytes.fetch_add(n as u64, Ordering::Relaxed);
        chunks.fetch_add(1, Ordering::Relaxed);
        let before = self.last.swap(dir, Ordering::Relaxed);
        if before != 0 && before != dir {
            self.turns.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A pause before retrying a read or write that would block. The tool may hand us
/// non-blocking descriptors (rsync does on a pull); polling them would need `libc`, and a
/// short sleep only happens when the other end is the slower one anyway.
const RETRY: Duration = Duration::from_micros(50);

/// One read, retried while it would block or is interrupted.
fn read_some(from: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match from.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(RETRY),
            r => return r,
        }
    }
}

/// Writes all of `data`, retrying while the descriptor would block.
fn write_all(to: &mut File, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match to.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(RETRY),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Copies `from` into `to` unbuffered (every chunk is written out as soon as it is read, so
/// the relay adds no latency beyond a thread hop), counting each chunk in direction `dir`.
/// Returns when `from` ends or `to` is closed.
fn pump(mut from: File, mut to: File, counters: &Counters, dir: u8) {
    let mut buf = vec![0u8; delta_core::transport::pipe::CAPACITY];
    loop {
        let n = match read_some(&mut from, &mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                eprintln!("ssh_count: read ({dir}): {e}");
                return;
            }
        };
        counters.chunk(dir, n);
        if let Err(e) = write_all(&mut to, &buf[..n]) {
            eprintln!("ssh_count: write ({dir}): {e}");
            return;
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((program, rest)) = args.split_first() else {
        eprintln!("usage: ssh_count COMMAND [ARGS...]  (appends byte counts to $SSH_COUNT_FILE)");
        std::process::exit(2);
    };
    let mut child = match Command::new(program)
        .args(rest)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ssh_count: cannot run {program}: {e}");
            std::process::exit(255);
        }
    };
    // Our own standard input and output as plain files: `std::io::stdout()` is line-buffered
    // and would hold back binary data until a newline.
    let stdin = File::from(std::io::stdin().as_fd().try_clone_to_owned().unwrap());
    let stdout = File::from(std::io::stdout().as_fd().try_clone_to_owned().unwrap());
    let counters = Arc::new(Counters::default());
    let child_in = File::from(OwnedFd::from(child.stdin.take().unwrap()));
    let child_out = File::from(OwnedFd::from(child.stdout.take().unwrap()));
    // The relay's own pipes to ssh as wide as a tool's may be, so that the relay does not
    // cut a tool's writes into 64 KiB steps it would not take without it (the pipes between
    // the tool and the relay are the tool's: deltasync widens them, rsync does not).
    delta_core::transport::pipe::widen(child_in.as_fd());
    delta_core::transport::pipe::widen(child_out.as_fd());
    {
        let c = Arc::clone(&counters);
        // Not joined: it may sit in a read of our stdin after the child has gone, until the
        // tool closes its end. Dropping `child_in` when our stdin ends tells ssh to send EOF.
        std::thread::spawn(move || pump(stdin, child_in, &c, 1));
    }
    let back = {
        let c = Arc::clone(&counters);
        std::thread::spawn(move || pump(child_out, stdout, &c, 2))
    };
    let status = child.wait().expect("wait for the remote shell");
    let _ = back.join();
    if let Ok(path) = std::env::var("SSH_COUNT_FILE") {
        let line = format!(
            "{} {} {} {} {}\n",
            counters.sent.load(Ordering::Relaxed),
            counters.received.load(Ordering::Relaxed),
            counters.sent_chunks.load(Ordering::Relaxed),
            counters.received_chunks.load(Ordering::Relaxed),
            counters.turns.load(Ordering::Relaxed),
        );
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!("ssh_count: cannot append to {path}: {e}");
        }
    }
    let code = status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        128 + status.signal().unwrap_or(0)
    });
    std::process::exit(code);
}
