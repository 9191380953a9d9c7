//! Executing plans (in progress).
