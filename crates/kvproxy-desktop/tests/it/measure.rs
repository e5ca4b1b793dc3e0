//! Figures for docs/benchmarks.md, not assertions: memory of the app with and without its window, how soon
//! the tray icon registers, how long a click takes to put a cached token on the clipboard, and how long the
//! window takes from the click to its first painted view. Ignored in `make test`; run on a release build
//! (the tray app starts the window program beside it):
//!
//! ```sh
//! cargo build --release -p kvproxy-desktop -p kvproxy-window
//! KVPROXY_DESKTOP_BIN=target/release/kvproxy-desktop \
//!     cargo test -p kvproxy-desktop --test it measure -- --ignored --nocapture
//! ```

use crate::app::{App, Tenant, is_jwt, store, tray_menu};
use crate::bus::{NotificationServer, TrayHost};
use crate::session::Session;
use crate::{TIMEOUT, wait_until, x11};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The process and everything it started (WebKit's web and network processes), by parent pid.
pub fn process_tree(root: u32) -> Vec<(u32, String)> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // comm may hold spaces and parentheses: the fields after the last ')' are fixed.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let ppid = stat[close + 2..].split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((pid, ppid, comm));
        }
    }
    let mut tree = vec![(root, String::from("kvproxy-desktop"))];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i].0;
        tree.extend(
            parents
                .iter()
                .filter(|(_, ppid, _)| *ppid == parent)
                .map(|(pid, _, comm)| (*pid, comm.clone())),
        );
        i += 1;
    }
    tree
}

fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// PSS summed over the tree once it stops moving (two readings a second apart within 1 %, at most 20 s).
fn settled_pss(root: u32) -> (u64, Vec<(u32, String)>) {
    let read = || {
        let tree = process_tree(root);
        (tree.iter().map(|(pid, _)| pss_kib(*pid)).sum::<u64>(), tree)
    };
    let mut last = read();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_secs(1));
        let now = read();
        let delta = now.0.abs_diff(last.0) as f64 / last.0.max(1) as f64;
        last = now;
        if delta < 0.01 {
            break;
        }
    }
    last
}

/// How long after `since` the app printed its `n`th line starting with `prefix` (polled every millisecond).
fn until_line(app: &App, prefix: &str, n: usize, since: Instant) -> Duration {
    while app.count_lines(prefix) < n {
        assert!(
            since.elapsed() < TIMEOUT * 3,
            "no line #{n} {prefix:?}: {:?}",
            app.lines()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    since.elapsed()
}

/// Each process of the tree with its own PSS in MB, as "name 12.3".
fn per_process(tree: &[(u32, String)]) -> Vec<String> {
    tree.iter()
        .map(|(pid, comm)| format!("{comm} {:.1}", pss_kib(*pid) as f64 / 1024.0))
        .collect()
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[test]
#[ignore = "measurement for docs/benchmarks.md; run with --ignored on a release build"]
fn measure() {
    let binary = std::env::var_os("KVPROXY_DESKTOP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kvproxy-desktop")));
    let session = Session::start();
    let host = TrayHost::serve(&session);
    let _notifications = NotificationServer::serve(&session);
    let tenant = Tenant::start(&session);
    store(&session).upsert(tenant.profile("api"), false).expect("save api");

    let started = Instant::now();
    // KVPROXY_MEASURE_ENV="NAME=VALUE ..." passes extra variables to the app, to compare settings.
    let extra = std::env::var("KVPROXY_MEASURE_ENV").unwrap_or_default();
    let mut env: Vec<(&str, &str)> = vec![("KVPROXY_PORT", "0"), ("KVPROXY_CLIPBOARD_CLEAR_SECS", "0")];
    env.extend(extra.split_whitespace().filter_map(|pair| pair.split_once('=')));
    let app = App::start_binary(&session, &binary, &env);
    host.wait_for_item(TIMEOUT);
    let registered = started.elapsed();
    let menu = tray_menu(&session, &host);
    app.wait_line("ready");

    let (tray_only, tree) = settled_pss(app.pid());
    if let Some(path) = std::env::var_os("KVPROXY_SMAPS") {
        let _ = std::fs::copy(
            format!("/proc/{}/smaps", app.pid()),
            std::path::Path::new(&path).with_extension("tray"),
        );
    }
    let tray_processes = per_process(&tree);

    // The first copy is cold (certificate, sign, token); the rest come from the cache.
    menu.click_label("Copy token — api");
    wait_until("the first token", TIMEOUT, || {
        x11::clipboard_text(&session).filter(|t| is_jwt(t))
    });
    let mut to_line = Vec::new();
    let mut to_clipboard = Vec::new();
    for n in 2..=21 {
        x11::set_clipboard(&session, "-");
        let clicked = Instant::now();
        menu.click_label("Copy token — api");
        while app.count_lines("copied: token for api") < n {
            assert!(clicked.elapsed() < TIMEOUT, "no copy #{n}");
            std::thread::sleep(Duration::from_millis(1));
        }
        to_line.push(clicked.elapsed());
        wait_until("the token", TIMEOUT, || {
            x11::clipboard_text(&session).filter(|t| is_jwt(t))
        });
        to_clipboard.push(clicked.elapsed());
    }

    // A profile saved by another program (here the engine's own store, as the CLI does) reaches the menu.
    let saved = Instant::now();
    store(&session)
        .upsert(tenant.profile("added"), false)
        .expect("save added");
    menu.wait_for_labels(|l| l.iter().any(|x| x == "Copy token — added"), TIMEOUT);
    let menu_follow = saved.elapsed();

    let clicked = Instant::now();
    menu.click_label("Open KeyVault Proxy");
    let first_paint = until_line(&app, "window: painted", 1, clicked);
    let (window, _) = wait_until("the window", TIMEOUT, || {
        x11::windows(&session).into_iter().find(|(_, t)| t == "KeyVault Proxy")
    });
    let (window_open, tree) = settled_pss(app.pid());
    let open_processes = per_process(&tree);
    if let Some(path) = std::env::var_os("KVPROXY_SMAPS") {
        for (pid, comm) in tree.iter().skip(1) {
            let _ = std::fs::copy(
                format!("/proc/{pid}/smaps"),
                std::path::Path::new(&path).with_extension(comm.replace(' ', "_")),
            );
        }
    }
    x11::close_window(&session, window);
    wait_until("the window to close", TIMEOUT, || {
        (!x11::windows(&session).iter().any(|(_, t)| t == "KeyVault Proxy")).then_some(())
    });
    app.wait_line("window: closed");
    wait_until("the window's processes to end", TIMEOUT, || {
        (process_tree(app.pid()).len() == 1).then_some(())
    });
    // "5 s after the window closed", as the figure has always been taken.
    std::thread::sleep(Duration::from_secs(5));
    if let Some(path) = std::env::var_os("KVPROXY_SMAPS") {
        let _ = std::fs::copy(format!("/proc/{}/smaps", app.pid()), path);
    }
    let (after_close, tree) = settled_pss(app.pid());
    let closed_processes = per_process(&tree);

    // The window comes back after its process ended.
    let clicked = Instant::now();
    menu.click_label("Open KeyVault Proxy");
    let second_paint = until_line(&app, "window: painted", 2, clicked);
    let (window, _) = wait_until("the window, again", TIMEOUT, || {
        x11::windows(&session).into_iter().find(|(_, t)| t == "KeyVault Proxy")
    });
    let (reopened, tree) = settled_pss(app.pid());
    let reopened_processes = per_process(&tree);
    if let Some(path) = std::env::var_os("KVPROXY_SCREENSHOT") {
        x11::screenshot(&session, std::path::Path::new(&path));
    }
    x11::close_window(&session, window);

    eprintln!(
        "{}",
        app.stderr()
            .lines()
            .filter(|l| l.starts_with("T "))
            .take(12)
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("binary: {}", binary.display());
    println!("| measure | value |");
    println!("|---|---|");
    println!("| start to tray icon registered | {} ms |", registered.as_millis());
    println!(
        "| click to token copied (cached; app side, median of 20) | {:.1} ms |",
        median(to_line).as_secs_f64() * 1e3
    );
    println!(
        "| click to token readable with xclip (cached; median of 20) | {:.1} ms |",
        median(to_clipboard).as_secs_f64() * 1e3
    );
    println!(
        "| window open click to first paint (first / second opening) | {} ms / {} ms |",
        first_paint.as_millis(),
        second_paint.as_millis()
    );
    println!(
        "| profiles.toml saved to menu item present (50 ms polls) | {} ms |",
        menu_follow.as_millis()
    );
    println!(
        "| memory, tray only (PSS, all processes) | {:.1} MB | {tray_processes:?}",
        tray_only as f64 / 1024.0
    );
    println!(
        "| memory, window open | {:.1} MB | {open_processes:?}",
        window_open as f64 / 1024.0
    );
    println!(
        "| memory, window closed again | {:.1} MB | {closed_processes:?}",
        after_close as f64 / 1024.0
    );
    println!(
        "| memory, window opened again | {:.1} MB | {reopened_processes:?}",
        reopened as f64 / 1024.0
    );
}
