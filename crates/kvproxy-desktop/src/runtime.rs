//! The tokio runtime behind the app's network work. The main thread belongs to the tray's event loop, so
//! work that waits (tokens, the API, the agent) is handed to this runtime from there and from plain threads
//! (the profiles watcher, the clipboard timer).

use std::future::Future;
use std::sync::OnceLock;
use tokio::runtime::{Handle, Runtime};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The runtime of the current context (a test's own), else the app's, made on first use.
pub fn handle() -> Handle {
    Handle::try_current().unwrap_or_else(|_| app_runtime().handle().clone())
}

pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    handle().spawn(future)
}

/// Runs `future` to its end from a thread outside the runtime (the main thread at start and at quit).
pub fn block_on<F: Future>(future: F) -> F::Output {
    app_runtime().block_on(future)
}

fn app_runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        // Two workers: the app serves one user; more threads would only cost memory on large machines.
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kvproxy-rt")
            .enable_all()
            .build()
            .unwrap_or_else(|error| {
                // Without threads or timers nothing in the app can work; there is nothing to fall back to.
                eprintln!("kvproxy-desktop: cannot start the async runtime: {error}");
                std::process::exit(1)
            })
    })
}
