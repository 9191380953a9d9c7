//! Scanning trees (in progress).
