# heph-selfupdate — build, test, demo; install, enable, disable, uninstall; doctor.
#
# PREFIX and DESTDIR are respected; every target can be run again safely; `make -n TARGET`
# prints exactly what TARGET would run. Linux uses systemd user units, macOS a LaunchAgent.

CARGO     ?= cargo
PREFIX    ?= $(HOME)/.local
DESTDIR   ?=
BINDIR    := $(PREFIX)/bin
# A prebuilt binary to install instead of building one (e.g. BIN=target/debug/heph-selfupdate).
BIN       ?=
UNAME     := $(shell uname -s)

# Linux (systemd user units)
UNITDIR   ?= $(HOME)/.config/systemd/user
SYSTEMCTL ?= systemctl --user
# The PATH the service unit gives (keep in step with units/heph-selfupdate.service).
UNIT_PATH := $(HOME)/.cargo/bin:$(HOME)/.local/bin:/usr/local/bin:/usr/bin:/bin
ENVFILE   := $(HOME)/.config/heph-selfupdate/env

# macOS (LaunchAgent)
LABEL     ?= dev.hephaestus.selfupdate
AGENTDIR  ?= $(HOME)/Library/LaunchAgents
PLIST     := $(AGENTDIR)/$(LABEL).plist
# RUSTUP_TOOLCHAIN for the agent: launchd's bare environment otherwise picks rustup's
# default toolchain, which may be too old. Empty: not set.
TOOLCHAIN ?= stable
AGENT_PATH := $(HOME)/.cargo/bin:/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin

ifeq ($(BIN),)
INSTALL_BIN := target/release/heph-selfupdate
INSTALL_DEPS := build
else
INSTALL_BIN := $(BIN)
INSTALL_DEPS :=
endif

.PHONY: all build test lint demo bench fuzz ci install enable disable uninstall doctor

all: build

build:
	$(CARGO) build --release --locked

## The README's test command: formatting, lints and every test. The real-systemd tests
## need root and skip with a message otherwise; CI runs them.
test: lint
	$(CARGO) test --locked --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

## The sandboxed demo: a local git repository, a loopback stand-in forge, a stand-in
## service manager and a throw-away HOME. No forge on the network is needed.
demo:
	$(CARGO) build --locked --bins --examples
	./target/debug/examples/demo

## Property-based fuzzing of every parser of outside input (tests/fuzz.rs), long run.
## `make test` runs the same properties with a few hundred cases each.
FUZZ_CASES ?= 300000
fuzz:
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --locked --release --test fuzz

## Benchmarks against the alternatives (curl, the plain cargo install); writes
## docs/benchmarks.md and docs/rebuild.svg. Needs crates.io once (fixture dependencies).
bench:
	$(CARGO) build --locked --release --bins --examples
	./target/release/examples/bench

## What CI runs (.ci/run).
ci: test

## Install the binary and the units (Linux) or the LaunchAgent (macOS). Enables nothing.
install: $(INSTALL_DEPS)
	install -d "$(DESTDIR)$(BINDIR)"
	install -m 0755 "$(INSTALL_BIN)" "$(DESTDIR)$(BINDIR)/heph-selfupdate"
ifeq ($(UNAME),Darwin)
	install -d "$(DESTDIR)$(AGENTDIR)" "$(DESTDIR)$(HOME)/Library/Logs"
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@HOME@|$(HOME)|g' -e 's|@LABEL@|$(LABEL)|g' \
	    -e 's|@TOOLCHAIN@|$(TOOLCHAIN)|g' $(if $(TOOLCHAIN),,-e '/<key>RUSTUP_TOOLCHAIN<\/key>/{N;d;}') \
	    plists/heph-selfupdate.plist > "$(DESTDIR)$(PLIST)"
else
	install -d "$(DESTDIR)$(UNITDIR)"
	sed -e 's|@BINDIR@|$(BINDIR)|g' units/heph-selfupdate.service > "$(DESTDIR)$(UNITDIR)/heph-selfupdate.service"
	install -m 0644 units/heph-selfupdate.timer "$(DESTDIR)$(UNITDIR)/heph-selfupdate.timer"
endif

## Turn updates on: start the timer (Linux) or load the agent (macOS).
enable:
ifeq ($(UNAME),Darwin)
	launchctl bootout "gui/$$(id -u)/$(LABEL)" 2>/dev/null || true
	launchctl bootstrap "gui/$$(id -u)" "$(PLIST)"
else
	$(SYSTEMCTL) daemon-reload
	$(SYSTEMCTL) enable --now heph-selfupdate.timer
	@if [ "$$(loginctl show-user "$$(id -un)" --property=Linger --value 2>/dev/null)" != yes ]; then \
	  echo "warning: lingering is off for $$(id -un): user timers only run while you are logged in."; \
	  echo "         To keep updates running after logout: loginctl enable-linger $$(id -un)"; \
	fi
endif

## Turn updates off: afterwards nothing of heph-selfupdate runs.
disable:
ifeq ($(UNAME),Darwin)
	launchctl bootout "gui/$$(id -u)/$(LABEL)" 2>/dev/null || true
else
	$(SYSTEMCTL) disable --now heph-selfupdate.timer 2>/dev/null || true
	$(SYSTEMCTL) stop heph-selfupdate.service 2>/dev/null || true
endif

## Disable, then remove every installed file (state, cache and version roots stay; see README).
uninstall: disable
	rm -f "$(DESTDIR)$(BINDIR)/heph-selfupdate"
ifeq ($(UNAME),Darwin)
	rm -f "$(DESTDIR)$(PLIST)"
else
	rm -f "$(DESTDIR)$(UNITDIR)/heph-selfupdate.service" "$(DESTDIR)$(UNITDIR)/heph-selfupdate.timer"
	$(SYSTEMCTL) daemon-reload 2>/dev/null || true
endif

## `heph-selfupdate doctor` inside the environment the timer gives the service.
doctor:
ifeq ($(UNAME),Darwin)
	env -i HOME="$(HOME)" PATH="$(AGENT_PATH)" $(if $(TOOLCHAIN),RUSTUP_TOOLCHAIN=$(TOOLCHAIN)) "$(BINDIR)/heph-selfupdate" doctor
else
	systemd-run --user --wait --pipe --quiet --collect \
	    --property=EnvironmentFile=-$(ENVFILE) --setenv=PATH=$(UNIT_PATH) \
	    "$(BINDIR)/heph-selfupdate" doctor
endif
