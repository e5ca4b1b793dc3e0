//! The desktop services the app talks to, played by the test on the session's private bus: a tray host
//! (StatusNotifierWatcher, then the item's dbusmenu read and clicked as a panel does) and a notification server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use zbus::blocking::Connection;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{DynamicType, OwnedObjectPath, OwnedValue, Value};
use zbus::{Message, fdo, interface};

use crate::session::Session;
use crate::{try_wait_until, wait_until};

/// Serves `iface` at `path` under the well-known `name` on a connection of its own, so the name goes away
/// with the returned connection.
fn serve<I: zbus::object_server::Interface>(session: &Session, name: &str, path: &str, iface: I) -> Connection {
    zbus::blocking::connection::Builder::address(session.bus_address())
        .and_then(|b| b.serve_at(path, iface))
        .and_then(|b| b.name(name.to_owned()))
        .and_then(|b| b.build())
        .unwrap_or_else(|e| panic!("serve {name} on the private bus: {e}"))
}

// ---------------------------------------------------------------------------------------------------------
// Tray

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrayItem {
    pub bus_name: String,
    pub path: String,
}

struct Watcher {
    items: Arc<Mutex<Vec<TrayItem>>>,
}

#[interface(name = "org.kde.StatusNotifierWatcher")]
impl Watcher {
    async fn register_status_notifier_item(
        &self,
        service: &str,
        #[zbus(header)] header: Header<'_>,
        #[zbus(signal_emitter)] emitter: SignalEmitter<'_>,
    ) -> fdo::Result<()> {
        // libayatana-appindicator sends its object path; the spec's other form is a bus name.
        let sender = header
            .sender()
            .ok_or_else(|| fdo::Error::Failed("no sender".into()))?
            .to_string();
        let (bus_name, path) = match service.starts_with('/') {
            true => (sender, service.to_owned()),
            false => (service.to_owned(), "/StatusNotifierItem".to_owned()),
        };
        let item = TrayItem { bus_name, path };
        let id = format!("{}{}", item.bus_name, item.path);
        self.items.lock().unwrap().push(item);
        Self::status_notifier_item_registered(&emitter, &id).await?;
        Ok(())
    }

    fn register_status_notifier_host(&self, _service: &str) {}

    #[zbus(property)]
    fn registered_status_notifier_items(&self) -> Vec<String> {
        self.items
            .lock()
            .unwrap()
            .iter()
            .map(|i| format!("{}{}", i.bus_name, i.path))
            .collect()
    }

    /// Apps only show a tray icon when a host (a panel) is said to be there.
    #[zbus(property)]
    fn is_status_notifier_host_registered(&self) -> bool {
        true
    }

    #[zbus(property)]
    fn protocol_version(&self) -> i32 {
        0
    }

    #[zbus(signal)]
    async fn status_notifier_item_registered(emitter: &SignalEmitter<'_>, service: &str) -> zbus::Result<()>;
}

/// Plays the panel: owns `org.kde.StatusNotifierWatcher` while it lives.
pub struct TrayHost {
    conn: Connection,
    items: Arc<Mutex<Vec<TrayItem>>>,
}

impl TrayHost {
    pub fn serve(session: &Session) -> TrayHost {
        let items = Arc::new(Mutex::new(Vec::new()));
        let watcher = Watcher { items: items.clone() };
        let conn = serve(
            session,
            "org.kde.StatusNotifierWatcher",
            "/StatusNotifierWatcher",
            watcher,
        );
        TrayHost { conn, items }
    }

    /// The latest registered item whose owner is still on the bus (a restarted app registers anew).
    pub fn wait_for_item(&self, timeout: Duration) -> TrayItem {
        let dbus = zbus::blocking::fdo::DBusProxy::new(&self.conn).expect("org.freedesktop.DBus proxy");
        wait_until("a StatusNotifierItem to register", timeout, || {
            let items = self.items.lock().unwrap().clone();
            items.into_iter().rev().find(|i| {
                let name = i.bus_name.as_str().try_into().expect("a registered bus name");
                dbus.name_has_owner(name).unwrap_or(false)
            })
        })
    }
}

impl TrayItem {
    /// The item's menu: its `Menu` property, or ayatana's `<path>/Menu` when it has none.
    pub fn menu(&self, conn: &Connection) -> DbusMenu {
        let (dest, props) = (Some(self.bus_name.as_str()), Some("org.freedesktop.DBus.Properties"));
        let get = conn.call_method(
            dest,
            self.path.as_str(),
            props,
            "Get",
            &("org.kde.StatusNotifierItem", "Menu"),
        );
        let menu = get.and_then(|m| m.body().deserialize::<OwnedValue>()).ok();
        let menu = menu
            .and_then(|v| OwnedObjectPath::try_from(v).ok())
            .map(|p| p.to_string());
        let path = menu.unwrap_or_else(|| format!("{}/Menu", self.path));
        DbusMenu {
            conn: conn.clone(),
            dest: self.bus_name.clone(),
            path,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MenuItem {
    pub id: i32,
    /// Without GTK's mnemonic escapes: what the user reads.
    pub label: String,
    pub enabled: bool,
    pub visible: bool,
    pub separator: bool,
}

pub struct DbusMenu {
    conn: Connection,
    dest: String,
    path: String,
}

/// `(id, properties, children)`; each child is a variant holding the same structure.
type Layout = (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>);

impl DbusMenu {
    fn call<B: serde::Serialize + DynamicType>(&self, method: &str, body: &B) -> zbus::Result<Message> {
        let (dest, path) = (Some(self.dest.as_str()), self.path.as_str());
        self.conn
            .call_method(dest, path, Some("com.canonical.dbusmenu"), method, body)
    }

    /// Every item in display order; a submenu's items follow the submenu's own entry.
    pub fn items(&self) -> Vec<MenuItem> {
        self.try_items()
            .unwrap_or_else(|e| panic!("GetLayout on {} {}: {e}", self.dest, self.path))
    }

    fn try_items(&self) -> zbus::Result<Vec<MenuItem>> {
        let no_props: Vec<&str> = Vec::new();
        let reply = self.call("GetLayout", &(0i32, -1i32, no_props))?;
        let (_revision, (_root, _, children)): (u32, Layout) = reply.body().deserialize()?;
        let mut out = Vec::new();
        flatten(children, &mut out)?;
        Ok(out)
    }

    /// Labels of the visible, non-separator items: what a user would see.
    fn labels(&self) -> Option<Vec<String>> {
        let items = self.try_items().ok()?.into_iter();
        Some(items.filter(|i| i.visible && !i.separator).map(|i| i.label).collect())
    }

    /// Polls until `pred` holds for the labels (menus are rebuilt asynchronously) and returns them.
    pub fn wait_for_labels(&self, pred: impl Fn(&[String]) -> bool, timeout: Duration) -> Vec<String> {
        let mut last = None;
        let found = try_wait_until(timeout, || {
            last = self.labels();
            last.clone().filter(|l| pred(l))
        });
        found.unwrap_or_else(|| panic!("menu labels never matched within {timeout:?}; last seen: {last:?}"))
    }

    /// Clicks the item labelled exactly `label`, the way a panel does.
    pub fn click_label(&self, label: &str) {
        // The app rebuilds its menu whenever its state changes, which gives every item a new id. A panel
        // re-reads the layout when told so (`LayoutUpdated`); here, a click that names an id the menu no
        // longer has reads the layout again and clicks the item by its new id.
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let items = self.items();
            let item = items.iter().find(|i| i.label == label).unwrap_or_else(|| {
                let labels: Vec<_> = items.iter().map(|i| &i.label).collect();
                panic!("no menu item labelled {label:?}; labels: {labels:?}")
            });
            self.call("AboutToShow", &0i32).expect("AboutToShow(0)");
            match self.call("Event", &(item.id, "clicked", Value::I32(0), 0u32)) {
                Ok(_) => return,
                // An item that ends the app (Quit) can take it off the bus before its reply is sent; the
                // caller checks what the click did (the exit status), so only that error is let through.
                Err(zbus::Error::MethodError(name, _, _)) if name.as_str() == "org.freedesktop.DBus.Error.NoReply" => {
                    return;
                }
                Err(e) if attempt < ATTEMPTS && e.to_string().contains("does not refer to a menu item") => {}
                Err(e) => panic!("Event({}, clicked) on {label:?}: {e}", item.id),
            }
        }
    }
}

fn flatten(children: Vec<OwnedValue>, out: &mut Vec<MenuItem>) -> zbus::Result<()> {
    for child in children {
        // Elements of `av` may arrive still wrapped in their variant.
        let child = match &*child {
            Value::Value(inner) => OwnedValue::try_from(&**inner)?,
            _ => child,
        };
        let (id, props, grandchildren) = Layout::try_from(child)?;
        let text = |k: &str| {
            props
                .get(k)
                .and_then(|v| String::try_from(&**v).ok())
                .unwrap_or_default()
        };
        // dbusmenu omits properties that have their default value (enabled and visible default to true).
        let flag = |k: &str| props.get(k).and_then(|v| bool::try_from(&**v).ok()).unwrap_or(true);
        out.push(MenuItem {
            id,
            label: unescape_mnemonic(&text("label")),
            enabled: flag("enabled"),
            visible: flag("visible"),
            separator: text("type") == "separator",
        });
        flatten(grandchildren, out)?;
    }
    Ok(())
}

/// GTK sends `_` as `__`, and a lone `_` marks the next character as the access key.
pub fn unescape_mnemonic(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    let mut chars = label.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '_' if chars.next_if_eq(&'_').is_some() => out.push('_'),
            '_' => {}
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// Notifications

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// The id the server gave it.
    pub id: u32,
    pub app_name: String,
    pub summary: String,
    pub body: String,
    /// Its buttons, as (action key, label).
    pub actions: Vec<(String, String)>,
}

struct Notifications {
    seen: Arc<Mutex<Vec<Notification>>>,
    closed: Arc<Mutex<Vec<u32>>>,
    capabilities: Vec<&'static str>,
}

#[interface(name = "org.freedesktop.Notifications")]
impl Notifications {
    #[allow(clippy::too_many_arguments)] // the spec's signature
    fn notify(
        &self,
        app_name: String,
        replaces_id: u32,
        app_icon: String,
        summary: String,
        body: String,
        actions: Vec<String>,
        hints: HashMap<String, OwnedValue>,
        expire_timeout: i32,
    ) -> u32 {
        let _ = (app_icon, hints, expire_timeout);
        let mut seen = self.seen.lock().unwrap();
        let id = match replaces_id {
            0 => seen.len() as u32 + 1,
            id => id,
        };
        let actions = actions
            .chunks(2)
            .map(|pair| (pair[0].clone(), pair.get(1).cloned().unwrap_or_default()))
            .collect();
        seen.push(Notification {
            id,
            app_name,
            summary,
            body,
            actions,
        });
        id
    }

    fn get_capabilities(&self) -> Vec<&str> {
        self.capabilities.clone()
    }

    #[zbus(out_args("name", "vendor", "version", "spec_version"))]
    fn get_server_information(&self) -> (&str, &str, &str, &str) {
        ("kvproxy-it", "kvproxy", "0", "1.2")
    }

    async fn close_notification(&self, id: u32, #[zbus(signal_emitter)] emitter: SignalEmitter<'_>) -> fdo::Result<()> {
        const CLOSED_BY_CALL: u32 = 3;
        self.closed.lock().unwrap().push(id);
        Self::notification_closed(&emitter, id, CLOSED_BY_CALL).await?;
        Ok(())
    }

    #[zbus(signal)]
    async fn notification_closed(emitter: &SignalEmitter<'_>, id: u32, reason: u32) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn action_invoked(emitter: &SignalEmitter<'_>, id: u32, action_key: &str) -> zbus::Result<()>;
}

/// Owns `org.freedesktop.Notifications` while it lives: notify-rust drops notifications nobody owns.
pub struct NotificationServer {
    conn: Connection,
    seen: Arc<Mutex<Vec<Notification>>>,
    closed: Arc<Mutex<Vec<u32>>>,
}

const NOTIFICATIONS_PATH: &str = "/org/freedesktop/Notifications";

impl NotificationServer {
    /// A server that shows text only, as many minimal ones do.
    pub fn serve(session: &Session) -> NotificationServer {
        Self::serve_with(session, vec!["body"])
    }

    /// A server with buttons (the spec's `actions` capability), as GNOME's and KDE's are.
    pub fn serve_with_buttons(session: &Session) -> NotificationServer {
        Self::serve_with(session, vec!["actions", "body"])
    }

    fn serve_with(session: &Session, capabilities: Vec<&'static str>) -> NotificationServer {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(Mutex::new(Vec::new()));
        let iface = Notifications {
            seen: seen.clone(),
            closed: closed.clone(),
            capabilities,
        };
        let conn = serve(session, "org.freedesktop.Notifications", NOTIFICATIONS_PATH, iface);
        NotificationServer { conn, seen, closed }
    }

    /// Clicks the button `action` of notification `id`, as the user would.
    pub fn click(&self, id: u32, action: &str) {
        let iface = self
            .conn
            .object_server()
            .interface::<_, Notifications>(NOTIFICATIONS_PATH)
            .expect("the notification server's interface");
        zbus::block_on(Notifications::action_invoked(iface.signal_emitter(), id, action)).expect("emit ActionInvoked");
    }

    /// The notifications the app took back (CloseNotification).
    pub fn closed(&self) -> Vec<u32> {
        self.closed.lock().unwrap().clone()
    }

    pub fn all(&self) -> Vec<Notification> {
        self.seen.lock().unwrap().clone()
    }

    /// The first notification (oldest first) for which `pred` holds, waiting for it if need be.
    pub fn wait_for(&self, pred: impl Fn(&Notification) -> bool, timeout: Duration) -> Notification {
        let mut last = Vec::new();
        let found = try_wait_until(timeout, || {
            last = self.all();
            last.iter().find(|n| pred(n)).cloned()
        });
        found.unwrap_or_else(|| panic!("no matching notification within {timeout:?}; got: {last:?}"))
    }
}
