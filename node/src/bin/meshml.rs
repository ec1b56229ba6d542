//! The `meshml` command.

use std::process::ExitCode;

use clap::Parser;
use meshml_node::{logging, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::set_up_logging(cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            use std::io::Write;
            // A closed pipe (`meshml ... | head`) is the reader's choice, not a failure.
            let broken_pipe = err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            let mut stderr = std::io::stderr().lock();
            let mut shown = err.to_string();
            let _ = writeln!(stderr, "error: {shown}");
            for cause in err.chain().skip(1) {
                let text = cause.to_string();
                if !shown.contains(&text) {
                    let _ = writeln!(stderr, "  caused by: {text}");
                    shown = text;
                }
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    meshml_node::one_thread_per_task();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    meshml_node::run(cli, &mut out)?;
    Ok(())
}
