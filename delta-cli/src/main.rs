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
    args::run(std::env::args_os())
}
