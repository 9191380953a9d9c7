//! A malicious peer against both ends of a session, after the classes of rsync's 2025–2026
//! CVEs: out-of-order and duplicate file lists, forged hashes, replies for requests never
//! made, oversized frames, a peer that stops mid-frame, path traversal and symlinks pointing
//! out of the served tree. Each must end in an error, with nothing written outside the
//! destination and no corrupt file inside it.

use std::io::{Read, Write};
use std::path::Path;

use super::conn::accept;
use super::*;
use crate::protocol::{encode_frame, DataStatus, Hello, Message, Request};
use crate::scan::{Entry, EntryKind, EntryParts, Timestamp};
use crate::sync::{Mode, SyncBuilder, SyncOptions};
use crate::transport::Duplex;
use options::FilterSpec;

fn entry(path: &str, kind: EntryKind, size: u64) -> Entry {
    Entry::from_parts(EntryParts {
        path: path.as_bytes().into(),
        kind: Some(kind),
        size,
        mode: if kind == EntryKind::Dir { 0o755 } else { 0o644 },
        mtime: Timestamp {
            sec: 1_600_000_000,
            nsec: 0,
        },
        ..Default::default()
    })
}

/// Runs a pull into `dst` against a fake sender that plays `script` after the handshake.
fn pull_from(
    dst: &Path,
    script: impl FnOnce(&Conn, &mut Input) + Send + 'static,
) -> Result<crate::exec::Report, String> {
    pull_with(dst, |_| {}, script)
}

/// [`pull_from`], with the pass's options changed by `configure` first.
fn pull_with(
    dst: &Path,
    configure: impl FnOnce(&mut SyncOptions),
    script: impl FnOnce(&Conn, &mut Input) + Send + 'static,
) -> Result<crate::exec::Report, String> {
    let (client, server) = Duplex::pair(64);
    let fake = std::thread::spawn(move || {
        let (conn, mut input, _job) = accept(server).unwrap();
        script(&conn, &mut input);
        // Then hang up.
    });
    let source = RemoteSource::connect(
        client,
        b"/src",
        &SyncOptions::new(Mode::Sync),
        &FilterSpec::default(),
        "fake".into(),
        &SessionOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    let job = SyncBuilder::new(Mode::Sync, "", dst)
        .configure(|o| {
            o.force_delete = true;
            o.transfer.retry_wait = std::time::Duration::from_millis(10);
            configure(o);
        })
        .build()
        .unwrap();
    let r = job.run_from(&source).map_err(|e| e.to_string());
    drop(source);
    fake.join().unwrap();
    r
}

/// The ids of the next request or batch of requests; `None` at anything else.
fn next_requests(input: &mut Input) -> Option<Vec<u32>> {
    match input.next_message() {
        Ok(Some(Message::Request(r))) => Some(vec![r.id]),
        Ok(Some(Message::Requests(rs))) => Some(rs.iter().map(|r| r.id).collect()),
        _ => None,
    }
}

fn listing(conn: &Conn, entries: Vec<Entry>) {
    let _ = conn.send(&Message::Entries(entries));
    let _ = conn.send(&Message::ListEnd);
}

fn outside_untouched(outside: &Path) {
    let names: Vec<_> = std::fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        ["canary"],
        "nothing may appear outside the destination"
    );
    assert_eq!(std::fs::read(outside.join("canary")).unwrap(), b"canary");
}

/// The destination holds only its old file: nothing new, no temporary left behind.
fn only_kept(dst: &Path) {
    let names: Vec<_> = std::fs::read_dir(dst)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["kept"], "no temporary left behind");
}

fn scratch() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let dst = t.path().join("dst");
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("canary"), b"canary").unwrap();
    std::fs::write(dst.join("kept"), b"old content").unwrap();
    (t, dst, outside)
}

/// `len` bytes that look random (so they do not compress), the same for a given length.
fn patterned(len: u32) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// A hand-driven receiver's end of a session with our sender serving `src` as `filter` says:
/// the connection, its input, and the server's thread.
fn raw_session(
    src: &Path,
    filter: &FilterSpec,
) -> (
    std::sync::Arc<Conn>,
    Input,
    std::thread::JoinHandle<Result<(), SessionError>>,
) {
    let (client, server) = Duplex::pair(64);
    let served = std::thread::spawn(move || serve(server));
    let job = super::job(
        crate::protocol::Role::Sender,
        1,
        &SyncOptions::new(Mode::Copy),
        filter,
        &SessionOptions::default(),
        src.as_os_str().as_encoded_bytes(),
    );
    let (conn, input) = connect(client, &job).unwrap();
    (conn, input, served)
}

#[test]
fn out_of_order_and_duplicate_file_lists_are_refused() {
    for bad in [
        vec![
            entry("", EntryKind::Dir, 0),
            entry("b", EntryKind::File, 1),
            entry("a", EntryKind::File, 1),
        ],
        vec![
            entry("", EntryKind::Dir, 0),
            entry("a", EntryKind::File, 1),
            entry("a", EntryKind::File, 1),
        ],
        // A child listed under a file: the symlink-traversal shape.
        vec![
            entry("", EntryKind::Dir, 0),
            entry("f", EntryKind::File, 1),
            entry("f/x", EntryKind::File, 1),
        ],
    ] {
        let (_t, dst, outside) = scratch();
        let r = pull_from(&dst, move |conn, _| listing(conn, bad));
        let report = r.expect("the pass reports the broken list as a problem");
        assert_ne!(report.outcome.exit_code(), 0, "{report:?}");
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("file list") || p.contains("listing was cut short")),
            "{:?}",
            report.problems
        );
        assert_eq!(
            report.stats.deleted, 0,
            "an unreadable source never deletes"
        );
        assert_eq!(std::fs::read(dst.join("kept")).unwrap(), b"old content");
        outside_untouched(&outside);
    }
}

#[test]
fn a_forged_file_hash_leaves_no_file() {
    let (_t, dst, outside) = scratch();
    let r = pull_from(&dst, |conn, input| {
        listing(
            conn,
            vec![
                entry("", EntryKind::Dir, 0),
                entry("new", EntryKind::File, 5),
            ],
        );
        // Answer the request with data that does not match the hash we claim.
        let ids = next_requests(input).expect("a request for the new file");
        for id in ids {
            let _ = conn.send(&Message::DataChunk {
                id,
                bytes: b"hello".to_vec(),
            });
            let _ = conn.send(&Message::DataEnd {
                id,
                status: DataStatus::Ok {
                    file_hash: [7; 16],
                    size: 5,
                    mtime: Timestamp::default(),
                },
            });
        }
        let _ = input.next_message();
    });
    let report = r.unwrap();
    assert_eq!(report.stats.errors, 1, "{report:?}");
    assert!(!dst.join("new").exists(), "an unverified file never lands");
    only_kept(&dst);
    outside_untouched(&outside);
}

#[test]
fn a_flood_of_replies_to_a_request_sent_ahead_ends_the_session() {
    // Small files are requested before a worker waits on them; a sender flooding one of those
    // requests must not block the one reader (which would hang the pass).
    let (_t, dst, outside) = scratch();
    let flooded = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = flooded.clone();
    // One worker, waiting on the first file (never answered): the rest wait in the queue.
    let report = pull_with(
        &dst,
        |o| o.transfers = 1,
        move |conn, input| {
            let mut entries = vec![entry("", EntryKind::Dir, 0)];
            for i in 0..100 {
                entries.push(entry(&format!("f{i:03}"), EntryKind::File, 5));
            }
            listing(conn, entries);
            while let Ok(Some(m)) = input.next_message() {
                if let Message::Requests(rs) = m {
                    let last = rs.last().map_or(1, |r| r.id);
                    if !seen.load(std::sync::atomic::Ordering::Relaxed) && last > 1 {
                        seen.store(true, std::sync::atomic::Ordering::Relaxed);
                        for _ in 0..40 {
                            let _ = conn.send(&Message::DataChunk {
                                id: last,
                                bytes: b"x".to_vec(),
                            });
                        }
                    }
                }
            }
        },
    )
    .unwrap();
    assert!(
        flooded.load(std::sync::atomic::Ordering::Relaxed),
        "the fake sender saw a batch to flood"
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("more replies to request")),
        "{:?}",
        report.problems
    );
    only_kept(&dst);
    outside_untouched(&outside);
}

#[test]
fn more_data_than_listed_never_lands() {
    let (_t, dst, outside) = scratch();
    let r = pull_from(&dst, |conn, input| {
        listing(
            conn,
            vec![
                entry("", EntryKind::Dir, 0),
                entry("new", EntryKind::File, 5),
            ],
        );
        // Every request (the first and each retry) gets 64 MiB for a file listed at 5 bytes.
        while let Some(id) = next_requests(input).and_then(|ids| ids.first().copied()) {
            for _ in 0..1024 {
                if conn
                    .send(&Message::DataChunk {
                        id,
                        bytes: vec![b'x'; 64 << 10],
                    })
                    .is_err()
                {
                    return;
                }
            }
            let _ = conn.send(&Message::DataEnd {
                id,
                status: DataStatus::Ok {
                    file_hash: [7; 16],
                    size: 64 << 20,
                    mtime: Timestamp::default(),
                },
            });
        }
    });
    let report = r.unwrap();
    assert_eq!(report.stats.errors, 1, "{report:?}");
    // The file was requested ahead: the transfer reading the excess refuses it, or, if the
    // flood arrives before a worker reads, the reader ends the session.
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("more than the 5 bytes")
                || p.contains("more replies to request 1 than a small file takes")),
        "{:?}",
        report.problems
    );
    assert!(!dst.join("new").exists(), "an oversized file never lands");
    only_kept(&dst);
    outside_untouched(&outside);
}

#[test]
fn the_sender_prunes_what_the_filter_excludes_and_refuses_grown_files() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    for d in ["keep/sub", "skip/deep"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    std::fs::write(src.join("keep/sub/a"), b"a").unwrap();
    std::fs::write(src.join("skip/deep/b"), b"b").unwrap();
    std::fs::write(src.join("grown"), b"0123456789").unwrap();
    let filter = FilterSpec::rclone(vec![(b"exclude".to_vec(), b"skip/**".to_vec())]);
    let (conn, mut input, served) = raw_session(&src, &filter);
    let mut listed = Vec::new();
    loop {
        match input.next_message().unwrap() {
            Some(Message::Entries(batch)) => listed.extend(
                batch
                    .iter()
                    .map(|e| String::from_utf8_lossy(e.path()).into_owned()),
            ),
            Some(Message::ListEnd) => break,
            Some(other) => panic!("unexpected {other:?}"),
            None => panic!("server hung up"),
        }
    }
    assert!(listed.contains(&"keep/sub/a".to_string()), "{listed:?}");
    assert!(
        !listed.iter().any(|p| p.starts_with("skip/")),
        "an excluded directory is not walked: {listed:?}"
    );
    // A file that grew past the size the receiver asks for is reported changed, not sent.
    conn.send(&Message::Request(Request {
        id: 1,
        path: b"grown".to_vec(),
        size_hint: 4,
        signature: false,
    }))
    .unwrap();
    loop {
        match input.next_message().unwrap() {
            Some(Message::DataEnd { id: 1, status }) => {
                assert!(matches!(status, DataStatus::Changed(_)), "{status:?}");
                break;
            }
            Some(Message::DataChunk { .. }) => panic!("no data for a grown file"),
            Some(_) => {}
            None => panic!("server hung up"),
        }
    }
    conn.send(&Message::Done).unwrap();
    drop((conn, input));
    served.join().unwrap().unwrap();
}

#[test]
fn replies_for_requests_never_made_end_the_session() {
    let (_t, dst, outside) = scratch();
    let r = pull_from(&dst, |conn, _| {
        let _ = conn.send(&Message::DataChunk {
            id: 999,
            bytes: vec![0; 10],
        });
        listing(conn, vec![entry("", EntryKind::Dir, 0)]);
    });
    let report = r.unwrap();
    assert_ne!(report.outcome.exit_code(), 0);
    assert_eq!(
        std::fs::read(dst.join("kept")).unwrap(),
        b"old content",
        "kept: no deletion after a broken session"
    );
    outside_untouched(&outside);
}

/// A fake sender speaking raw bytes after the handshake.
fn pull_raw(dst: &Path, raw: Vec<u8>) -> crate::exec::Report {
    let (client, mut server) = Duplex::pair(64);
    let fake = std::thread::spawn(move || {
        let mut hello = Vec::new();
        Message::Hello(Hello::ours()).encode(&mut hello);
        server
            .writer
            .write_all(&encode_frame(0x01, &hello, None).unwrap())
            .unwrap();
        server.writer.write_all(&raw).unwrap();
        // Stop sending (mid-frame, for the short frame), but read what the client says until
        // it hangs up.
        drop(server.writer);
        let mut sink = [0u8; 4096];
        while matches!(server.reader.read(&mut sink), Ok(n) if n > 0) {}
    });
    let source = RemoteSource::connect(
        client,
        b"/src",
        &SyncOptions::new(Mode::Sync),
        &FilterSpec::default(),
        "fake".into(),
        &SessionOptions::default(),
    )
    .unwrap();
    let job = SyncBuilder::new(Mode::Sync, "", dst).build().unwrap();
    let r = job.run_from(&source).unwrap();
    drop(source);
    fake.join().unwrap();
    r
}

/// A fake sender that sends its Hello, then `frames` with `gap` between them, then stalls
/// (keeps the connection open, reads nothing) until the client's abort hook fires. Returns the
/// client's report, whether the hook fired, and how long the pass took.
fn pull_stalling(
    dst: &Path,
    frames: Vec<Vec<u8>>,
    gap: std::time::Duration,
    timeout: std::time::Duration,
) -> (crate::exec::Report, bool, std::time::Duration) {
    let (client, mut server) = Duplex::pair(64);
    let (abort_tx, abort_rx) = std::sync::mpsc::channel::<()>();
    let aborted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = aborted.clone();
    let client = client.with_abort(move || {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = abort_tx.send(());
    });
    let fake = std::thread::spawn(move || {
        let mut hello = Vec::new();
        Message::Hello(Hello::ours()).encode(&mut hello);
        let _ = server
            .writer
            .write_all(&encode_frame(0x01, &hello, None).unwrap());
        for f in frames {
            std::thread::sleep(gap);
            if server.writer.write_all(&f).is_err() {
                return;
            }
        }
        // Stalled: neither reads nor writes until torn down, then hangs up.
        let _ = abort_rx.recv_timeout(std::time::Duration::from_secs(30));
    });
    let started = std::time::Instant::now();
    let source = RemoteSource::connect(
        client,
        b"/src",
        &SyncOptions::new(Mode::Sync),
        &FilterSpec::default(),
        "fake".into(),
        &SessionOptions {
            compress: None,
            timeout: Some(timeout),
            ..Default::default()
        },
    )
    .unwrap();
    let job = SyncBuilder::new(Mode::Sync, "", dst).build().unwrap();
    let r = job.run_from(&source).unwrap();
    let took = started.elapsed();
    drop(source);
    fake.join().unwrap();
    (r, aborted.load(std::sync::atomic::Ordering::SeqCst), took)
}

fn frame_of(m: &Message) -> Vec<u8> {
    let mut payload = Vec::new();
    m.encode(&mut payload);
    encode_frame(m.message_type().as_u8(), &payload, None).unwrap()
}

#[test]
fn a_stalled_peer_times_out_and_the_connection_is_torn_down() {
    let (_t, dst, outside) = scratch();
    let listing = vec![frame_of(&Message::Entries(vec![
        entry("", EntryKind::Dir, 0),
        entry("kept", EntryKind::File, 11),
    ]))];
    let timeout = std::time::Duration::from_millis(300);
    let (report, aborted, took) = pull_stalling(&dst, listing, Default::default(), timeout);
    assert!(aborted, "the connection was torn down");
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
    assert_ne!(report.outcome.exit_code(), 0);
    assert!(
        report.problems.iter().any(|p| p.contains("--timeout")),
        "{:?}",
        report.problems
    );
    assert_eq!(std::fs::read(dst.join("kept")).unwrap(), b"old content");
    outside_untouched(&outside);
}

#[test]
fn keepalives_hold_a_quiet_session_open() {
    let (_t, dst, _outside) = scratch();
    // 1.2 s of keepalives (4× the timeout), then an empty tree: no timeout, a clean pass.
    let mut frames: Vec<Vec<u8>> = (0..24).map(|_| frame_of(&Message::Keepalive)).collect();
    frames.push(frame_of(&Message::Entries(vec![entry(
        "",
        EntryKind::Dir,
        0,
    )])));
    frames.push(frame_of(&Message::ListEnd));
    let timeout = std::time::Duration::from_millis(300);
    let gap = std::time::Duration::from_millis(50);
    // (The fake then stalls instead of hanging up after Done, so the hook fires once the
    // pass is over; the pass itself must be clean.)
    let (report, _, _) = pull_stalling(&dst, frames, gap, timeout);
    // (An empty tree: the empty-source rail keeps `kept`, which is all that may happen.)
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.stats.errors, 0, "{report:?}");
    assert_eq!(std::fs::read(dst.join("kept")).unwrap(), b"old content");
}

#[test]
fn oversized_frames_and_a_peer_stopping_mid_frame_are_errors() {
    for raw in [
        // A length field of 4 GiB: refused before anything is buffered.
        vec![0xff, 0xff, 0xff, 0xff, 0x10, 0x00, 1, 2, 3],
        // A frame announcing 300 bytes of which 12 arrive.
        [&300u32.to_be_bytes()[..], &[0x10, 0x00], &[0u8; 10]].concat(),
    ] {
        let (_t, dst, outside) = scratch();
        let report = pull_raw(&dst, raw);
        assert_ne!(report.outcome.exit_code(), 0);
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("frame") || p.contains("connection")),
            "{:?}",
            report.problems
        );
        assert_eq!(std::fs::read(dst.join("kept")).unwrap(), b"old content");
        outside_untouched(&outside);
    }
}

/// A hostile receiver against our sender: traversal in requests, a symlink leading out of
/// the served tree, an oversized signature.
#[test]
fn the_sender_confines_every_request_to_its_tree() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("ok"), b"fine").unwrap();
    std::fs::write(t.path().join("secret"), b"outside the tree").unwrap();
    std::os::unix::fs::symlink("../secret", src.join("link-out")).unwrap();
    let (client, server) = Duplex::pair(64);
    let root = src.clone();
    let served = std::thread::spawn(move || serve(server));
    let job = crate::protocol::Job {
        seed: 1,
        role: crate::protocol::Role::Sender,
        mode: Mode::Copy,
        dry_run: false,
        options: Vec::new(),
        filter_dialect: crate::filter::Dialect::Rclone,
        filter_args: Vec::new(),
        root: root.as_os_str().as_encoded_bytes().to_vec(),
    };
    let (conn, mut input) = connect(client, &job).unwrap();
    // Through a symlink: refused by the tree, reported for that file only.
    conn.send(&Message::Request(Request {
        id: 1,
        path: b"link-out".to_vec(),
        size_hint: 0,
        signature: false,
    }))
    .unwrap();
    let mut status = None;
    while status.is_none() {
        match input.next_message().unwrap() {
            Some(Message::DataEnd { id: 1, status: s }) => status = Some(s),
            Some(Message::DataChunk { id: 1, bytes }) => {
                assert!(!bytes.windows(7).any(|w| w == b"outside"), "secret leaked")
            }
            Some(_) => {}
            None => panic!("server hung up"),
        }
    }
    assert!(
        matches!(
            status,
            Some(DataStatus::Failed(_)) | Some(DataStatus::Vanished)
        ),
        "{status:?}"
    );
    // A digest through the same symlink: refused too.
    conn.send(&Message::Digest {
        id: 2,
        path: b"link-out".to_vec(),
    })
    .unwrap();
    loop {
        match input.next_message().unwrap() {
            Some(Message::DigestReply { id: 2, status }) => {
                assert!(
                    !matches!(status, crate::protocol::DigestStatus::Ok(_)),
                    "{status:?}"
                );
                break;
            }
            Some(_) => {}
            None => panic!("server hung up"),
        }
    }
    // (Paths with `..`, absolute paths and NUL bytes never decode: protocol::listing's tests.)
    drop(conn);
    drop(input);
    let err = served.join().unwrap();
    assert!(
        err.is_err(),
        "a session without Done is an error on the server: {err:?}"
    );
}

/// Counts the bytes a writer passes on.
struct Counting<W> {
    inner: W,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// A slow link: this many bytes per millisecond at most.
    per_ms: Option<u64>,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        if let Some(rate) = self.per_ms {
            std::thread::sleep(std::time::Duration::from_millis(n as u64 / rate));
        }
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Pulls `src` into `dst` over an in-memory pair whose far side writes through a counter
/// (at most `per_ms` bytes a millisecond, if given); the bytes the far side sent.
fn pull_counted(src: &Path, dst: &Path, session: SessionOptions, per_ms: Option<u64>) -> u64 {
    let (far_sent, report, _) = pull_through_counter(src, dst, session, per_ms);
    assert_eq!(report.outcome.exit_code(), 0);
    far_sent
}

/// [`pull_counted`]'s pull: the bytes the far side sent, the pass's report, and the source's
/// own count of its connection read after the session ended.
fn pull_through_counter(
    src: &Path,
    dst: &Path,
    session: SessionOptions,
    per_ms: Option<u64>,
) -> (u64, crate::exec::Report, crate::transport::WireCount) {
    let (client, server) = Duplex::pair(64);
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = Duplex {
        reader: server.reader,
        writer: Box::new(Counting {
            inner: server.writer,
            count: count.clone(),
            per_ms,
        }),
        abort: None,
    };
    let served = std::thread::spawn(move || serve(counted));
    let source = RemoteSource::connect(
        client,
        src.as_os_str().as_encoded_bytes(),
        &SyncOptions::new(Mode::Copy),
        &FilterSpec::default(),
        "t".into(),
        &session,
    )
    .unwrap();
    let report = SyncBuilder::new(Mode::Copy, "", dst)
        .build()
        .unwrap()
        .run_from(&source)
        .unwrap();
    let wire = source.wire_count().expect("a connected source counts");
    drop(source);
    served.join().unwrap().unwrap();
    (
        count.load(std::sync::atomic::Ordering::Relaxed),
        report,
        wire,
    )
}

/// A source tree `t/src` holding one `mail.eml` of `lines` lines of mail text.
fn mail_source(t: &Path, lines: usize) -> (std::path::PathBuf, Vec<u8>) {
    let src = t.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let text =
        b"Received: from mail.example.org by mx; subject: quarterly report\r\n".repeat(lines);
    std::fs::write(src.join("mail.eml"), &text).unwrap();
    (src, text)
}

#[test]
fn compression_shrinks_what_crosses_the_wire_and_can_be_turned_off() {
    let t = tempfile::tempdir().unwrap();
    let (src, text) = mail_source(t.path(), 20_000);
    let mut sent = Vec::new();
    for (i, (level, always)) in [(Some(3), true), (None, false)].into_iter().enumerate() {
        let dst = t.path().join(format!("dst{i}"));
        let session = SessionOptions {
            compress: level,
            compress_always: always,
            ..Default::default()
        };
        sent.push(pull_counted(&src, &dst, session, None));
        assert_eq!(std::fs::read(dst.join("mail.eml")).unwrap(), text);
    }
    assert!(
        sent[0] * 10 < sent[1],
        "zstd: {} bytes, off: {} bytes",
        sent[0],
        sent[1]
    );
    assert!(
        sent[1] > text.len() as u64,
        "uncompressed carries the whole file"
    );
}

#[test]
fn by_default_file_data_is_compressed_when_the_link_is_slow() {
    let t = tempfile::tempdir().unwrap();
    // 8 MiB of mail text: eight data frames of 1 MiB.
    let (src, text) = mail_source(t.path(), 130_000);
    let dst = t.path().join("dst");
    // 16 MB/s: the output backs up behind the first frame, sent raw, and the rest go
    // compressed.
    let sent = pull_counted(&src, &dst, SessionOptions::default(), Some(16_000));
    assert_eq!(std::fs::read(dst.join("mail.eml")).unwrap(), text);
    assert!(
        sent < text.len() as u64 / 3,
        "a slow link carried {sent} bytes of an {} byte file",
        text.len()
    );
}

#[test]
fn a_push_reports_the_far_side_events_and_progress() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let big = patterned(4u32 << 20);
    std::fs::write(src.join("sub/big"), &big).unwrap();
    for (i, level) in [Events::All, Events::Changes, Events::Problems]
        .into_iter()
        .enumerate()
    {
        let dst = t.path().join(format!("dst{i}"));
        let (client, server) = Duplex::pair(64);
        let served = std::thread::spawn(move || serve(server));
        let progress = std::sync::atomic::AtomicU64::new(0);
        let changed = std::sync::atomic::AtomicU64::new(0);
        let report = push(
            client,
            &src,
            dst.as_os_str().as_encoded_bytes(),
            &SyncOptions::new(Mode::Copy),
            &FilterSpec::default(),
            &SessionOptions {
                events: level,
                ..Default::default()
            },
            &|e| match e {
                crate::exec::Event::Progress { bytes } => {
                    progress.fetch_add(*bytes, std::sync::atomic::Ordering::Relaxed);
                }
                crate::exec::Event::Changed(_) => {
                    changed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                _ => {}
            },
        )
        .unwrap();
        served.join().unwrap().unwrap();
        assert_eq!(report.stats.files_created, 1, "{report:?}");
        assert_eq!(std::fs::read(dst.join("sub/big")).unwrap(), big);
        let (changed, progress) = (changed.into_inner(), progress.into_inner());
        // The far side's changes and progress reach the client as far as it asked.
        assert_eq!(
            changed >= 2,
            level >= Events::Changes,
            "{level:?}: {changed}"
        );
        assert_eq!(progress > 0, level == Events::All, "{level:?}: {progress}");
    }
}

#[test]
fn a_listing_larger_than_the_window_flows_under_credit() {
    // More entries than the sender may send before the receiver grants credit, while every
    // transfer needs a reply queued behind the listing: the one reader must never block.
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let n = crate::protocol::LIST_CREDIT as usize + 6000;
    for d in 0..10 {
        std::fs::create_dir_all(src.join(format!("d{d}"))).unwrap();
    }
    for i in 0..n {
        std::fs::write(src.join(format!("d{}/f{i:06}", i % 10)), [i as u8]).unwrap();
    }
    let dst = t.path().join("dst");
    let (client, server) = Duplex::pair(64);
    let served = std::thread::spawn(move || serve(server));
    let source = RemoteSource::connect(
        client,
        src.as_os_str().as_encoded_bytes(),
        &SyncOptions::new(Mode::Copy),
        &FilterSpec::default(),
        "t".into(),
        &SessionOptions::default(),
    )
    .unwrap();
    let job = SyncBuilder::new(Mode::Copy, "", &dst).build().unwrap();
    let report = job.run_from(&source).unwrap();
    drop(source);
    served.join().unwrap().unwrap();
    assert_eq!(report.stats.files_created, n as u64, "{report:?}");
    assert_eq!(std::fs::read(dst.join("d3/f000013")).unwrap(), [13u8]);
}

#[test]
fn a_sender_ignoring_listing_credit_is_stopped() {
    let (_t, dst, outside) = scratch();
    let r = pull_from(&dst, |conn, _input| {
        let mut batch = vec![entry("", EntryKind::Dir, 0)];
        for i in 0..40_000 {
            batch.push(entry(&format!("f{i:06}"), EntryKind::File, 1));
            if batch.len() == 4096
                && conn
                    .send(&Message::Entries(std::mem::take(&mut batch)))
                    .is_err()
            {
                return;
            }
        }
        let _ = conn.send(&Message::Entries(batch));
        let _ = conn.send(&Message::ListEnd);
    });
    let report = r.unwrap();
    assert_ne!(report.outcome.exit_code(), 0);
    assert!(
        report.problems.iter().any(|p| p.contains("credit")),
        "{:?}",
        report.problems
    );
    assert_eq!(std::fs::read(dst.join("kept")).unwrap(), b"old content");
    outside_untouched(&outside);
}

#[test]
fn a_pull_and_a_push_report_the_bytes_on_the_wire_to_a_library_caller() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let big = patterned(1u32 << 20);
    std::fs::write(src.join("big"), &big).unwrap();
    let plain = SessionOptions {
        compress: None,
        ..Default::default()
    };
    let len = big.len() as u64;

    // Pull: the far side's writes are counted here too; the report holds what had come in by
    // the pass's end, the source's count everything up to the session's end.
    let (far_sent, report, wire) =
        pull_through_counter(&src, &t.path().join("pulled"), plain, None);
    let st = &report.stats;
    assert!(
        (len..len + (64 << 10)).contains(&st.wire_received),
        "the file and a little framing came in: {st:?}"
    );
    assert!(st.wire_sent > 0 && st.wire_sent < 4096, "{st:?}");
    assert!(st.wire_received <= far_sent, "{st:?} vs {far_sent}");
    assert_eq!(wire.received(), far_sent, "all the far side sent was read");

    // Push: the report is the far receiver's, with this side's counts.
    let (client, server) = Duplex::pair(64);
    let served = std::thread::spawn(move || serve(server));
    let report = push(
        client,
        &src,
        t.path().join("pushed").as_os_str().as_encoded_bytes(),
        &SyncOptions::new(Mode::Copy),
        &FilterSpec::default(),
        &plain,
        &|_| {},
    )
    .unwrap();
    served.join().unwrap().unwrap();
    let st = &report.stats;
    assert!(
        (len..len + (64 << 10)).contains(&st.wire_sent),
        "the file and a little framing went out: {st:?}"
    );
    assert!(st.wire_received > 0 && st.wire_received < 4096, "{st:?}");
}

#[test]
fn a_large_delta_reaches_the_receiver_at_each_checkpoint_not_only_at_its_end() {
    use crate::delta::{apply, ApplyOptions, Basis};
    use crate::signature::{Signature, SignatureFormat, SignatureOptions};
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    // Unchanged but for its last bytes: the delta is copies up to a literal at the very end,
    // so without checkpoints all of it would arrive in one piece after the whole search.
    let old = patterned(40u32 << 20);
    let mut new = old.clone();
    let end = new.len();
    new[end - 100..].fill(7);
    std::fs::write(src.join("big"), &new).unwrap();
    let (conn, mut input, served) = raw_session(&src, &FilterSpec::default());
    while !matches!(input.next_message().unwrap(), Some(Message::ListEnd)) {}
    let sig = Signature::from_slice(
        &old,
        &SignatureOptions {
            seed: Some(1),
            ..SignatureOptions::new(SignatureFormat::Native)
        },
    )
    .unwrap();
    conn.send(&Message::Request(Request {
        id: 1,
        path: b"big".to_vec(),
        size_hint: new.len() as u64,
        signature: true,
    }))
    .unwrap();
    for chunk in sig.to_bytes().chunks(crate::protocol::MAX_CHUNK) {
        conn.send(&Message::SigChunk {
            id: 1,
            bytes: chunk.to_vec(),
        })
        .unwrap();
    }
    conn.send(&Message::SigEnd { id: 1 }).unwrap();
    let mut chunks = Vec::new();
    loop {
        match input.next_message().unwrap() {
            Some(Message::DataChunk { id: 1, bytes }) => chunks.push(bytes),
            Some(Message::DataEnd { id: 1, status }) => {
                assert!(matches!(status, DataStatus::Ok { .. }), "{status:?}");
                break;
            }
            Some(other) => panic!("unexpected {other:?}"),
            None => panic!("server hung up"),
        }
    }
    // Checkpoints at 16 and 32 MiB: two pieces, then the tail with the reply's end.
    assert_eq!(
        chunks.len(),
        3,
        "{:?}",
        chunks.iter().map(Vec::len).collect::<Vec<_>>()
    );
    let mut rebuilt = Vec::new();
    let st = apply(
        Basis::Slice(&old),
        &mut &chunks.concat()[..],
        &mut rebuilt,
        &ApplyOptions::default(),
    )
    .unwrap();
    assert!(st.verified);
    assert!(rebuilt == new, "the rebuilt file differs");
    conn.send(&Message::Done).unwrap();
    drop((conn, input));
    served.join().unwrap().unwrap();
}
