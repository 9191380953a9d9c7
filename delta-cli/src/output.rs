//! Rendering a pass for people and programs: per-entry lines (`-v`, `--itemize-changes`, dry
//! runs, `check`), problems, a progress line on a terminal, the `--stats` summary and the
//! `--json` report. Escape codes and progress appear only when standard error is a terminal.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use delta_core::exec::{Change, Event, Problem, Report};
use delta_core::plan::Action;
use delta_core::scan::EntryKind;
use delta_core::sync::Mode;

/// How much to say.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    pub verbose: u8,
    pub quiet: bool,
    pub itemize: bool,
    pub progress: bool,
    pub json: bool,
    pub dry_run: bool,
}

impl Style {
    /// The events a far side must send back for this output. `--json` prints only the
    /// report (which comes back whole, problems included) and no event lines, so it needs
    /// no more than the problems: every entry's event from a far receiver would cost a push
    /// of 60,000 unchanged files half a second.
    pub fn events(&self) -> delta_core::session::Events {
        use delta_core::session::Events;
        if self.progress || (self.verbose >= 2 && !self.json) {
            Events::All
        } else if self.quiet || self.json {
            Events::Problems
        } else if self.verbose >= 1 || self.itemize || self.dry_run {
            Events::Changes
        } else {
            Events::Problems
        }
    }
}

/// Receives events from every worker thread and writes lines.
pub struct Printer {
    style: Style,
    mode: Mode,
    out: Mutex<Box<dyn Write + Send>>,
    tty: bool,
    started: Instant,
    bytes: AtomicU64,
    /// Sizes of the transfers started so far: the bar's whole (the scan still runs, so the
    /// final total is unknown until the end).
    started_bytes: AtomicU64,
    files: AtomicU64,
    last_draw: Mutex<Instant>,
}

impl Printer {
    pub fn new(style: Style, mode: Mode) -> Self {
        let tty = std::io::stderr().is_terminal();
        Self {
            style: Style {
                progress: style.progress && tty,
                ..style
            },
            mode,
            out: Mutex::new(Box::new(std::io::stdout())),
            tty,
            started: Instant::now(),
            bytes: AtomicU64::new(0),
            started_bytes: AtomicU64::new(0),
            files: AtomicU64::new(0),
            last_draw: Mutex::new(Instant::now() - Duration::from_secs(1)),
        }
    }

    fn line(&self, s: &str) {
        if self.style.json {
            return;
        }
        self.clear_progress();
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{s}");
    }

    fn err_line(&self, s: &str) {
        self.clear_progress();
        #[allow(clippy::print_stderr)]
        {
            eprintln!("{s}");
        }
    }

    fn clear_progress(&self) {
        if self.style.progress {
            #[allow(clippy::print_stderr)]
            {
                eprint!("\r\x1b[2K");
            }
        }
    }

    /// Handles one event.
    pub fn event(&self, e: &Event<'_>) {
        match e {
            Event::Changed(c) => {
                if c.action != Action::Delete && matches!(c.action, Action::Create | Action::Update)
                {
                    self.files.fetch_add(1, Relaxed);
                }
                if let Some(line) = self.change_line(c) {
                    self.line(&line);
                }
            }
            Event::Unchanged(p) if self.style.verbose >= 2 && !self.style.quiet => {
                self.line(&format!("{}: unchanged", show(p)))
            }
            Event::TransferStarted { size, .. } => {
                self.started_bytes.fetch_add(*size, Relaxed);
                self.draw(false);
            }
            Event::Progress { bytes } => {
                self.bytes.fetch_add(*bytes, Relaxed);
                self.draw(false);
            }
            Event::Problem {
                path,
                problem,
                message,
            } => {
                let tag = match problem {
                    Problem::Vanished => "WARNING",
                    Problem::DeleteSkipped => "NOTICE",
                    _ => "ERROR",
                };
                if path.is_empty() {
                    self.err_line(&format!("deltasync: {tag}: {message}"));
                } else {
                    self.err_line(&format!("deltasync: {tag}: {}: {message}", show(path)));
                }
            }
            Event::Notice(n) if !self.style.quiet => {
                self.err_line(&format!("deltasync: NOTICE: {n}"))
            }
            _ => {}
        }
    }

    fn change_line(&self, c: &Change<'_>) -> Option<String> {
        if self.style.quiet {
            return None;
        }
        if self.mode == Mode::Check {
            let what = match c.action {
                Action::Create => "missing from the destination",
                Action::Delete => "only in the destination",
                _ => "differs",
            };
            return Some(format!("{}: {what}", show_entry(c)));
        }
        if self.style.itemize {
            return Some(itemize(c));
        }
        if self.style.dry_run {
            return Some(match c.action {
                Action::Create => format!("would create {} ({} bytes)", show_entry(c), c.size),
                Action::Update => format!(
                    "would update {} ({} of {} bytes would move)",
                    show_entry(c),
                    c.literal,
                    c.size
                ),
                Action::Delete => format!("would delete {}", show_entry(c)),
                Action::Mkdir => format!("would create directory {}", show_entry(c)),
                Action::SetMeta => format!("would set metadata of {}", show_entry(c)),
                Action::Symlink => format!(
                    "would link {} -> {}",
                    show_entry(c),
                    show(c.target.unwrap_or_default())
                ),
                Action::HardLink => format!(
                    "would hard-link {} => {}",
                    show_entry(c),
                    show(c.target.unwrap_or_default())
                ),
                _ => format!("would create {}", show_entry(c)),
            });
        }
        if self.style.verbose == 0 {
            return None;
        }
        Some(match c.action {
            Action::Create => format!("{}: copied (new), {} bytes", show(c.path), c.size),
            Action::Update if c.matched > 0 => {
                format!(
                    "{}: updated by delta, {} of {} bytes moved",
                    show(c.path),
                    c.literal,
                    c.size
                )
            }
            Action::Update => format!("{}: updated, {} bytes", show(c.path), c.size),
            Action::Delete => format!("{}: deleted", show_entry(c)),
            Action::Mkdir => format!("{}: directory created", show_entry(c)),
            Action::SetMeta => format!("{}: metadata updated", show_entry(c)),
            Action::Symlink => format!(
                "{} -> {}: symlink created",
                show(c.path),
                show(c.target.unwrap_or_default())
            ),
            Action::HardLink => format!(
                "{} => {}: hard link created",
                show(c.path),
                show(c.target.unwrap_or_default())
            ),
            _ => format!("{}: created", show_entry(c)),
        })
    }

    fn draw(&self, force: bool) {
        if !self.style.progress {
            return;
        }
        let mut last = self.last_draw.lock().unwrap_or_else(|e| e.into_inner());
        if !force && last.elapsed() < Duration::from_millis(200) {
            return;
        }
        *last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let bytes = self.bytes.load(Relaxed);
        let whole = self.started_bytes.load(Relaxed).max(bytes).max(1);
        let rate = bytes as f64 / secs;
        let eta = if rate > 0.0 {
            ((whole - bytes) as f64 / rate) as u64
        } else {
            0
        };
        let width = 24;
        let filled = (bytes as f64 / whole as f64 * width as f64) as usize;
        #[allow(clippy::print_stderr)]
        {
            eprint!(
                "\r\x1b[2K[{}{}] {} / {} {:3.0}%  {}/s  ETA {}:{:02}  {} files",
                "#".repeat(filled.min(width)),
                ".".repeat(width - filled.min(width)),
                human(bytes),
                human(whole),
                bytes as f64 * 100.0 / whole as f64,
                human(rate as u64),
                eta / 60,
                eta % 60,
                self.files.load(Relaxed)
            );
        }
    }

    /// Prints the end of the pass: the summary, the JSON report, the dry-run estimate.
    pub fn finish(&self, report: &Report, stats: bool) {
        self.clear_progress();
        if self.style.json {
            let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
            let _ = serde_json::to_writer_pretty(&mut *out, report);
            let _ = writeln!(out);
            return;
        }
        let s = &report.stats;
        if self.mode == Mode::Check {
            if !self.style.quiet {
                self.line(&format!(
                    "{} missing from the destination, {} only in the destination, {} differing, {} source entries checked",
                    s.missing, s.extra, s.differ, s.source_entries
                ));
            }
            return;
        }
        if self.style.dry_run && !self.style.quiet {
            self.line(&format!(
                "dry run: would copy {} and update {} files, moving about {} of {}; would delete {} entries",
                s.files_created,
                s.files_updated,
                human(s.literal_bytes),
                human(s.transferred_size),
                s.deleted
            ));
        }
        if stats {
            let lines = [
                format!(
                    "Entries scanned: {} source, {} destination",
                    s.source_entries, s.dest_entries
                ),
                format!(
                    "Files transferred: {} ({} new, {} updated), {} metadata-only",
                    s.files_created + s.files_updated,
                    s.files_created,
                    s.files_updated,
                    s.meta_updated
                ),
                format!(
                    "Directories created: {}, links and specials: {}",
                    s.dirs_created, s.links_created
                ),
                format!(
                    "Deleted: {}{}",
                    s.deleted,
                    if s.deletes_skipped > 0 {
                        format!(" ({} not deleted)", s.deletes_skipped)
                    } else {
                        String::new()
                    }
                ),
                format!(
                    "Total file size: {} bytes, transferred: {} bytes",
                    s.total_size, s.transferred_size
                ),
                format!(
                    "Literal data: {} bytes, matched data: {} bytes",
                    s.literal_bytes, s.matched_bytes
                ),
                format!("Speedup: {:.2}", s.speedup()),
                format!("Errors: {}, vanished: {}", s.errors, s.vanished),
                format!("Time: {:.3}s", s.elapsed.as_secs_f64()),
            ];
            for l in lines {
                self.line(&l);
            }
            if s.wire_sent + s.wire_received > 0 {
                self.line(&format!(
                    "Wire: {} bytes sent, {} bytes received",
                    s.wire_sent, s.wire_received
                ));
            }
        }
        if let Some(why) = &report.deletions_stopped {
            let _ = why; // already printed as a notice when it happened
        }
        let _ = self.tty;
    }
}

/// A path for display (lossy for non-UTF-8 names).
pub fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

fn show_entry(c: &Change<'_>) -> String {
    if c.path.is_empty() {
        "./".into()
    } else if c.kind == EntryKind::Dir {
        format!("{}/", show(c.path))
    } else {
        show(c.path)
    }
}

/// rsync's `--itemize-changes` line: `YXcstpoguax path`.
pub fn itemize(c: &Change<'_>) -> String {
    if c.action == Action::Delete {
        return format!("*deleting   {}", show_entry(c));
    }
    let x = match c.kind {
        EntryKind::File => 'f',
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'L',
        EntryKind::BlockDevice | EntryKind::CharDevice => 'D',
        _ => 'S',
    };
    let y = match c.action {
        Action::Create | Action::Update => '>',
        Action::HardLink => 'h',
        Action::Mkdir | Action::Symlink | Action::Special => 'c',
        _ => '.',
    };
    let flags = if c.flags.new {
        "+++++++++".to_string()
    } else {
        let f = c.flags;
        [
            if f.checksum { 'c' } else { '.' },
            if f.size { 's' } else { '.' },
            if f.time { 't' } else { '.' },
            if f.perms { 'p' } else { '.' },
            if f.owner { 'o' } else { '.' },
            if f.group { 'g' } else { '.' },
            '.',
            '.',
            '.',
        ]
        .iter()
        .collect()
    };
    let mut line = format!("{y}{x}{flags} {}", show_entry(c));
    match (c.action, c.target) {
        (Action::Symlink, Some(t)) => line.push_str(&format!(" -> {}", show(t))),
        (Action::HardLink, Some(t)) => line.push_str(&format!(" => {}", show(t))),
        _ => {}
    }
    line
}

/// Bytes in binary units.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use delta_core::plan::ChangeFlags;

    fn change(action: Action, kind: EntryKind, flags: ChangeFlags) -> Change<'static> {
        Change {
            path: b"a/b",
            kind,
            action,
            flags,
            size: 10,
            literal: 10,
            matched: 0,
            target: Some(b"t"),
        }
    }

    #[test]
    fn itemized_lines_match_rsync() {
        let new = ChangeFlags {
            new: true,
            ..Default::default()
        };
        assert_eq!(
            itemize(&change(Action::Create, EntryKind::File, new)),
            ">f+++++++++ a/b"
        );
        assert_eq!(
            itemize(&change(Action::Mkdir, EntryKind::Dir, new)),
            "cd+++++++++ a/b/"
        );
        assert_eq!(
            itemize(&change(Action::Symlink, EntryKind::Symlink, new)),
            "cL+++++++++ a/b -> t"
        );
        assert_eq!(
            itemize(&change(Action::HardLink, EntryKind::File, new)),
            "hf+++++++++ a/b => t"
        );
        assert_eq!(
            itemize(&change(
                Action::Delete,
                EntryKind::File,
                ChangeFlags::default()
            )),
            "*deleting   a/b"
        );
        let st = ChangeFlags {
            size: true,
            time: true,
            ..Default::default()
        };
        assert_eq!(
            itemize(&change(Action::Update, EntryKind::File, st)),
            ">f.st...... a/b"
        );
        let p = ChangeFlags {
            perms: true,
            ..Default::default()
        };
        assert_eq!(
            itemize(&change(Action::SetMeta, EntryKind::File, p)),
            ".f...p..... a/b"
        );
    }

    #[test]
    fn human_units() {
        assert_eq!(human(5), "5 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }
}
