//! Planning a pass: the merge of a source and a destination listing into actions.
//!
//! Both listings arrive sorted by [`crate::scan::cmp_paths`]; [`merge()`] pairs them as a
//! stream, and [`compare`] decides, for one pair, what must happen. Nothing here touches the
//! file system: content comparisons that need reading (`--checksum`) are returned as a
//! question for the executor. Uses [`crate::scan`] and [`crate::exec::meta`] only.

pub mod action;
pub mod compare;
pub mod merge;

pub use action::{Action, ChangeFlags};
pub use compare::{decide, CompareOptions, Decision};
pub use merge::{merge, Pair};
