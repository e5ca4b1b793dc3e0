//! The window is a process of its own (`kvproxy-window`, beside this program), started when the user asks
//! for it and gone when they close it: the web view's libraries and memory never enter the tray process.
//! It gets everything from this process over the desktop socket; this module starts it, keeps it single,
//! and sends it its events.

use kvproxy_server::agent::DESKTOP_SOCKET_ENV;
use kvproxy_server::agent::protocol::WindowEvent;
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// The window program's name, beside this one.
pub const WINDOW_PROGRAM: &str = "kvproxy-window";

/// A window process that started but has not attached yet is left to come up for this long before another
/// click starts a new one (a slow first start of WebKit on a loaded machine takes seconds).
const STARTING: Duration = Duration::from_secs(15);

pub struct WindowProcess {
    socket: PathBuf,
    state: Mutex<State>,
    /// Called once the window has gone (closing it quits the app when there is no tray).
    on_closed: Arc<dyn Fn() + Send + Sync>,
}

#[derive(Default)]
struct State {
    /// The attached window's events; closed once its connection ends.
    events: Option<UnboundedSender<WindowEvent>>,
    /// The process this app started last, while it runs.
    started: Option<(Instant, Arc<AtomicBool>)>,
}

impl WindowProcess {
    pub fn new(socket: PathBuf, on_closed: impl Fn() + Send + Sync + 'static) -> Self {
        Self {
            socket,
            state: Mutex::new(State::default()),
            on_closed: Arc::new(on_closed),
        }
    }

    /// Brings the open window to the front, or starts one.
    pub fn show(&self) {
        let mut state = self.state.lock();
        if let Some(events) = state.events.as_ref().filter(|e| !e.is_closed()) {
            let _ = events.send(WindowEvent::Show);
            return;
        }
        if let Some((at, running)) = &state.started
            && running.load(Ordering::SeqCst)
            && at.elapsed() < STARTING
        {
            return;
        }
        match self.start() {
            Ok(running) => state.started = Some((Instant::now(), running)),
            Err(error) => {
                tracing::error!("could not start the window: {error}");
                eprintln!("kvproxy-desktop: could not start the window: {error}");
                crate::notify::show("The window could not open", &error);
            }
        }
    }

    fn start(&self) -> Result<Arc<AtomicBool>, String> {
        let program = window_program()?;
        let mut child = std::process::Command::new(&program)
            .env(DESKTOP_SOCKET_ENV, &self.socket)
            .stdin(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", program.display()))?;
        crate::say(format!("window: starting (pid {})", child.id()));
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        let on_closed = self.on_closed.clone();
        // Waited for, so it leaves no zombie behind, and so a click after a crash starts a new one at once.
        std::thread::Builder::new()
            .name("window-wait".into())
            .spawn(move || {
                let status = child.wait();
                flag.store(false, Ordering::SeqCst);
                // A window that failed (no display, no web view runtime, a crash) may never have attached, so
                // its end would go unnoticed: without a tray that would leave an app nobody can reach.
                if !status.as_ref().is_ok_and(|s| s.success()) {
                    eprintln!("kvproxy-desktop: the window program ended with {status:?}");
                    on_closed();
                }
            })
            .map_err(|e| format!("could not watch the window process: {e}"))?;
        Ok(running)
    }

    /// A window process says it is there. `None` when another one is open: that one is shown instead.
    pub fn attach(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<WindowEvent>> {
        let mut state = self.state.lock();
        if let Some(events) = state.events.as_ref().filter(|e| !e.is_closed()) {
            let _ = events.send(WindowEvent::Show);
            return None;
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        state.events = Some(tx);
        crate::say("window: open");
        Some(rx)
    }

    /// The attached window's connection ended.
    pub fn detached(&self) {
        let gone = {
            let mut state = self.state.lock();
            let gone = state.events.as_ref().is_some_and(|e| e.is_closed());
            if gone {
                state.events = None;
            }
            gone
        };
        if gone {
            crate::say("window: closed");
            (self.on_closed)();
        }
    }

    /// Tells the open window (if any) to fetch fresh views.
    pub fn changed(&self) {
        if let Some(events) = &self.state.lock().events {
            let _ = events.send(WindowEvent::Changed);
        }
    }

    #[cfg(test)]
    fn is_open(&self) -> bool {
        self.state.lock().events.as_ref().is_some_and(|e| !e.is_closed())
    }
}

/// `kvproxy-window` beside this program (`KVPROXY_WINDOW_BIN` to use another build).
fn window_program() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("KVPROXY_WINDOW_BIN").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot tell where this program is: {e}"))?;
    let program = exe.with_file_name(format!("{WINDOW_PROGRAM}{}", std::env::consts::EXE_SUFFIX));
    if program.exists() {
        Ok(program)
    } else {
        Err(format!(
            "{} is missing; reinstall KeyVault Proxy (from a checkout: cargo build -p kvproxy-window)",
            program.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn one_window_at_a_time_and_its_end_is_reported_once() {
        let closed = Arc::new(AtomicUsize::new(0));
        let counter = closed.clone();
        let window = WindowProcess::new(PathBuf::from("/nonexistent/desktop.sock"), move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let mut first = window.attach().expect("the first window attaches");
        assert!(window.is_open());
        assert!(window.attach().is_none(), "a second window is turned away");
        assert_eq!(
            first.try_recv().ok(),
            Some(WindowEvent::Show),
            "and the open one comes forward"
        );
        window.changed();
        assert_eq!(first.try_recv().ok(), Some(WindowEvent::Changed));

        // A connection that ends while the window's channel is still held is not the window going.
        window.detached();
        assert_eq!(closed.load(Ordering::SeqCst), 0);
        drop(first);
        window.detached();
        assert_eq!(closed.load(Ordering::SeqCst), 1);
        assert!(!window.is_open());
        window.detached();
        assert_eq!(closed.load(Ordering::SeqCst), 1, "reported once");
        assert!(
            window.attach().is_some(),
            "a new window attaches once the first has gone"
        );
    }
}
