//! Events and the report of a pass run on the far side, carried to the client that renders
//! them (JSON inside `Event` and `Report` messages).

use serde::{Deserialize, Serialize};

use crate::exec::report::{Change, Event, Problem};
use crate::plan::{Action, ChangeFlags};
use crate::scan::EntryKind;

/// An owned [`Event`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum EventRecord {
    /// [`Event::Changed`].
    Changed {
        /// Path.
        path: Vec<u8>,
        /// Kind.
        kind: EntryKind,
        /// Action.
        action: Action,
        /// Flags.
        flags: ChangeFlags,
        /// Size.
        size: u64,
        /// Literal bytes.
        literal: u64,
        /// Matched bytes.
        matched: u64,
        /// Link target.
        target: Option<Vec<u8>>,
    },
    /// [`Event::Unchanged`].
    Unchanged(Vec<u8>),
    /// [`Event::TransferStarted`].
    Started {
        /// Path.
        path: Vec<u8>,
        /// Size.
        size: u64,
    },
    /// [`Event::Progress`].
    Progress(u64),
    /// [`Event::Problem`].
    Problem {
        /// Path.
        path: Vec<u8>,
        /// Category.
        problem: Problem,
        /// Explanation.
        message: String,
    },
    /// [`Event::Notice`].
    Notice(String),
}

impl EventRecord {
    /// The owned form of an event.
    pub fn of(e: &Event<'_>) -> Option<Self> {
        #[allow(unreachable_patterns)] // Event is non_exhaustive for other crates only
        Some(match *e {
            Event::Changed(c) => EventRecord::Changed {
                path: c.path.to_vec(),
                kind: c.kind,
                action: c.action,
                flags: c.flags,
                size: c.size,
                literal: c.literal,
                matched: c.matched,
                target: c.target.map(<[u8]>::to_vec),
            },
            Event::Unchanged(p) => EventRecord::Unchanged(p.to_vec()),
            Event::TransferStarted { path, size } => EventRecord::Started {
                path: path.to_vec(),
                size,
            },
            Event::Progress { bytes } => EventRecord::Progress(bytes),
            Event::Problem {
                path,
                problem,
                message,
            } => EventRecord::Problem {
                path: path.to_vec(),
                problem,
                message: message.to_string(),
            },
            Event::Notice(n) => EventRecord::Notice(n.to_string()),
        })
    }

    /// Hands the event to `f` as a borrowed [`Event`].
    pub fn emit(&self, f: &dyn Fn(&Event<'_>)) {
        match self {
            EventRecord::Changed {
                path,
                kind,
                action,
                flags,
                size,
                literal,
                matched,
                target,
            } => f(&Event::Changed(Change {
                path,
                kind: *kind,
                action: *action,
                flags: *flags,
                size: *size,
                literal: *literal,
                matched: *matched,
                target: target.as_deref(),
            })),
            EventRecord::Unchanged(p) => f(&Event::Unchanged(p)),
            EventRecord::Started { path, size } => f(&Event::TransferStarted { path, size: *size }),
            EventRecord::Progress(b) => f(&Event::Progress { bytes: *b }),
            EventRecord::Problem {
                path,
                problem,
                message,
            } => f(&Event::Problem {
                path,
                problem: *problem,
                message,
            }),
            EventRecord::Notice(n) => f(&Event::Notice(n)),
        }
    }

    /// JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// From JSON bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(b)
    }
}
