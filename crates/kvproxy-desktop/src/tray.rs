//! The tray icon, its menu built from [`crate::menu`], and the loop that handles its clicks on the main
//! thread.
//!
//! On Linux the icon is a StatusNotifierItem spoken over D-Bus by `ksni` from a thread of its own, so no GUI
//! toolkit is loaded and the main thread only waits on a channel. Windows and macOS want a native event loop
//! on the thread that owns the icon: there the icon and menu are `tray-icon`'s and `muda`'s, and the loop is
//! `tao`'s.

use crate::menu::{self, Action};
use crate::state::Desktop;

/// The icon's id. Fixed, so the item a panel shows is the same app across restarts.
pub const TRAY_ID: &str = "kvproxy";

const TRAY_PNG: &[u8] = include_bytes!("../../../icons/tray.png");

/// What the main thread's loop handles.
#[derive(Debug)]
pub enum UiEvent {
    /// A menu item was clicked: its id.
    Menu(String),
    /// The icon itself was clicked (Windows, macOS; Linux panels open the menu instead).
    IconClicked,
    /// Profiles or the API changed: rebuild the menu.
    Refresh,
    Quit,
}

/// Sends events to the main thread's loop from any thread.
#[derive(Clone)]
pub struct UiSender {
    #[cfg(target_os = "linux")]
    inner: std::sync::mpsc::Sender<UiEvent>,
    #[cfg(not(target_os = "linux"))]
    inner: std::sync::Arc<parking_lot::Mutex<tao::event_loop::EventLoopProxy<UiEvent>>>,
}

impl UiSender {
    pub fn send(&self, event: UiEvent) {
        #[cfg(target_os = "linux")]
        let sent = self.inner.send(event).is_ok();
        #[cfg(not(target_os = "linux"))]
        let sent = self.inner.lock().send_event(event).is_ok();
        if !sent {
            tracing::debug!("the tray loop has ended");
        }
    }
}

/// The main thread's loop, made before anything that sends to it.
pub struct UiLoop {
    #[cfg(target_os = "linux")]
    events: std::sync::mpsc::Receiver<UiEvent>,
    #[cfg(not(target_os = "linux"))]
    event_loop: tao::event_loop::EventLoop<UiEvent>,
}

impl UiLoop {
    pub fn new() -> (UiLoop, UiSender) {
        #[cfg(target_os = "linux")]
        {
            let (tx, rx) = std::sync::mpsc::channel();
            (UiLoop { events: rx }, UiSender { inner: tx })
        }
        #[cfg(not(target_os = "linux"))]
        {
            #[allow(unused_mut)]
            let mut event_loop = tao::event_loop::EventLoopBuilder::<UiEvent>::with_user_event().build();
            // A menu-bar app: no Dock icon and no menu bar of its own (the window's process has those).
            #[cfg(target_os = "macos")]
            {
                use tao::platform::macos::{ActivationPolicy, EventLoopExtMacOS};
                event_loop.set_activation_policy(ActivationPolicy::Accessory);
            }
            let proxy = event_loop.create_proxy();
            (
                UiLoop { event_loop },
                UiSender {
                    inner: std::sync::Arc::new(parking_lot::Mutex::new(proxy)),
                },
            )
        }
    }

    /// Runs until Quit: shows the icon (when `with_tray`), handles clicks, rebuilds the menu when told, and
    /// then calls `on_quit`. Does not return on Windows and macOS, whose loops end the process.
    pub fn run(self, desktop: Desktop, with_tray: bool, sender: UiSender, on_quit: impl FnOnce() + 'static) {
        let mut tray = Tray {
            desktop,
            icon: None,
            with_tray,
            sender,
        };
        #[cfg(target_os = "linux")]
        {
            tray.start();
            while let Ok(event) = self.events.recv() {
                if tray.handle(event) {
                    break;
                }
            }
            drop(tray);
            on_quit();
        }
        #[cfg(not(target_os = "linux"))]
        {
            use tao::event::{Event, StartCause};
            use tao::event_loop::ControlFlow;
            let mut on_quit = Some(on_quit);
            self.event_loop.run(move |event, _, flow| {
                *flow = ControlFlow::Wait;
                match event {
                    // macOS: an icon made before the loop runs is not shown.
                    Event::NewEvents(StartCause::Init) => tray.start(),
                    Event::UserEvent(event) => {
                        let quit = tray.handle(event);
                        *flow = if quit { ControlFlow::Exit } else { ControlFlow::Wait };
                    }
                    Event::LoopDestroyed => {
                        tray.icon = None;
                        if let Some(on_quit) = on_quit.take() {
                            on_quit();
                        }
                    }
                    _ => {}
                }
            });
        }
    }
}

struct Tray {
    desktop: Desktop,
    icon: Option<platform::Icon>,
    with_tray: bool,
    sender: UiSender,
}

impl Tray {
    fn start(&mut self) {
        if !self.with_tray {
            return;
        }
        let entries = menu::build(&self.desktop.menu_profiles(), self.desktop.api_state());
        match platform::show(entries, self.sender.clone()) {
            Ok(icon) => {
                self.icon = Some(icon);
                crate::say("tray: icon shown");
            }
            Err(error) => {
                eprintln!("kvproxy-desktop: the tray icon could not be made: {error}");
                self.desktop.notice(
                    crate::state::Level::Error,
                    "No tray icon",
                    format!("{error}. This window is the way in."),
                );
                self.desktop.perform(Action::OpenWindow);
            }
        }
    }

    /// True when the loop should end.
    fn handle(&mut self, event: UiEvent) -> bool {
        match event {
            UiEvent::Menu(id) => match menu::action(&id) {
                Some(Action::Quit) => return true,
                Some(action) => self.desktop.perform(action),
                None => tracing::debug!(id, "menu event for an unknown item"),
            },
            UiEvent::IconClicked => {
                let default = self.desktop.menu_profiles().into_iter().find(|p| p.is_default);
                self.desktop.perform(match default {
                    Some(profile) => Action::CopyToken(profile.name),
                    None => Action::OpenWindow,
                });
            }
            UiEvent::Refresh => {
                if let Some(icon) = &mut self.icon {
                    platform::set_menu(
                        icon,
                        menu::build(&self.desktop.menu_profiles(), self.desktop.api_state()),
                    );
                }
            }
            UiEvent::Quit => return true,
        }
        false
    }
}

/// The icon and its menu over D-Bus (StatusNotifierItem and com.canonical.dbusmenu).
#[cfg(target_os = "linux")]
mod platform {
    use super::{TRAY_ID, UiEvent, UiSender};
    use crate::menu::MenuEntry;
    use ksni::blocking::{Handle, TrayMethods};

    pub type Icon = Handle<Item>;

    pub struct Item {
        entries: Vec<MenuEntry>,
        sender: UiSender,
        /// ARGB32 in network byte order, as the protocol wants it.
        pixmap: ksni::Icon,
    }

    impl ksni::Tray for Item {
        fn id(&self) -> String {
            TRAY_ID.into()
        }

        fn title(&self) -> String {
            "KeyVault Proxy".into()
        }

        fn icon_pixmap(&self) -> Vec<ksni::Icon> {
            vec![self.pixmap.clone()]
        }

        fn tool_tip(&self) -> ksni::ToolTip {
            ksni::ToolTip {
                title: "KeyVault Proxy".into(),
                ..Default::default()
            }
        }

        /// A left click where the panel reports one (KDE): the default profile's token, as on Windows.
        fn activate(&mut self, _x: i32, _y: i32) {
            self.sender.send(UiEvent::IconClicked);
        }

        fn menu(&self) -> Vec<ksni::MenuItem<Self>> {
            self.entries
                .iter()
                .map(|entry| match entry {
                    MenuEntry::Item { id, label } => {
                        let id = id.clone();
                        ksni::menu::StandardItem {
                            // dbusmenu reads `_` as a mnemonic marker; `__` is a plain underscore.
                            label: label.replace('_', "__"),
                            activate: Box::new(move |item: &mut Item| item.sender.send(UiEvent::Menu(id.clone()))),
                            ..Default::default()
                        }
                        .into()
                    }
                    MenuEntry::Separator => ksni::MenuItem::Separator,
                })
                .collect()
        }
    }

    pub fn show(entries: Vec<MenuEntry>, sender: UiSender) -> Result<Icon, String> {
        let image = super::decode_rgba(super::TRAY_PNG)?;
        let data = image
            .pixels
            .chunks_exact(4)
            .flat_map(|p| [p[3], p[0], p[1], p[2]])
            .collect();
        let item = Item {
            entries,
            sender,
            pixmap: ksni::Icon {
                width: image.width as i32,
                height: image.height as i32,
                data,
            },
        };
        item.spawn()
            .map_err(|e| format!("the tray icon could not be registered: {e}"))
    }

    pub fn set_menu(icon: &mut Icon, entries: Vec<MenuEntry>) {
        if icon.update(move |item| item.entries = entries).is_none() {
            tracing::warn!("the tray icon's service has stopped; the menu was not rebuilt");
        }
    }
}

/// The icon and menu through `tray-icon` and `muda`, on the loop's thread.
#[cfg(not(target_os = "linux"))]
mod platform {
    use super::{TRAY_ID, UiEvent, UiSender};
    use crate::menu::MenuEntry;
    use tray_icon::menu::{Menu, MenuEvent, MenuItem, PredefinedMenuItem};
    use tray_icon::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};

    pub type Icon = tray_icon::TrayIcon;

    pub fn show(entries: Vec<MenuEntry>, sender: UiSender) -> Result<Icon, String> {
        let menu_events = sender.clone();
        MenuEvent::set_event_handler(Some(move |event: MenuEvent| {
            menu_events.send(UiEvent::Menu(event.id.0));
        }));
        TrayIconEvent::set_event_handler(Some(move |event: TrayIconEvent| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                sender.send(UiEvent::IconClicked);
            }
        }));
        let image = super::decode_rgba(super::TRAY_PNG)?;
        let icon = tray_icon::Icon::from_rgba(image.pixels, image.width, image.height).map_err(|e| e.to_string())?;
        TrayIconBuilder::new()
            .with_id(TRAY_ID)
            .with_tooltip("KeyVault Proxy")
            .with_icon(icon)
            .with_menu(Box::new(menu_of(entries).map_err(|e| e.to_string())?))
            .with_menu_on_left_click(false)
            .build()
            .map_err(|e| e.to_string())
    }

    pub fn set_menu(icon: &mut Icon, entries: Vec<MenuEntry>) {
        match menu_of(entries) {
            Ok(menu) => icon.set_menu(Some(Box::new(menu))),
            Err(error) => tracing::warn!("could not rebuild the tray menu: {error}"),
        }
    }

    fn menu_of(entries: Vec<MenuEntry>) -> Result<Menu, tray_icon::menu::Error> {
        let menu = Menu::new();
        for entry in entries {
            match entry {
                MenuEntry::Item { id, label } => menu.append(&MenuItem::with_id(id, label, true, None))?,
                MenuEntry::Separator => menu.append(&PredefinedMenuItem::separator())?,
            }
        }
        Ok(menu)
    }
}

struct Rgba {
    pixels: Vec<u8>,
    width: u32,
    height: u32,
}

fn decode_rgba(png_bytes: &[u8]) -> Result<Rgba, String> {
    let bad = |e: png::DecodingError| format!("the tray icon image is broken: {e}");
    let reader = png::Decoder::new(std::io::Cursor::new(png_bytes))
        .read_info()
        .map_err(bad)?;
    let mut reader = reader;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| "the tray icon image is too large".to_string())?;
    let mut pixels = vec![0; size];
    let frame = reader.next_frame(&mut pixels).map_err(bad)?;
    if (frame.color_type, frame.bit_depth) != (png::ColorType::Rgba, png::BitDepth::Eight) {
        return Err("the tray icon image is not 8-bit RGBA".into());
    }
    pixels.truncate(frame.buffer_size());
    Ok(Rgba {
        pixels,
        width: frame.width,
        height: frame.height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_icon_decodes_to_rgba_pixels() {
        let image = decode_rgba(TRAY_PNG).unwrap();
        assert_eq!((image.width, image.height), (32, 32));
        assert_eq!(image.pixels.len(), 32 * 32 * 4);
        assert!(image.pixels.chunks(4).any(|p| p[3] > 0), "a fully transparent icon");
    }

    #[test]
    fn a_broken_image_is_an_error_not_a_panic() {
        assert!(decode_rgba(&TRAY_PNG[..40]).is_err());
    }
}
