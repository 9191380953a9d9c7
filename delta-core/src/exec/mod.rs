//! Executing a plan against the trees: per-file transfers ([`transfer`]), metadata
//! ([`meta`]), and the events and counters of a pass ([`report`]).

pub mod meta;
pub mod report;
pub mod transfer;

pub use report::{Callback, Change, Event, Outcome, Problem, Report, Stats};
