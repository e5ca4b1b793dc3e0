//! What a user sees and does on the session's X display: clipboard, windows, close buttons, screenshots.
//! Clipboard and screenshots go through the usual tools (xclip, ImageMagick), windows through x11rb.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use x11rb::connection::Connection;
use x11rb::errors::ReplyError;
use x11rb::protocol::xproto::{
    AtomEnum, ClientMessageEvent, ConfigureWindowAux, ConnectionExt, EventMask, MapState, Window,
};
use x11rb::rust_connection::RustConnection;

use crate::session::Session;
use crate::{TIMEOUT, wait_until};

/// Runs `argv` in the session under coreutils `timeout`, so a clipboard owner that never answers fails the
/// call instead of hanging the test.
fn run(session: &Session, argv: &[&str]) -> Output {
    let secs = TIMEOUT.as_secs().to_string();
    let mut cmd: Command = session.command("timeout");
    cmd.args(["-k", "2", &secs]).args(argv).stdin(Stdio::null());
    cmd.output()
        .unwrap_or_else(|e| panic!("run {argv:?} (is it installed?): {e}"))
}

/// The clipboard's text, `None` when nobody owns the clipboard or it is empty.
pub fn clipboard_text(session: &Session) -> Option<String> {
    let out = run(session, &["xclip", "-o", "-selection", "clipboard"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The formats the clipboard owner offers (e.g. `x-kde-passwordManagerHint` next to `UTF8_STRING`).
pub fn clipboard_targets(session: &Session) -> Vec<String> {
    let out = run(session, &["xclip", "-o", "-selection", "clipboard", "-t", "TARGETS"]);
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Owns the clipboard with `text` (as another app would), and returns once it can be read back.
pub fn set_clipboard(session: &Session, text: &str) {
    // -quiet keeps xclip in the foreground instead of forking a server we could not reap; the session
    // stops it, or it exits by itself when another owner takes the clipboard.
    let mut child = session
        .command("xclip")
        .args(["-i", "-selection", "clipboard", "-quiet"])
        .stdin(Stdio::piped())
        // it chats about every request it serves; a failure shows as the wait below timing out
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn xclip (is xclip installed?)");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(text.as_bytes()).expect("write to xclip");
    drop(stdin);
    session.adopt(child);
    wait_until("xclip to own the clipboard", TIMEOUT, || {
        (clipboard_text(session)? == text).then_some(())
    });
}

pub fn connect(session: &Session) -> (RustConnection, Window) {
    let (conn, screen) = x11rb::connect(Some(session.display()))
        .unwrap_or_else(|e| panic!("connect to X display {}: {e}", session.display()));
    let root = conn.setup().roots[screen].root;
    (conn, root)
}

fn atom(conn: &RustConnection, name: &str) -> u32 {
    conn.intern_atom(false, name.as_bytes())
        .map_err(ReplyError::from)
        .and_then(|c| c.reply())
        .unwrap_or_else(|e| panic!("intern atom {name}: {e}"))
        .atom
}

/// The window's title; `None` when it has none (or vanished meanwhile).
fn title(conn: &RustConnection, win: Window) -> Option<String> {
    let prop = |name: u32, ty: u32| {
        let value = conn
            .get_property(false, win, name, ty, 0, u32::MAX)
            .ok()?
            .reply()
            .ok()?
            .value;
        (!value.is_empty()).then(|| String::from_utf8_lossy(&value).into_owned())
    };
    prop(atom(conn, "_NET_WM_NAME"), atom(conn, "UTF8_STRING"))
        .or_else(|| prop(AtomEnum::WM_NAME.into(), AtomEnum::ANY.into()))
}

/// Mapped windows that are not override-redirect (menus and tooltips are): what a user could close.
fn viewable_children(conn: &RustConnection, parent: Window) -> Vec<Window> {
    let Some(tree) = conn.query_tree(parent).ok().and_then(|c| c.reply().ok()) else {
        return Vec::new();
    };
    tree.children
        .into_iter()
        .filter(|&w| {
            let attrs = conn.get_window_attributes(w).ok().and_then(|c| c.reply().ok());
            attrs.is_some_and(|a| a.map_state == MapState::VIEWABLE && !a.override_redirect)
        })
        .collect()
}

/// Top-level windows that are shown, with their titles. Without a window manager they are the root's
/// children; an untitled one is searched one level down, where a reparenting WM would have put the client.
pub fn windows(session: &Session) -> Vec<(u32, String)> {
    let (conn, root) = connect(session);
    let mut out = Vec::new();
    for top in viewable_children(&conn, root) {
        match title(&conn, top) {
            Some(t) => out.push((top, t)),
            None => {
                let inner: Vec<_> = viewable_children(&conn, top)
                    .into_iter()
                    .filter_map(|w| Some((w, title(&conn, w)?)))
                    .collect();
                if inner.is_empty() {
                    out.push((top, String::new()))
                } else {
                    out.extend(inner)
                }
            }
        }
    }
    out
}

/// Moves and resizes a top-level window as a user with a window manager would.
pub fn move_resize(session: &Session, id: u32, x: i32, y: i32, width: u32, height: u32) {
    let (conn, _) = connect(session);
    let aux = ConfigureWindowAux::new().x(x).y(y).width(width).height(height);
    conn.configure_window(id, &aux).expect("configure the window");
    conn.get_input_focus()
        .map_err(ReplyError::from)
        .and_then(|c| c.reply())
        .expect("X round trip after configure");
}

/// The window's size, as the X server has it.
pub fn size(session: &Session, id: u32) -> Option<(u16, u16)> {
    let (conn, _) = connect(session);
    let geometry = conn.get_geometry(id).ok()?.reply().ok()?;
    Some((geometry.width, geometry.height))
}

/// Asks the window to close exactly as a window manager's close button does (WM_DELETE_WINDOW).
pub fn close_window(session: &Session, id: u32) {
    let (conn, _) = connect(session);
    let (protocols, delete) = (atom(&conn, "WM_PROTOCOLS"), atom(&conn, "WM_DELETE_WINDOW"));
    let event = ClientMessageEvent::new(32, id, protocols, [delete, x11rb::CURRENT_TIME, 0, 0, 0]);
    conn.send_event(false, id, EventMask::NO_EVENT, event)
        .expect("send WM_DELETE_WINDOW");
    // A round trip, so the event has reached the server before our connection closes.
    conn.get_input_focus()
        .map_err(ReplyError::from)
        .and_then(|c| c.reply())
        .expect("X round trip after WM_DELETE_WINDOW");
}

/// Saves one window's content to `path` (PNG by its extension).
pub fn screenshot_window(session: &Session, id: u32, path: &Path) {
    let path_str = path.to_str().expect("a UTF-8 screenshot path");
    let id = format!("0x{id:x}");
    let out = run(
        session,
        &["import", "-display", session.display(), "-window", &id, path_str],
    );
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Saves the whole screen to `path` (PNG by its extension), for a human looking at a failure.
pub fn screenshot(session: &Session, path: &Path) {
    let path_str = path.to_str().expect("a UTF-8 screenshot path");
    let out = run(
        session,
        &["import", "-display", session.display(), "-window", "root", path_str],
    );
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
