//! Tree passes: `copy`, `sync` and `check` of a source tree onto a destination tree.
//!
//! A [`SyncJob`] is built once with [`SyncBuilder`] (immutable, `Send + Sync`) and run as often
//! as wanted; each run is one pass. A pass walks both trees in parallel and in the same order,
//! merges the two listings as a stream ([`crate::plan`]), and acts on each path as it comes:
//! directories, links and metadata at once, file transfers on a pool of workers
//! ([`crate::exec::transfer`]). Hard links, deletions and directory metadata wait until the
//! transfers are done. Memory grows with the number of directories, hard-linked files and
//! pending deletions, not with the number or size of files.
//!
//! Deletion rails: nothing is deleted if any source entry could not be read or any transfer
//! failed; `max_delete` caps deletions; and a pass whose source is empty, that would delete
//! more than half of the destination's entries, or whose destination is the root of a file
//! system (`/` or a mount point), deletes nothing unless `force_delete` is set.
//! Uses every other module; nothing here prints.

mod dirs;
mod pass;
mod queue;
pub mod source;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::exec::meta::MetaOptions;
use crate::exec::report::Callback;
use crate::exec::transfer::TransferOptions;
use crate::filter::Filter;
use crate::plan::CompareOptions;

/// What a pass does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Make the destination contain the source's entries; never delete.
    Copy,
    /// Make the destination equal to the source, deleting extraneous entries.
    Sync,
    /// Compare only: report missing, extra and differing entries.
    Check,
}

/// Everything a pass needs besides the trees.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Copy, sync or check.
    pub mode: Mode,
    /// How entries are compared.
    pub compare: CompareOptions,
    /// How files move.
    pub transfer: TransferOptions,
    /// Plan and report, change nothing.
    pub dry_run: bool,
    /// Most deletions performed; the rest are reported and the pass ends with
    /// [`crate::exec::Outcome::DeletionsStopped`].
    pub max_delete: Option<u64>,
    /// Delete even when the rails (empty source, more than half the destination) say no.
    pub force_delete: bool,
    /// Files transferred at once. With a far source or destination a transfer that was not
    /// asked for ahead (a large file, a delta) waits a round trip; [`remote_transfers`] hides
    /// it.
    pub transfers: usize,
    /// Keep hard-linked source files hard-linked at the destination.
    pub hard_links: bool,
    /// Copy symlinks as symlinks (otherwise they are skipped).
    pub symlinks: bool,
    /// Copy devices, fifos and sockets.
    pub specials: bool,
    /// Create directories that end up empty (robocopy `/s` does not). When off, a new
    /// directory is created only once a non-directory is put in it or below it.
    pub empty_dirs: bool,
    /// Do not cross file-system boundaries in the source.
    pub one_file_system: bool,
    /// Create the destination's missing parent directories (rclone; rsync's `--mkpath`).
    /// When off, only the destination's last component is created, as rsync does.
    pub mkpath: bool,
}

impl SyncOptions {
    /// Defaults for a mode between two local trees: the metadata `rsync -aH --numeric-ids`
    /// keeps, quick check, whole-file copies, two retries two seconds apart.
    pub fn new(mode: Mode) -> Self {
        let meta = MetaOptions {
            perms: true,
            times: true,
            owner: true,
            group: true,
        };
        Self {
            mode,
            compare: CompareOptions {
                meta,
                ..CompareOptions::default()
            },
            // Between two local trees a whole copy (`copy_file_range`) beats rebuilding from a
            // delta, which reads the old file too and writes as much: measured 0.08 s against
            // 0.35 s for a 64 MiB file with 4 MiB appended. As rsync does locally, deltas are
            // then used only on request; `inplace` still writes just the changed blocks.
            transfer: TransferOptions {
                meta,
                whole_file: true,
                ..TransferOptions::default()
            },
            dry_run: false,
            mkpath: true,
            max_delete: None,
            force_delete: false,
            transfers: default_transfers(),
            hard_links: true,
            symlinks: true,
            specials: true,
            empty_dirs: true,
            one_file_system: false,
        }
    }
}

/// Transfers at once that suit a pass with a far side (see [`SyncOptions::transfers`]):
/// twice the cores, 8 to 16. Small new files are asked for ahead and need no round trip
/// each; more threads than that then only contend for the cores (a push of 60,000 small
/// files on 2 cores, medians of 6: 1.46 s with 4, 1.51 s with 8, 1.58 s with 16), while
/// the transfers that do wait a round trip want several in flight.
pub fn remote_transfers() -> usize {
    std::thread::available_parallelism().map_or(8, |n| (n.get() * 2).clamp(8, 16))
}

/// Enough files in flight to keep both the disks and the cores busy with small files: twice
/// the cores, 4 to 16 (for a pass between local trees).
pub fn default_transfers() -> usize {
    std::thread::available_parallelism().map_or(4, |n| (n.get() * 2).clamp(4, 16))
}

/// A pass that cannot start or cannot go on at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The source does not exist.
    #[error("source {} does not exist", path.display())]
    SourceMissing {
        /// The path given.
        path: PathBuf,
    },
    /// The source is not a directory.
    #[error("source {} is not a directory", path.display())]
    SourceNotDir {
        /// The path given.
        path: PathBuf,
    },
    /// The destination exists and is not a directory.
    #[error("destination {} is not a directory", path.display())]
    DestNotDir {
        /// The path given.
        path: PathBuf,
    },
    /// One tree contains the other.
    #[error("source {} and destination {} overlap", src.display(), dst.display())]
    Overlap {
        /// Source.
        src: PathBuf,
        /// Destination.
        dst: PathBuf,
    },
    /// A tree root could not be opened or created.
    #[error("cannot open {}: {source}", path.display())]
    Root {
        /// The root.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Options that contradict each other.
    #[error("bad options: {0}")]
    Options(String),
}

/// Builds a [`SyncJob`].
#[derive(Clone)]
pub struct SyncBuilder {
    src: PathBuf,
    dst: PathBuf,
    opts: SyncOptions,
    filter: Arc<Filter>,
    callback: Option<Arc<Callback>>,
}

impl std::fmt::Debug for SyncBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncBuilder")
            .field("src", &self.src)
            .field("dst", &self.dst)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl SyncBuilder {
    /// A pass copying the contents of `src` into `dst`.
    pub fn new(mode: Mode, src: impl AsRef<Path>, dst: impl AsRef<Path>) -> Self {
        Self {
            src: src.as_ref().into(),
            dst: dst.as_ref().into(),
            opts: SyncOptions::new(mode),
            filter: Arc::new(Filter::all()),
            callback: None,
        }
    }

    /// Replaces all options.
    pub fn options(mut self, opts: SyncOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Changes options in place.
    pub fn configure(mut self, f: impl FnOnce(&mut SyncOptions)) -> Self {
        f(&mut self.opts);
        self
    }

    /// Which entries take part.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = Arc::new(filter);
        self
    }

    /// Receives every event, from any thread.
    pub fn callback(mut self, cb: Arc<Callback>) -> Self {
        self.callback = Some(cb);
        self
    }

    /// Checks the options; the trees are looked at when the job runs.
    pub fn build(self) -> Result<SyncJob, SyncError> {
        if self.opts.transfers == 0 {
            return Err(SyncError::Options("transfers must be at least 1".into()));
        }
        if self.opts.compare.checksum && self.opts.compare.size_only {
            return Err(SyncError::Options(
                "--checksum and --size-only exclude each other".into(),
            ));
        }
        Ok(SyncJob {
            src: self.src,
            dst: self.dst,
            opts: self.opts,
            filter: self.filter,
            callback: self.callback,
        })
    }
}

/// A configured pass; [`SyncJob::run`] performs it.
pub struct SyncJob {
    src: PathBuf,
    dst: PathBuf,
    opts: SyncOptions,
    filter: Arc<Filter>,
    callback: Option<Arc<Callback>>,
}

impl std::fmt::Debug for SyncJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncJob")
            .field("src", &self.src)
            .field("dst", &self.dst)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl SyncJob {
    /// The options.
    pub fn options(&self) -> &SyncOptions {
        &self.opts
    }

    /// Runs one pass from the local source path.
    pub fn run(&self) -> Result<crate::exec::Report, SyncError> {
        pass::run(self)
    }

    /// Runs one pass from `source` (for example a far tree through a session); the job's own
    /// source path is not used.
    pub fn run_from(&self, source: &dyn source::Source) -> Result<crate::exec::Report, SyncError> {
        pass::run_from(self, source)
    }
}
