//! How to write `kvproxy` in a command printed for the user to type: the bare name only when their PATH
//! finds this very binary, else the path that works (a fresh `make run` build is in `target/debug/`, which
//! no PATH has).

use std::path::{Path, PathBuf};

/// `kvproxy` when the first `kvproxy` on the PATH is `binary`, else `binary`'s full path, quoted for a shell
/// when it has to be.
pub fn command_for(binary: &Path) -> String {
    command_for_path(binary, std::env::var_os("PATH").as_deref())
}

/// The `kvproxy` CLI beside this program (the app and the CLI are built and installed side by side), as
/// [`command_for`] writes it; plain `kvproxy` when there is none beside it.
pub fn cli_beside_this_program() -> String {
    let beside = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name(format!("kvproxy{}", std::env::consts::EXE_SUFFIX)))
        .filter(|cli| cli.is_file());
    match beside {
        Some(cli) => command_for(&cli),
        None => "kvproxy".into(),
    }
}

/// This program (the `kvproxy` CLI itself), as [`command_for`] writes it.
pub fn this_cli() -> String {
    match std::env::current_exe() {
        Ok(exe) => command_for(&exe),
        Err(_) => "kvproxy".into(),
    }
}

fn command_for_path(binary: &Path, path: Option<&std::ffi::OsStr>) -> String {
    let name = format!("kvproxy{}", std::env::consts::EXE_SUFFIX);
    let real = |p: &Path| p.canonicalize().ok();
    let found: Option<PathBuf> = path.and_then(|path| {
        std::env::split_paths(path)
            .map(|dir| dir.join(&name))
            .find(|candidate| candidate.is_file())
    });
    match (found.as_deref().and_then(real), real(binary)) {
        (Some(on_path), Some(this)) if on_path == this => "kvproxy".into(),
        _ => shell_quoted(&binary.display().to_string()),
    }
}

/// Bare when every character is safe in sh, fish, PowerShell and cmd; else quoted: single quotes for Unix
/// shells, double quotes on Windows (cmd knows no others; a Windows path cannot contain `"`).
fn shell_quoted(text: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+:\\".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        text.to_string()
    } else if cfg!(windows) {
        format!("\"{text}\"")
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_name_only_when_the_path_finds_this_binary() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let other = dir.path().join("my tools");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        let name = format!("kvproxy{}", std::env::consts::EXE_SUFFIX);
        let installed = bin.join(&name);
        let built = other.join(&name);
        std::fs::write(&installed, "").unwrap();
        std::fs::write(&built, "").unwrap();
        let path = std::env::join_paths([&bin]).unwrap();

        assert_eq!(command_for_path(&installed, Some(&path)), "kvproxy");
        // Another kvproxy comes first on the PATH: the one meant is named by its path, quoted for the space.
        let quote = if cfg!(windows) { '"' } else { '\'' };
        assert_eq!(
            command_for_path(&built, Some(&path)),
            format!("{quote}{}{quote}", built.display())
        );
        assert_eq!(command_for_path(&installed, None), installed.display().to_string());
        if cfg!(windows) {
            assert_eq!(shell_quoted(r"C:\it's here"), r#""C:\it's here""#);
        } else {
            assert_eq!(shell_quoted("/it's"), r"'/it'\''s'");
        }
    }
}
