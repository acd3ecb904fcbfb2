//! The `podkeeper` binary: parse the command line, set up logging, run the command.

use std::io::IsTerminal;

use clap::Parser;
use podkeeper::cli::{self, Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

/// How long an exit waits for queued output to be written.
const OUTPUT_DRAIN: std::time::Duration = std::time::Duration::from_secs(3);

fn main() {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Never panic on a closed stderr: no internal-error eprintln!, and a
        // writer that drops what it cannot write. Never block on a full one:
        // the writer queues (bounded) and a thread of its own writes.
        .log_internal_errors(false)
        // Colour only for a person at a terminal: `2>file` and journald get
        // plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(podkeeper::output::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let code = match cli.command {
        Command::Check(args) => cli::check(&args),
        Command::Adopt(args) => cli::adopt::adopt(&args),
        Command::Completions { shell } => Ok(print(&cli::docs::completions(shell))),
        Command::Manpage => Ok(print(&cli::docs::manpage())),
        Command::Replay(args) => podkeeper::replay::main(args),
        Command::Export(args) => podkeeper::export::main(args),
        Command::Record(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(podkeeper::record::record(args))),
        Command::Status(args) => {
            current_thread().and_then(|rt| rt.block_on(podkeeper::ops::status::status(&args)))
        }
        Command::Metrics(args) => {
            current_thread().and_then(|rt| rt.block_on(podkeeper::ops::status::metrics(&args)))
        }
        Command::Retry(args) => {
            current_thread().and_then(|rt| rt.block_on(podkeeper::ops::status::retry(&args)))
        }
        Command::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(cli::run(args))),
    };
    // What is queued is written before the exit (a reader that never reads
    // costs this limit, no more).
    podkeeper::output::finish(OUTPUT_DRAIN);
    match code {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            podkeeper::report::eprint_line(&format!("podkeeper: {e:#}"));
            std::process::exit(2);
        }
    }
}

/// A one-thread runtime for the control socket's clients.
fn current_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Exit code 0 when `text` reached standard output, 1 when it could not.
fn print(text: &str) -> i32 {
    if podkeeper::report::print_text(text) {
        0
    } else {
        1
    }
}
