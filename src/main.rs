//! The valkit binary: parse arguments, set up logging, run the library, map the result to an
//! exit code (SPEC §6). No logic lives here.

use std::process::ExitCode;

use clap::Parser;
use valkit::{cli, exit, logging};

fn main() -> ExitCode {
    exit::report_panics_as_bugs();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version are not errors; a bad argument is exit 2, as clap intends.
            let _ = err.print();
            return if err.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let printer = cli.printer();
    let result = logging::init(cli.verbosity()).and_then(|()| {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        runtime.block_on(cli::run(cli, printer))
    });
    if let Err(err) = &result {
        if !exit::is_broken_pipe(err) {
            printer.error(err);
        }
    }
    exit::code(&result)
}
