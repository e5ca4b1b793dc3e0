//! Proves each harness part against small stand-ins for the app, so an app test failing means the app.

use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{AtomEnum, ConnectionExt, CreateWindowAux, PropMode, WindowClass};
use x11rb::wrapper::ConnectionExt as _;
use zbus::interface;
use zbus::zvariant::{OwnedObjectPath, StructureBuilder, Value};

use crate::bus::{MenuItem, NotificationServer, TrayHost, unescape_mnemonic};
use crate::session::Session;
use crate::{TIMEOUT, wait_until, x11};

#[test]
fn harness_session_has_an_unlocked_keyring() {
    let s = Session::start();
    assert!(s.env().contains(&(
        "KVPROXY_CONFIG_DIR".into(),
        s.config_dir().to_string_lossy().into_owned()
    )));
    let secret_tool = |args: &[&str], input: &str| {
        let mut cmd = s.command("secret-tool");
        let spawned = cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn();
        let mut child = spawned.expect("spawn secret-tool (is libsecret-tools installed?)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .expect("write to secret-tool");
        let out = child.wait_with_output().expect("wait for secret-tool");
        assert!(
            out.status.success(),
            "secret-tool {args:?} failed; keyring log:\n{}",
            s.log("gnome-keyring")
        );
        String::from_utf8(out.stdout).expect("UTF-8 from secret-tool")
    };
    secret_tool(&["store", "--label=harness probe", "kvproxy", "probe"], "s3cret");
    assert_eq!(secret_tool(&["lookup", "kvproxy", "probe"], ""), "s3cret");
}

#[test]
fn harness_session_drop_stops_everything() {
    let s = Session::start();
    let dir = s.dir().to_owned();
    let pids = s.daemon_pids();
    assert_eq!(pids.len(), 3, "Xvfb, dbus-daemon and the keyring");
    drop(s);
    assert!(!dir.exists(), "the session dir should be removed");
    // Checked by pid, not by Xvfb's socket: a parallel test may start an Xvfb on the freed display at once.
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "daemon {pid} outlived its session"
        );
    }
}

#[test]
fn harness_mnemonics_are_unescaped() {
    assert_eq!(unescape_mnemonic("my__profile"), "my_profile");
    assert_eq!(unescape_mnemonic("_Quit"), "Quit");
    assert_eq!(unescape_mnemonic("a___b"), "a_b");
}

/// A tray item the way libayatana-appindicator exports one: item and menu on the app's own connection.
struct FakeItem;

#[interface(name = "org.kde.StatusNotifierItem")]
impl FakeItem {
    #[zbus(property)]
    fn menu(&self) -> OwnedObjectPath {
        OwnedObjectPath::try_from(format!("{ITEM_PATH}/Menu")).unwrap()
    }
}

struct FakeMenu {
    clicks: Arc<Mutex<Vec<(i32, String)>>>,
}

type FakeLayout = (i32, HashMap<String, Value<'static>>, Vec<Value<'static>>);

#[interface(name = "com.canonical.dbusmenu")]
impl FakeMenu {
    fn get_layout(&self, _parent: i32, _depth: i32, _props: Vec<String>) -> (u32, FakeLayout) {
        let item = |id: i32, props: &[(&str, Value<'static>)]| {
            let props: HashMap<String, Value> = props.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            let s = StructureBuilder::new()
                .add_field(id)
                .add_field(props)
                .add_field(Vec::<Value>::new());
            Value::from(s.build().unwrap())
        };
        let children = vec![
            item(1, &[("label", "my__profile".into())]),
            item(2, &[("type", "separator".into())]),
            item(3, &[("label", "Disabled".into()), ("enabled", false.into())]),
            item(4, &[("label", "_Quit".into())]),
        ];
        (7, (0, HashMap::new(), children))
    }

    fn about_to_show(&self, _id: i32) -> bool {
        false
    }

    fn event(&self, id: i32, event_id: String, _data: Value<'_>, _timestamp: u32) {
        self.clicks.lock().unwrap().push((id, event_id));
    }
}

const ITEM_PATH: &str = "/org/ayatana/NotificationItem/selftest";

#[test]
fn harness_tray_host_sees_an_item_and_clicks_its_menu() {
    let s = Session::start();
    let host = TrayHost::serve(&s);
    let app = s.bus();
    let clicks = Arc::new(Mutex::new(Vec::new()));
    app.object_server()
        .at(ITEM_PATH, FakeItem)
        .expect("serve the fake item");
    app.object_server()
        .at(format!("{ITEM_PATH}/Menu"), FakeMenu { clicks: clicks.clone() })
        .expect("serve menu");
    let watcher = (
        "org.kde.StatusNotifierWatcher",
        "/StatusNotifierWatcher",
        "org.kde.StatusNotifierWatcher",
    );
    app.call_method(
        Some(watcher.0),
        watcher.1,
        Some(watcher.2),
        "RegisterStatusNotifierItem",
        &ITEM_PATH,
    )
    .expect("RegisterStatusNotifierItem");

    let item = host.wait_for_item(TIMEOUT);
    assert_eq!(item.bus_name, app.unique_name().unwrap().as_str());
    assert_eq!(item.path, ITEM_PATH);

    let menu = item.menu(&s.bus());
    let labels = menu.wait_for_labels(|l| l.iter().any(|l| l == "Quit"), TIMEOUT);
    assert_eq!(labels, ["my_profile", "Disabled", "Quit"]);
    let items = menu.items();
    let sep = MenuItem {
        id: 2,
        label: String::new(),
        enabled: true,
        visible: true,
        separator: true,
    };
    assert_eq!(items[1], sep);
    assert!(!items[2].enabled);

    menu.click_label("my_profile");
    let click = wait_until("the click to reach the menu", TIMEOUT, || {
        clicks.lock().unwrap().first().cloned()
    });
    assert_eq!(click, (1, "clicked".to_owned()));
}

#[test]
fn harness_notification_server_captures_gdbus_notify() {
    let s = Session::start();
    let server = NotificationServer::serve(&s);
    let out = s
        .command("gdbus")
        .args(["call", "--session", "--dest", "org.freedesktop.Notifications"])
        .args([
            "--object-path",
            "/org/freedesktop/Notifications",
            "--method",
            "org.freedesktop.Notifications.Notify",
        ])
        .args([
            "'selftest'",
            "0",
            "''",
            "'Token copied'",
            "'valid until 14:32'",
            "[]",
            "{}",
            "5000",
        ])
        .output()
        .expect("run gdbus (is libglib2.0-bin installed?)");
    assert!(out.status.success(), "gdbus: {}", String::from_utf8_lossy(&out.stderr));
    let n = server.wait_for(|n| n.summary == "Token copied", TIMEOUT);
    assert_eq!(
        (n.app_name.as_str(), n.body.as_str()),
        ("selftest", "valid until 14:32")
    );
    assert_eq!(server.all().len(), 1);
}

#[test]
fn harness_clipboard_round_trip() {
    let s = Session::start();
    assert_eq!(x11::clipboard_text(&s), None, "nothing owns a new display's clipboard");
    x11::set_clipboard(&s, "tok_en 1");
    assert_eq!(x11::clipboard_text(&s).as_deref(), Some("tok_en 1"));
    assert!(x11::clipboard_targets(&s).iter().any(|t| t == "UTF8_STRING"));
    x11::set_clipboard(&s, "second");
    assert_eq!(x11::clipboard_text(&s).as_deref(), Some("second"));
}

#[test]
fn harness_windows_close_and_screenshot() {
    let s = Session::start();
    assert_eq!(x11::windows(&s), [], "an empty Xvfb has no windows");

    // A client window that, like GTK's, asks for WM_DELETE_WINDOW instead of being killed.
    let (conn, root) = x11::connect(&s);
    let win = conn.generate_id().expect("X id");
    let aux = CreateWindowAux::new();
    conn.create_window(0, win, root, 0, 0, 200, 100, 0, WindowClass::INPUT_OUTPUT, 0, &aux)
        .expect("create");
    let intern = |name: &str| conn.intern_atom(false, name.as_bytes()).unwrap().reply().unwrap().atom;
    let (protocols, delete) = (intern("WM_PROTOCOLS"), intern("WM_DELETE_WINDOW"));
    conn.change_property32(PropMode::REPLACE, win, protocols, AtomEnum::ATOM, &[delete])
        .expect("WM_PROTOCOLS");
    conn.change_property8(
        PropMode::REPLACE,
        win,
        intern("_NET_WM_NAME"),
        intern("UTF8_STRING"),
        "Kéy".as_bytes(),
    )
    .expect("_NET_WM_NAME");
    conn.map_window(win).expect("map");
    conn.flush().expect("flush");

    let shown = wait_until("the window to be viewable", TIMEOUT, || {
        Some(x11::windows(&s)).filter(|w| !w.is_empty())
    });
    assert_eq!(shown, [(win, "Kéy".to_owned())]);

    x11::close_window(&s, win);
    wait_until("WM_DELETE_WINDOW to arrive", TIMEOUT, || {
        match conn.poll_for_event().expect("X events") {
            Some(Event::ClientMessage(e)) => (e.type_ == protocols && e.data.as_data32()[0] == delete).then_some(()),
            _ => None,
        }
    });

    let png = s.dir().join("screen.png");
    x11::screenshot(&s, &png);
    let bytes = std::fs::read(&png).expect("read the screenshot");
    assert!(bytes.starts_with(b"\x89PNG"), "the screenshot should be a PNG");
}
