//! Process-level tests of the `deltasync` binary (the one integration binary of delta-cli).

mod util;

mod dialect_robocopy;
mod dialect_rsync;
mod rdiff_commands;
mod remote_faults;
mod remote_libssh2;
mod remote_rsync;
mod remote_ssh;
mod tree_delete;
mod tree_filters;
mod tree_live;
mod tree_meta;
mod tree_output;
mod tree_peers;
