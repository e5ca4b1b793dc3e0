//! Runs tauri-build against the single `tauri.conf.json` at the repository root (docs/ARCHITECTURE.md),
//! instead of the default copy next to this crate's `Cargo.toml`.

fn main() {
    // `generate_context!` embeds ui/ and icons/ while this crate compiles, and only files that already
    // existed are tracked by the compiler. Rerunning the build script on any change in those directories
    // forces the recompile that picks up added or removed files too.
    println!("cargo:rerun-if-changed=../ui");
    println!("cargo:rerun-if-changed=../icons");

    // tauri-build reads `tauri.conf.json` from the parent directory of this path, relative to the crate.
    let attributes = tauri_build::Attributes::new().config_path("../tauri.conf.json");
    if let Err(error) = tauri_build::try_build(attributes) {
        // A build script reports failure by panicking; `{:#}` keeps anyhow's context chain on one line.
        panic!("tauri-build failed: {error:#}");
    }
}
