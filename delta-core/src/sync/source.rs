//! Where a pass reads its source from: a local tree ([`LocalSource`]), or a far deltasync
//! over a session ([`crate::session::RemoteSource`]). The pass itself runs where the
//! destination is, like rsync's receiver, so only the source needs this seam.

use std::io;
use std::path::{Path, PathBuf};

use crate::exec::transfer::{self, Moved, TransferError, TransferOptions};
use crate::scan::{DescendFilter, Entry, ScanError, WalkBuilder};
use crate::tree::Tree;

/// A source listing: entries in [`crate::scan::cmp_paths`] order, the root first.
pub type Listing = Box<dyn Iterator<Item = Result<Entry, ScanError>> + Send>;

/// Set (with `Release`) when the data [`Source::prepare`] asked for is here, or will not come.
pub type Ready = std::sync::Arc<std::sync::atomic::AtomicBool>;

/// Called by a source when [`Ready`] flags have turned true (see [`Source::set_waker`]).
pub type Waker = std::sync::Arc<dyn Fn() + Send + Sync>;

/// A source tree as the pass sees it.
pub trait Source: Send + Sync {
    /// A description for messages (a path, or `host:path`).
    fn describe(&self) -> String;

    /// The listing, not entering directories `descend` refuses (a far source may enter them
    /// anyway: the pass filters every entry again).
    fn list(&self, descend: DescendFilter, one_file_system: bool) -> Listing;

    /// Moves one file into the destination tree `dst` at `rel`, replacing `old` if given.
    fn transfer(
        &self,
        dst: &Tree,
        rel: &[u8],
        entry: &Entry,
        old: Option<&Entry>,
        opts: &TransferOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Moved, TransferError>;

    /// A transfer of `rel` is queued and a worker will call [`Source::transfer`] for it soon:
    /// a far source may ask for the data now, so it is on its way (or here) by then. Small
    /// new files then cost no round trip each. Returns, for data asked for, a flag that turns
    /// true once it is all here (or can no longer come): the pass hands the transfer to a
    /// worker only then, so workers do not sleep one per file waiting for it. The default
    /// does nothing and returns `None`.
    fn prepare(
        &self,
        _rel: &[u8],
        _entry: &Entry,
        _old: Option<&Entry>,
        _opts: &TransferOptions,
    ) -> Option<Ready> {
        None
    }

    /// Sends whatever [`Source::prepare`] has asked for and still holds back (a far source
    /// batches its requests); the pass calls this before it waits for prepared data.
    fn flush_prepared(&self) {}

    /// Where to signal that [`Ready`] flags turned true (`None`: nowhere). A far source
    /// signals once per batch of data it received, not once per file.
    fn set_waker(&self, _wake: Option<Waker>) {}

    /// The whole-file hash of a source file (for `--checksum`), comparable with
    /// [`transfer::file_digest`] of a destination file.
    fn digest(&self, rel: &[u8]) -> io::Result<[u8; 16]>;

    /// Why the source can no longer answer (a far side whose session ended), if it can't;
    /// the pass then stops transferring and reports this once.
    fn lost(&self) -> Option<String> {
        None
    }

    /// Bytes sent to and received from a far source so far, `(sent, received)`; the pass
    /// puts them in its report's [`crate::exec::Stats::wire_sent`] and `wire_received`.
    /// `None` (the default) for a local source.
    fn wire(&self) -> Option<(u64, u64)> {
        None
    }

    /// Bytes a transfer would move, for dry runs.
    fn estimate(
        &self,
        dst: &Tree,
        rel: &[u8],
        old: Option<&Entry>,
        size: u64,
        opts: &TransferOptions,
    ) -> io::Result<u64>;
}

/// A source on this machine.
#[derive(Debug)]
pub struct LocalSource {
    root: PathBuf,
    tree: Tree,
}

impl LocalSource {
    /// Opens the tree at `root`.
    pub fn open(root: &Path) -> io::Result<Self> {
        Ok(Self {
            root: root.to_path_buf(),
            tree: Tree::open(root)?,
        })
    }

    /// The tree.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }
}

impl Source for LocalSource {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn list(&self, descend: DescendFilter, one_file_system: bool) -> Listing {
        Box::new(
            WalkBuilder::new(&self.root)
                .follow_root_symlink(true)
                .one_file_system(one_file_system)
                .descend_filter(Some(descend))
                .build(),
        )
    }

    fn transfer(
        &self,
        dst: &Tree,
        rel: &[u8],
        entry: &Entry,
        old: Option<&Entry>,
        opts: &TransferOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Moved, TransferError> {
        transfer::transfer_file(&self.tree, dst, rel, entry, old, opts, progress)
    }

    fn digest(&self, rel: &[u8]) -> io::Result<[u8; 16]> {
        transfer::file_digest(&self.tree, rel)
    }

    fn estimate(
        &self,
        dst: &Tree,
        rel: &[u8],
        old: Option<&Entry>,
        size: u64,
        opts: &TransferOptions,
    ) -> io::Result<u64> {
        transfer::estimate(&self.tree, dst, rel, old, size, opts)
    }
}
