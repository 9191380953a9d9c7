//! Process-level tests of the `deltasync` binary (the one integration binary of delta-cli).

mod util;

mod rdiff_commands;
mod dialect_robocopy;
mod dialect_rsync;
