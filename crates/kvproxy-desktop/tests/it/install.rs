//! `make install` / `make uninstall` (scripts/install.sh) into a temporary PREFIX, with the binaries this test
//! run built: every file lands where a desktop looks for it, the launcher starts the installed app by its
//! path, the installed CLI runs, and uninstall removes exactly what install wrote.

use std::path::{Path, PathBuf};
use std::process::Command;

const APP_ID: &str = "dev.kvproxy.KeyVaultProxy";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install.sh")
}

fn run(prefix: &Path, args: &[&str]) -> String {
    let out = Command::new(script())
        .args(args)
        .env("PREFIX", prefix)
        // Not the user's PATH: the script must notice that PREFIX/bin is missing from it.
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("run scripts/install.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "install.sh {args:?} failed: {text}");
    text
}

#[test]
fn install_puts_everything_in_place_and_uninstall_removes_exactly_that() {
    let prefix = tempfile::tempdir().expect("tempdir");
    let prefix = prefix.path();
    let built = PathBuf::from(env!("CARGO_BIN_EXE_kvproxy-desktop"));
    let from = built
        .parent()
        .expect("the build directory")
        .to_str()
        .expect("a UTF-8 path");
    // Something of the user's own in the same directories must survive both.
    let theirs = prefix.join("bin/their-tool");
    std::fs::create_dir_all(theirs.parent().unwrap()).unwrap();
    std::fs::write(&theirs, "#!/bin/sh\n").unwrap();

    let said = run(prefix, &["install", "--from", from]);
    let expected = [
        "bin/kvproxy-desktop".to_string(),
        "bin/kvproxy-window".to_string(),
        "bin/kvproxy".to_string(),
        format!("share/applications/{APP_ID}.desktop"),
        format!("share/icons/hicolor/32x32/apps/{APP_ID}.png"),
        format!("share/icons/hicolor/128x128/apps/{APP_ID}.png"),
        format!("share/icons/hicolor/256x256/apps/{APP_ID}.png"),
        format!("share/icons/hicolor/512x512/apps/{APP_ID}.png"),
    ];
    for file in &expected {
        assert!(prefix.join(file).is_file(), "{file} was not installed: {said}");
    }
    let manifest = std::fs::read_to_string(prefix.join("share/kvproxy/installed-files")).unwrap();
    assert_eq!(manifest.lines().count(), expected.len(), "{manifest}");
    assert!(
        said.contains("is not on your PATH") && said.contains("bin/kvproxy"),
        "{said}"
    );

    // The launcher starts the installed app by its full path, and is a valid desktop entry.
    let entry_path = prefix.join(format!("share/applications/{APP_ID}.desktop"));
    let entry = std::fs::read_to_string(&entry_path).unwrap();
    let exec = format!("Exec={}/bin/kvproxy-desktop --window", prefix.display());
    assert!(entry.lines().any(|line| line == exec), "{entry}");
    assert!(entry.contains(&format!("Icon={APP_ID}")), "{entry}");
    if let Ok(out) = Command::new("desktop-file-validate").arg(&entry_path).output() {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    }
    let version = Command::new(prefix.join("bin/kvproxy"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        version.status.success() && String::from_utf8_lossy(&version.stdout).starts_with("kvproxy "),
        "the installed CLI runs"
    );

    // Installing again replaces, without leaving two lists or stale files behind.
    run(prefix, &["install", "--from", from]);
    let again = std::fs::read_to_string(prefix.join("share/kvproxy/installed-files")).unwrap();
    assert_eq!(again, manifest);

    let said = run(prefix, &["uninstall"]);
    assert!(said.contains(&format!("removed {} files", expected.len())), "{said}");
    for file in &expected {
        assert!(!prefix.join(file).exists(), "{file} is still there");
    }
    assert!(
        !prefix.join("share/kvproxy").exists(),
        "the manifest's directory is gone"
    );
    assert!(theirs.is_file(), "uninstall removed a file it did not install");
    let said = run(prefix, &["uninstall"]);
    assert!(said.contains("nothing to remove"), "{said}");
}
