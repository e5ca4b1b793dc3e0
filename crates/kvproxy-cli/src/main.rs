//! `kvproxy`: the command-line face of KeyVault Proxy. Thin: parsing, printing and exit codes here;
//! everything else lives in `kvproxy-core`.

mod args;
mod commands;
mod exit;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = args::Cli::parse();
    if !matches!(args.command, args::Command::Serve(_) | args::Command::Demo(_)) {
        end_quietly_on_closed_stdout();
    }
    init_logging(args.verbose, matches!(args.command, args::Command::Serve(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return std::process::ExitCode::from(exit::LOCAL);
        }
    };
    match runtime.block_on(commands::run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let code = exit::code_for(&e);
            eprintln!("error: {}", exit::one_line(&e));
            std::process::ExitCode::from(code)
        }
    }
}

/// `kvproxy token | head -c 20`: when the reader goes away, the command ends as Unix tools do (SIGPIPE),
/// not with Rust's panic about a failed print. Rust ignores SIGPIPE in every program; the long-running
/// `serve` and `demo` keep that, so a closed stdout never stops a server.
fn end_quietly_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists; it restores the default action
    // for one signal and touches no Rust state.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// `serving`: a server's answers are logged by default, one line each (who asked, for what, the status).
fn init_logging(verbose: u8, serving: bool) {
    let default = match verbose {
        0 if serving => "warn,kvproxy::activity=info",
        0 => "warn",
        1 => "info,kvproxy=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
