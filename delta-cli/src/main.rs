//! `deltasync`: maps command lines onto delta-core and results onto exit codes.

mod args;
mod connect;
mod native;
mod output;
mod rdiff;
mod robocopy;
mod rsync;

use std::process::ExitCode;

fn main() -> ExitCode {
    // Chunk and batch buffers are reused, not handed back to the kernel between files.
    delta_core::memory::keep_freed_memory();
    args::run(std::env::args_os())
}
