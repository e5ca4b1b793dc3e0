//! Ends WebKit's helper processes once the window is gone.
//!
//! WebKitGTK runs each page in a web process, which ends with the page, and the network stack in a network
//! process, which lives as long as the web context; Tauri keeps that context for the life of the app. For a
//! tray app that opens its window now and then, that would keep about 60 MB alive all day for nothing. With no
//! window left, the network process has nothing to serve, so it is ended; WebKit starts a new one when the
//! next window needs it.

/// WebKit hands a new helper its sandbox and ids over a socket right after starting it, and treats a helper
/// that dies during that handshake as fatal; so only a helper that has been up this long is ended.
#[cfg(target_os = "linux")]
const SETTLED: std::time::Duration = std::time::Duration::from_secs(2);

/// Once no window is left, sends SIGTERM to the app's own WebKit network process(es) (children of this
/// process only). Waits out [`SETTLED`] first, and gives up if a window opens meanwhile.
#[cfg(target_os = "linux")]
pub fn end_idle_network_process(app: tauri::AppHandle) {
    use tauri::Manager;
    let spawned = std::thread::Builder::new().name("webkit-idle".into()).spawn(move || {
        std::thread::sleep(SETTLED);
        if !app.webview_windows().is_empty() {
            return;
        }
        for pid in network_processes() {
            if age(pid).is_some_and(|age| age >= SETTLED) {
                // SAFETY: kill(2) on a pid just read as our own child, with a plain termination signal.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
                crate::say("window: closed, WebKit network process ended");
            }
        }
    });
    if let Err(error) = spawned {
        tracing::warn!("could not start the idle-helper cleanup: {error}");
    }
}

#[cfg(target_os = "linux")]
fn network_processes() -> Vec<i32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| stat_field(*pid, 1).and_then(|p| p.parse::<u32>().ok()) == Some(me))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .ok()
                .and_then(|cmd| {
                    cmd.split(|b| *b == 0)
                        .next()
                        .map(|exe| exe.ends_with(b"WebKitNetworkProcess"))
                })
                .unwrap_or(false)
        })
        .collect()
}

/// How long the process has run: its start time (field 22 of `stat`, in clock ticks since boot) against the
/// system's uptime.
#[cfg(target_os = "linux")]
fn age(pid: i32) -> Option<std::time::Duration> {
    // SAFETY: sysconf only reads a system constant.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let started: f64 = stat_field(pid, 19)?.parse::<u64>().ok()? as f64 / ticks_per_second.max(1) as f64;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    Some(std::time::Duration::from_secs_f64((uptime - started).max(0.0)))
}

/// Field `index` of `/proc/PID/stat`, counting from the state field after the command name (which may hold
/// spaces and parentheses, so it is skipped by its last ')'): 0 = state, 1 = parent pid, 19 = start time.
#[cfg(target_os = "linux")]
fn stat_field(pid: i32, index: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    rest.split(' ').nth(index).map(str::to_string)
}

/// Other platforms' webviews manage their helpers themselves.
#[cfg(not(target_os = "linux"))]
pub fn end_idle_network_process(_app: tauri::AppHandle) {}
