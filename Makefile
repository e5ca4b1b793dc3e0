# KeyVault Proxy: `make run` starts the app, `make test` runs every test, `make bench` the benchmarks.
# Each installs what is missing first (scripts/deps.sh holds the package list).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# rustup puts cargo in ~/.cargo/bin, which a fresh login shell may not have on PATH yet.
ifeq ($(shell command -v cargo 2>/dev/null),)
export PATH := $(HOME)/.cargo/bin:$(PATH)
endif

CARGO ?= cargo
# Cargo.lock is committed: builds and tests use exactly it.
LOCKED := --locked

.PHONY: help run build test bench soak fuzz deps test-deps fmt fmt-check clippy test-rust test-newman test-schemathesis screenshots install uninstall package check-windows windows-deps windows package-windows test-windows

help:
	@echo "make run     install what is missing, build, start the KeyVault Proxy tray app"
	@echo "make test    install what is missing, then every test: fmt check, clippy, cargo test (real keyring), newman, schemathesis"
	@echo "make install    build optimised and install the app and the kvproxy CLI for you (PREFIX=~/.local)"
	@echo "make uninstall  remove exactly what make install installed"
	@echo "make package    build a .deb (target/debian/) and check it"
	@echo "make windows          cross-build kvproxy.exe, kvproxy-desktop.exe and kvproxy-window.exe (MinGW-w64)"
	@echo "make package-windows  ... and the Windows setup program (NSIS)"
	@echo "make test-windows     the engine, server and CLI tests as Windows programs under Wine, and the setup program"
	@echo "make check-windows    lint the Windows build of the whole workspace (clippy)"
	@echo "make bench   the benchmarks; each rewrites its section of docs/benchmarks.md"
	@echo "make soak    five minutes of mixed clients under injected faults (SOAK_SECS to change)"
	@echo "make fuzz    the property tests of every input parser, 20,000 cases each"
	@echo "make build   build the whole workspace (including the Tauri app)"
	@echo "make screenshots  drive the window in light and dark and copy its screenshots to docs/screenshots/"
	@echo "make fmt     reformat the code"

deps:
	@echo "==> checking build dependencies (scripts/deps.sh)"
	scripts/deps.sh

test-deps:
	@echo "==> checking build and test dependencies (scripts/deps.sh --test, scripts/tauri-driver.sh)"
	scripts/deps.sh --test
	scripts/tauri-driver.sh >/dev/null

build: deps
	@echo "==> building the workspace"
	$(CARGO) build $(LOCKED) --workspace

run: deps
	@echo "==> building and starting (scripts/run.sh)"
	scripts/run.sh

# For the current user, no root: PREFIX/bin, the launcher entry and icons under PREFIX/share (PREFIX defaults
# to ~/.local). The list of what was installed is kept, so uninstall removes exactly that.
install: deps
	@echo "==> installing into $${PREFIX:-$$HOME/.local} (scripts/install.sh)"
	scripts/install.sh install

uninstall:
	scripts/install.sh uninstall

# Windows, from this Linux machine (scripts/windows.sh): MinGW-w64 builds, NSIS packages, Wine runs the tests.
windows-deps:
	@echo "==> checking Windows build dependencies (scripts/deps.sh --windows)"
	scripts/deps.sh --windows

windows: windows-deps
	scripts/windows.sh build

package-windows: windows-deps
	scripts/windows.sh package

# Run after `make test` in CI; builds the Windows target once (debug) and reuses it for every step.
test-windows: windows-deps
	@echo "==> Windows: scripts/windows.sh test (Wine)"
	scripts/windows.sh test

check-windows: windows-deps
	scripts/check-windows.sh

# A .deb in target/debian/ (cargo-deb, into .tools/ on first use); the script checks what it built.
package: deps
	@echo "==> building the .deb (scripts/package.sh)"
	scripts/package.sh

# Every step must pass; the first failure stops the run and its exit code is make's.
# `cargo test --workspace` includes the desktop app's end-to-end tests (crates/kvproxy-desktop/tests/it):
# each starts its own Xvfb, D-Bus bus, keyring, tray host and notification daemon, and drives the debug
# build of the app (and of the window program beside it, built for src-tauri/tests) that the same cargo run
# just made. newman then reuses the `kvproxy` binary of that build.
test: test-deps
	@$(MAKE) --no-print-directory fmt-check
	@$(MAKE) --no-print-directory clippy
	@$(MAKE) --no-print-directory test-rust
	@$(MAKE) --no-print-directory test-newman
	@$(MAKE) --no-print-directory test-schemathesis
	@echo "==> make test: all steps passed"

fmt-check:
	@echo "==> [1/5] formatting: cargo fmt --all -- --check"
	@$(CARGO) fmt --all -- --check || { echo "==> formatting differs (diff above): run 'make fmt'"; exit 1; }

clippy:
	@echo "==> [2/5] lints: cargo clippy --workspace --all-targets -- -D warnings"
	$(CARGO) clippy $(LOCKED) --workspace --all-targets -- -D warnings
	@# --all-targets leaves out benches marked `bench = false` (the soak).
	$(CARGO) clippy $(LOCKED) -p kvproxy-cli --bench soak -- -D warnings

# The OS keyring tests talk to a real Secret Service: a private D-Bus session with gnome-keyring unlocked.
# --no-fail-fast: every crate's tests run and report, so one failure does not hide another.
test-rust:
	@echo "==> [3/5] tests: cargo test --workspace, inside a throwaway D-Bus session with gnome-keyring unlocked"
	KVPROXY_TAURI_DRIVER="$(CURDIR)/.tools/tauri-driver/bin/tauri-driver" \
		scripts/with-keyring.sh $(CARGO) test $(LOCKED) --workspace --no-fail-fast

test-newman:
	@echo "==> [4/5] Postman collection: scripts/newman.sh (newman against kvproxy demo + serve)"
	KVPROXY_BIN="$${CARGO_TARGET_DIR:-target}/debug/kvproxy" scripts/newman.sh

# The OpenAPI document against the server it describes: schemathesis generates requests from /openapi.json
# (fixed seed, bounded examples) and checks every answer against it. Reuses the build of test-rust.
test-schemathesis:
	@echo "==> [5/5] OpenAPI: scripts/schemathesis.sh (schemathesis against kvproxy demo + serve)"
	KVPROXY_BIN="$${CARGO_TARGET_DIR:-target}/debug/kvproxy" scripts/schemathesis.sh

# Each bench rewrites its own section of docs/benchmarks.md. Under with-keyring.sh, so the warm path reads
# key info from a real (throwaway) keyring; the peer bench installs its Python packages into .tools/peer/.
bench:
	@echo "==> checking bench dependencies (scripts/deps.sh --bench)"
	scripts/deps.sh --bench
	@echo "==> benchmarks: cargo bench --workspace (results: docs/benchmarks.md)"
	scripts/with-keyring.sh $(CARGO) bench $(LOCKED) --workspace

# About five minutes of mixed clients against kvproxy serve while the emulator injects faults; it fails on a
# panic, a hung request, an expired token served or a token in the logs. SOAK_SECS=60 for a short run.
soak: deps
	@echo "==> soak: cargo bench -p kvproxy-cli --bench soak (SOAK_SECS=$${SOAK_SECS:-300})"
	$(CARGO) bench $(LOCKED) -p kvproxy-cli --bench soak

# The property tests of make test, with 20,000 cases each instead of 256 (about two minutes after the build).
# A failure prints the smallest input found and saves its seed in tests/proptest-regressions/: commit it.
fuzz: deps
	@echo "==> property tests, PROPTEST_CASES=$${PROPTEST_CASES:-20000}"
	PROPTEST_CASES=$${PROPTEST_CASES:-20000} $(CARGO) test $(LOCKED) --no-fail-fast -p kvproxy-core -p kvproxy-server --test it props::
	PROPTEST_CASES=$${PROPTEST_CASES:-20000} $(CARGO) test $(LOCKED) -p kvproxy-core --lib certificate_der_parser

fmt:
	$(CARGO) fmt --all

# The window's end-to-end tests write a screenshot of every view (light and dark) to target/screenshots/;
# this copies them to docs/screenshots/, which README shows.
screenshots: test-deps
	@echo "==> screenshots: the window's end-to-end tests, then target/screenshots/ -> docs/screenshots/"
	rm -f "$${CARGO_TARGET_DIR:-target}"/screenshots/*.png
	$(CARGO) build $(LOCKED) -p kvproxy-window
	KVPROXY_TAURI_DRIVER="$(CURDIR)/.tools/tauri-driver/bin/tauri-driver" \
		$(CARGO) test $(LOCKED) -p kvproxy-desktop --test it window::
	mkdir -p docs/screenshots
	cp "$${CARGO_TARGET_DIR:-target}"/screenshots/*.png docs/screenshots/
	@ls docs/screenshots
