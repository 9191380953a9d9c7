//! Scanning trees: what we know of one entry ([`Entry`]), the one path order used everywhere
//! ([`cmp_paths`]), and the parallel, sorted, bounded-memory walk of a local tree ([`Walk`]).
//!
//! The walk never follows a symlink inside the tree and resolves every name relative to its
//! parent directory's descriptor, so a tree changing under it (a live source) cannot lead it
//! elsewhere; what changes or vanishes meanwhile is reported per entry as a [`ScanError`] and
//! the walk goes on. This module depends on nothing else in the crate.

mod entry;
mod error;
mod sys;
mod walk;

pub use entry::{cmp_paths, Entry, EntryKind, EntryParts, Timestamp};
pub use error::{ScanError, ScanErrorKind, ScanOp};
pub use walk::{DescendFilter, Walk, WalkBuilder};
