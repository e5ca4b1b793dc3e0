//! `kvproxy user-path add|remove DIR`: the Windows installer's way to put its folder on the user's PATH and
//! take it off again. Hidden from `--help`; users never need it.
//!
//! NSIS could edit the registry itself, but its strings are cut at 1,024 characters and a developer's PATH
//! is often longer: a cut PATH written back loses entries. Here the value is read whole, changed by entry
//! (case-insensitively, as Windows compares paths), written back with its type kept (`REG_EXPAND_SZ` keeps
//! `%USERPROFILE%`-style entries working), and removed when the installer's entry was its only one, so the
//! uninstaller leaves HKCU\Environment as it found it.

// The PATH editing is unit-tested on every OS and used only on Windows.
#![cfg_attr(not(windows), allow(dead_code))]

use crate::args::UserPathCommand;

/// `path` with `dir` appended, or `None` when an entry already names `dir`.
pub(crate) fn with_dir(path: &str, dir: &str) -> Option<String> {
    if entries(path).any(|entry| same_dir(entry, dir)) {
        return None;
    }
    let kept: Vec<&str> = entries(path).collect();
    Some(if kept.is_empty() {
        dir.to_string()
    } else {
        format!("{};{dir}", kept.join(";"))
    })
}

/// `path` without any entry naming `dir`, or `None` when there is none. Other entries keep their order
/// and spelling.
pub(crate) fn without_dir(path: &str, dir: &str) -> Option<String> {
    if !entries(path).any(|entry| same_dir(entry, dir)) {
        return None;
    }
    Some(
        entries(path)
            .filter(|entry| !same_dir(entry, dir))
            .collect::<Vec<_>>()
            .join(";"),
    )
}

fn entries(path: &str) -> impl Iterator<Item = &str> {
    path.split(';').filter(|entry| !entry.trim().is_empty())
}

fn same_dir(a: &str, b: &str) -> bool {
    let normal = |s: &str| s.trim().trim_matches('"').trim_end_matches(['\\', '/']).to_lowercase();
    normal(a) == normal(b)
}

pub fn run(command: UserPathCommand) -> anyhow::Result<()> {
    imp::run(command)
}

#[cfg(windows)]
mod imp {
    use super::{with_dir, without_dir};
    use crate::args::UserPathCommand;
    use anyhow::{Context as _, bail};
    use windows_sys::Win32::Foundation::{ERROR_FILE_NOT_FOUND, ERROR_SUCCESS};
    use windows_sys::Win32::System::Registry::{
        HKEY, HKEY_CURRENT_USER, KEY_QUERY_VALUE, KEY_SET_VALUE, REG_EXPAND_SZ, REG_SZ, RegCloseKey, RegDeleteValueW,
        RegOpenKeyExW, RegQueryValueExW, RegSetValueExW,
    };
    use windows_sys::Win32::UI::WindowsAndMessaging::{
        HWND_BROADCAST, SMTO_ABORTIFHUNG, SendMessageTimeoutW, WM_SETTINGCHANGE,
    };

    fn wide(s: &str) -> Vec<u16> {
        s.encode_utf16().chain(Some(0)).collect()
    }

    /// HKCU\Environment, closed on drop.
    struct Environment(HKEY);

    impl Environment {
        fn open() -> anyhow::Result<Self> {
            let mut key: HKEY = std::ptr::null_mut();
            let name = wide("Environment");
            // SAFETY: `name` is NUL-terminated and outlives the call; the key is written to a local.
            let status = unsafe {
                RegOpenKeyExW(
                    HKEY_CURRENT_USER,
                    name.as_ptr(),
                    0,
                    KEY_QUERY_VALUE | KEY_SET_VALUE,
                    &mut key,
                )
            };
            if status != ERROR_SUCCESS {
                bail!("cannot open HKEY_CURRENT_USER\\Environment (Windows error {status})");
            }
            Ok(Self(key))
        }

        /// One `RegQueryValueExW` of `Path`: its type and size in bytes, and its data into `buffer` when given.
        fn query_path(&self, buffer: Option<&mut [u16]>) -> (u32, u32, u32) {
            let name = wide("Path");
            let mut kind = 0u32;
            let (data, mut bytes) = match buffer {
                Some(buffer) => (buffer.as_mut_ptr().cast(), (buffer.len() * 2) as u32),
                None => (std::ptr::null_mut(), 0),
            };
            // SAFETY: `data` is null (a size query) or a buffer of `bytes` bytes, which the call does not
            // overrun; the type and size are written to locals.
            let status =
                unsafe { RegQueryValueExW(self.0, name.as_ptr(), std::ptr::null(), &mut kind, data, &mut bytes) };
            (status, kind, bytes)
        }

        /// The user's PATH and its registry type; `None` when the user has none of their own.
        fn path(&self) -> anyhow::Result<Option<(String, u32)>> {
            let (status, kind, size) = self.query_path(None);
            if status == ERROR_FILE_NOT_FOUND {
                return Ok(None);
            }
            if status != ERROR_SUCCESS {
                bail!("cannot read the user's PATH (Windows error {status})");
            }
            if kind != REG_SZ && kind != REG_EXPAND_SZ {
                bail!(
                    "the user's PATH in HKEY_CURRENT_USER\\Environment is not a string (type {kind}); fix it by hand"
                );
            }
            let mut buffer = vec![0u16; (size as usize).div_ceil(2) + 1];
            let (status, kind, bytes) = self.query_path(Some(&mut buffer));
            if status != ERROR_SUCCESS {
                bail!("cannot read the user's PATH (Windows error {status})");
            }
            buffer.truncate(bytes as usize / 2);
            while buffer.last() == Some(&0) {
                buffer.pop();
            }
            let path = String::from_utf16(&buffer).context("the user's PATH is not valid UTF-16")?;
            Ok(Some((path, kind)))
        }

        fn set_path(&self, path: &str, kind: u32) -> anyhow::Result<()> {
            let name = wide("Path");
            let value = wide(path);
            // SAFETY: `value` is NUL-terminated UTF-16 of the byte length given; both outlive the call.
            let status = unsafe {
                RegSetValueExW(
                    self.0,
                    name.as_ptr(),
                    0,
                    kind,
                    value.as_ptr().cast(),
                    (value.len() * 2) as u32,
                )
            };
            if status != ERROR_SUCCESS {
                bail!("cannot write the user's PATH (Windows error {status})");
            }
            Ok(())
        }

        fn delete_path(&self) -> anyhow::Result<()> {
            let name = wide("Path");
            // SAFETY: `name` is NUL-terminated and outlives the call.
            let status = unsafe { RegDeleteValueW(self.0, name.as_ptr()) };
            if status != ERROR_SUCCESS && status != ERROR_FILE_NOT_FOUND {
                bail!("cannot remove the user's PATH (Windows error {status})");
            }
            Ok(())
        }
    }

    impl Drop for Environment {
        fn drop(&mut self) {
            // SAFETY: the key was opened by `open` and is closed once.
            unsafe { RegCloseKey(self.0) };
        }
    }

    /// Tells Explorer (and whoever listens) that the environment changed, so new terminals see the PATH.
    fn announce() {
        let what = wide("Environment");
        let mut result = 0usize;
        // SAFETY: `what` is NUL-terminated and outlives the call, which waits at most 5 s per window.
        unsafe {
            SendMessageTimeoutW(
                HWND_BROADCAST,
                WM_SETTINGCHANGE,
                0,
                what.as_ptr() as isize,
                SMTO_ABORTIFHUNG,
                5000,
                &mut result,
            )
        };
    }

    pub fn run(command: UserPathCommand) -> anyhow::Result<()> {
        let environment = Environment::open()?;
        let current = environment.path()?;
        let (path, kind) = current.clone().unwrap_or_else(|| (String::new(), REG_EXPAND_SZ));
        match command {
            UserPathCommand::Add { dir } => match with_dir(&path, &dir) {
                Some(changed) => environment.set_path(&changed, kind)?,
                None => return Ok(()),
            },
            UserPathCommand::Remove { dir } => match without_dir(&path, &dir) {
                Some(changed) if changed.is_empty() => environment.delete_path()?,
                Some(changed) => environment.set_path(&changed, kind)?,
                None => return Ok(()),
            },
        }
        announce();
        Ok(())
    }
}

#[cfg(not(windows))]
mod imp {
    use crate::args::UserPathCommand;

    pub fn run(_: UserPathCommand) -> anyhow::Result<()> {
        anyhow::bail!("kvproxy user-path changes the Windows user PATH; on this OS, edit your shell profile")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_appends_once() {
        assert_eq!(with_dir("", r"C:\kv").as_deref(), Some(r"C:\kv"));
        assert_eq!(with_dir(r"C:\a;C:\b", r"C:\kv").as_deref(), Some(r"C:\a;C:\b;C:\kv"));
        assert_eq!(with_dir(r"C:\a;;C:\b;", r"C:\kv").as_deref(), Some(r"C:\a;C:\b;C:\kv"));
        assert_eq!(
            with_dir(r"C:\a;c:\KV\", r"C:\kv"),
            None,
            "already there, spelled otherwise"
        );
        assert_eq!(with_dir(r#"C:\a;"C:\kv""#, r"C:\kv"), None);
    }

    #[test]
    fn removing_takes_only_that_entry() {
        assert_eq!(
            without_dir(r"C:\a;C:\kv;%USERPROFILE%\bin", r"C:\kv").as_deref(),
            Some(r"C:\a;%USERPROFILE%\bin")
        );
        assert_eq!(without_dir(r"C:\kv", r"c:\kv\").as_deref(), Some(""));
        assert_eq!(
            without_dir(r"C:\a;C:\kvproxy", r"C:\kv"),
            None,
            "a longer name is another folder"
        );
        let long = (0..200)
            .map(|i| format!(r"C:\tools\t{i}"))
            .collect::<Vec<_>>()
            .join(";");
        let added = with_dir(&long, r"C:\kv").unwrap();
        assert!(added.len() > 2000);
        assert_eq!(
            without_dir(&added, r"C:\kv").as_deref(),
            Some(long.as_str()),
            "a long PATH survives whole"
        );
    }
}
