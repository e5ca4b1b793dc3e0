//! One isolated desktop per test: temp HOME and XDG dirs, a private D-Bus bus, an Xvfb display and an
//! unlocked gnome-keyring on that bus. Nothing reaches the user's real bus, display, keyring or config.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::{TIMEOUT, try_wait_until};

/// Our own bus config instead of session.conf: session.conf adds the system's service dirs, and D-Bus
/// activation would start a second (locked) keyring, xdg-desktop-portal or dconf with whatever env the bus
/// has, outliving the test. Without service dirs a call to an absent name fails at once instead.
const BUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=SOCKET</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#;

pub struct Session {
    dir: tempfile::TempDir,
    bus_address: String,
    display: String,
    /// Started in order (Xvfb, dbus-daemon, keyring), stopped in reverse.
    daemons: Vec<(&'static str, Child)>,
    /// Processes the tests hand over (the app, clipboard owners): stopped before the daemons they talk to.
    adopted: Mutex<Vec<Child>>,
}

impl Session {
    pub fn start() -> Session {
        let dir = tempfile::Builder::new()
            .prefix("kvproxy-it.")
            .tempdir()
            .expect("create the session temp dir");
        for sub in ["home", "config", "data", "runtime"] {
            fs::create_dir(dir.path().join(sub)).expect("create a session dir");
        }
        // libraries refuse or warn about a runtime dir that others can read
        fs::set_permissions(dir.path().join("runtime"), fs::Permissions::from_mode(0o700))
            .expect("chmod 0700 the runtime dir");
        // Built before the children so that a panic part-way through still stops what already started.
        let mut s = Session {
            dir,
            bus_address: String::new(),
            display: String::new(),
            daemons: Vec::new(),
            adopted: Mutex::new(Vec::new()),
        };

        // -noreset: otherwise the server resets (dropping selections and atoms) whenever its last client leaves.
        let mut xvfb = Command::new("Xvfb");
        xvfb.args("-displayfd 1 -screen 0 1280x800x24 -nolisten tcp -noreset".split(' '));
        let line = s.spawn_daemon("Xvfb", xvfb);
        s.display = format!(":{}", line.trim());

        let config = s.dir.path().join("bus.conf");
        let socket = s.dir.path().join("runtime/bus");
        fs::write(&config, BUS_CONFIG.replace("SOCKET", &socket.to_string_lossy())).expect("write bus.conf");
        let mut dbus = Command::new("dbus-daemon");
        dbus.arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address=1"]);
        s.bus_address = s.spawn_daemon("dbus-daemon", dbus).trim().to_owned();

        s.start_keyring();
        s
    }

    /// Spawns a daemon that prints one line on stdout once it is ready, and returns that line.
    fn spawn_daemon(&mut self, name: &'static str, mut cmd: Command) -> String {
        let log = self.log_file(name);
        let mut child = cmd
            .env("HOME", self.dir.path().join("home"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} (is it installed? see scripts/deps.sh): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        self.daemons.push((name, child));
        // A thread, so a daemon that neither prints nor exits cannot block the test past the bound.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        match rx.recv_timeout(TIMEOUT) {
            Ok(line) if !line.trim().is_empty() => line,
            _ => panic!(
                "{name} did not report readiness within {TIMEOUT:?}; log:\n{}",
                self.log(name)
            ),
        }
    }

    fn start_keyring(&mut self) {
        let mut child = self
            .command("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .stdin(Stdio::piped())
            .stdout(self.log_file("gnome-keyring"))
            .stderr(self.log_file("gnome-keyring"))
            .spawn()
            .expect("spawn gnome-keyring-daemon (is gnome-keyring installed?)");
        // --unlock reads the password up to EOF; the first start creates the default "login" collection
        // with it, so writes never need a prompter.
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(b"throwaway").expect("write the keyring password");
        drop(stdin);
        self.daemons.push(("gnome-keyring", child));

        let conn = self.bus();
        let dbus = zbus::blocking::fdo::DBusProxy::new(&conn).expect("org.freedesktop.DBus proxy");
        let ready = try_wait_until(TIMEOUT, || {
            // NameHasOwner never activates anything, so only our daemon can answer.
            let owned = dbus
                .name_has_owner("org.freedesktop.secrets".try_into().unwrap())
                .unwrap_or(false);
            let exited = matches!(self.daemons.last_mut().unwrap().1.try_wait(), Ok(Some(_)));
            (owned || exited).then_some(owned)
        });
        if ready != Some(true) {
            panic!(
                "gnome-keyring-daemon did not take org.freedesktop.secrets; log:\n{}",
                self.log("gnome-keyring")
            );
        }
    }

    fn log_file(&self, name: &str) -> File {
        let path = self.dir.path().join(format!("{name}.log"));
        File::options()
            .create(true)
            .append(true)
            .open(path)
            .expect("open a daemon log")
    }

    /// A daemon's stdout/stderr, for failure messages.
    pub fn log(&self, name: &str) -> String {
        let mut text = String::new();
        let _ = File::open(self.dir.path().join(format!("{name}.log"))).and_then(|mut f| f.read_to_string(&mut text));
        text
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn bus_address(&self) -> &str {
        &self.bus_address
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    /// `$KVPROXY_CONFIG_DIR`; not created, so tests see a first start unless they write a config first.
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config/kvproxy")
    }

    pub fn env(&self) -> Vec<(String, String)> {
        let p = |sub: &str| self.dir.path().join(sub).to_string_lossy().into_owned();
        [
            ("DBUS_SESSION_BUS_ADDRESS", self.bus_address.clone()),
            ("DISPLAY", self.display.clone()),
            // autostart ignores XDG_CONFIG_HOME and writes $HOME/.config/autostart
            ("HOME", p("home")),
            ("XDG_CONFIG_HOME", p("config")),
            ("XDG_DATA_HOME", p("data")),
            // tray-icon writes its icon PNG here
            ("XDG_RUNTIME_DIR", p("runtime")),
            // the accessibility bridge would look for an AT-SPI bus that does not exist
            ("NO_AT_BRIDGE", "1".to_owned()),
            ("GDK_BACKEND", "x11".to_owned()),
            ("KVPROXY_CONFIG_DIR", self.config_dir().to_string_lossy().into_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// A command that runs inside this session (the caller's other variables are kept).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.envs(self.env());
        // Each would point a child at the developer's real desktop: Wayland, their keyring, their X cookie.
        for var in ["WAYLAND_DISPLAY", "GNOME_KEYRING_CONTROL", "XAUTHORITY"] {
            cmd.env_remove(var);
        }
        cmd
    }

    /// A new connection to the private bus; calls give up after [`TIMEOUT`] instead of hanging on a stuck app.
    pub fn bus(&self) -> zbus::blocking::Connection {
        zbus::blocking::connection::Builder::address(self.bus_address.as_str())
            .expect("parse the private bus address")
            .method_timeout(TIMEOUT)
            .build()
            .expect("connect to the private bus")
    }

    /// The pids of the daemons (Xvfb, dbus-daemon, keyring), for checking that they are gone after a drop.
    pub fn daemon_pids(&self) -> Vec<u32> {
        self.daemons.iter().map(|(_, child)| child.id()).collect()
    }

    /// Hands a child over to the session, which stops and reaps it before the daemons.
    pub fn adopt(&self, child: Child) {
        self.adopted.lock().expect("adopted children").push(child);
    }
}

/// SIGTERM first: Xvfb removes its /tmp/.X11-unix socket only then. SIGKILL if it lingers.
fn stop(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        // SAFETY: kill(2) on a pid we have not reaped yet, so it cannot have been reused.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let exited = try_wait_until(Duration::from_secs(5), || child.try_wait().ok().flatten());
        if exited.is_none() {
            let _ = child.kill();
        }
    }
    let _ = child.wait();
}

impl Drop for Session {
    fn drop(&mut self) {
        let adopted = self.adopted.get_mut().unwrap_or_else(PoisonError::into_inner);
        for mut child in std::mem::take(adopted) {
            stop(&mut child);
        }
        while let Some((_, mut child)) = self.daemons.pop() {
            stop(&mut child);
        }
        // The TempDir field removes the directory after this.
    }
}
