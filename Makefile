# heph-selfupdate — build, test, demo; install, enable, disable, uninstall; doctor.
#
# PREFIX and DESTDIR are respected; every target can be run again safely; `make -n TARGET`
# prints exactly what TARGET would run. Linux uses systemd user units, macOS a LaunchAgent;
# for a system-scope hephd (headless hosts) the *-system targets, run as root, install
# system units that run heph-selfupdate as hephd's user.
# Paths may hold spaces and shell or sed metacharacters (&, |, %, quotes): every path is
# quoted for the shell with $(call q,...), and the unit and plist are rendered by the
# binary, which escapes each value for the file it lands in. (A `$` in a path is still
# expanded by make itself: write it as `$$`.)

CARGO     ?= cargo
PREFIX    ?= $(HOME)/.local
DESTDIR   ?=
BINDIR    := $(PREFIX)/bin
# A prebuilt binary to install instead of building one (e.g. BIN=target/debug/heph-selfupdate).
BIN       ?=
UNAME     := $(shell uname -s)
# Shell completions and man pages, where each shell and man(1) look under PREFIX.
DATADIR   := $(PREFIX)/share
BASHCOMPDIR := $(DATADIR)/bash-completion/completions
ZSHCOMPDIR  := $(DATADIR)/zsh/site-functions
FISHCOMPDIR := $(DATADIR)/fish/vendor_completions.d
MAN1DIR     := $(DATADIR)/man/man1

# $(call q,TEXT): TEXT as one single-quoted shell word.
q = '$(subst ','\'',$(1))'

# Where cargo puts what it builds: CARGO_TARGET_DIR, a `build.target-dir` in a cargo
# config, or ./target. Asked of cargo, never assumed; only when needed (`=`, not `:=`).
TARGET_DIR = $(or $(shell $(CARGO) metadata --format-version=1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'),$(error `$(CARGO) metadata` did not say where cargo builds (its error, if any, is above)))

# Linux (systemd user units)
UNITDIR   ?= $(HOME)/.config/systemd/user
SYSTEMCTL ?= systemctl --user
# The PATH the service unit gives (keep in step with units/heph-selfupdate.service).
UNIT_PATH := $(HOME)/.cargo/bin:$(HOME)/.local/bin:/usr/local/bin:/usr/bin:/bin
ENVFILE   := $(HOME)/.config/heph-selfupdate/env

# Linux, system scope (`make install-system USER=<user>`, as root): a template unit
# heph-selfupdate@.service with User=%i, its timer, and per user a drop-in with that user's
# home (a system unit's %h is root's home). USER must be given on the command line (the
# environment's is root's under sudo), and is never root.
SYSTEM_PREFIX    ?= /usr/local
SYSTEM_BINDIR    := $(SYSTEM_PREFIX)/bin
SYSTEM_UNITDIR   ?= /etc/systemd/system
SYSTEMCTL_SYSTEM ?= systemctl
# The user's home, from the password database (USER_HOME= for a DESTDIR install).
USER_HOME        ?= $(shell getent passwd $(call q,$(USER)) | cut -d: -f6)
SYSTEM_INSTANCE   = heph-selfupdate@$(USER)
SYSTEM_DROPIN     = $(SYSTEM_UNITDIR)/$(SYSTEM_INSTANCE).service.d
SYSTEM_INSTALLED := $(DESTDIR)$(SYSTEM_BINDIR)/heph-selfupdate
# The PATH the system unit gives (keep in step with units/heph-selfupdate@.service.d/home.conf).
SYSTEM_UNIT_PATH  = $(USER_HOME)/.cargo/bin:$(USER_HOME)/.local/bin:/usr/local/bin:/usr/bin:/bin
SYSTEM_GOALS := install-system enable-system disable-system uninstall-system doctor-system
# Before anything runs (`make -n` too): USER names hephd's user.
ifneq ($(filter $(SYSTEM_GOALS),$(MAKECMDGOALS)),)
ifneq ($(origin USER),command line)
$(error name the user hephd runs as: make $(filter $(SYSTEM_GOALS),$(MAKECMDGOALS)) USER=<user> (as root))
endif
ifeq ($(USER),root)
$(error USER=root: heph-selfupdate never runs as root; name the user hephd runs as)
endif
ifneq ($(shell printf '%s' $(call q,$(USER)) | tr -d 'A-Za-z0-9_.-'),)
$(error USER=$(USER): a user name of letters, digits, `_`, `.` and `-` only)
endif
# A build runs the working tree's code (build.rs, proc macros): never as root. Root
# installs a binary built before, by a user.
ifneq ($(filter install-system,$(MAKECMDGOALS)),)
ifeq ($(BIN),)
ifeq ($(shell id -u),0)
$(error install-system as root builds nothing (a build runs the working tree's code, which must not run as root): build it first as yourself (`make build`), then `sudo make install-system USER=$(USER) BIN=target/release/heph-selfupdate` (or wherever CARGO_TARGET_DIR puts it))
endif
endif
endif
endif
# Expands to nothing, or stops make with what to do.
check_home = $(if $(USER_HOME),,$(error no home directory for $(USER) (getent passwd $(USER)); create the user, or pass USER_HOME=))
# What install-system reads or runs as root from the working tree: this Makefile, BIN
# (installed, then run to render the units) and the unit templates. As root, each must be
# a file (never a link) that root or the user who ran sudo (SUDO_UID) owns and nobody
# else may write, in directories (up to /) only they may change (a sticky one aside):
# otherwise another user who owns the tree — the service user, say — would have root
# read any file through a link, or run their program.
SYSTEM_READS = $(call q,$(firstword $(MAKEFILE_LIST))) $(call q,$(INSTALL_BIN)) \
	units/heph-selfupdate@.service units/heph-selfupdate@.timer units/heph-selfupdate@.service.d/home.conf
check_owned = [ "$$(id -u)" != 0 ] || { me=$${SUDO_UID:-0}; \
	refuse() { printf 'install-system: as root, refusing to read or run %s: %s\n' "$$1" "$$2" >&2; \
	  printf 'help: root installs only from files that root or you (the user who ran sudo) own and nobody else may change: build and install from a working tree of your own (`make build` as yourself, then `sudo make install-system USER=$(USER) BIN=<that build>`)\n' >&2; exit 1; }; \
	owned() { case "$$1" in 0|"$$me") ;; *) refuse "$$2" "it belongs to uid $$1, neither root nor uid $$me";; esac; }; \
	for f in $(SYSTEM_READS); do \
	  if [ -L "$$f" ] || [ ! -f "$$f" ]; then refuse "$$f" "it is a link or not a file"; fi; \
	  set -- $$(stat -c '%u %a' -- "$$f"); owned "$$1" "$$f"; \
	  [ $$(( 0$$2 & 022 )) = 0 ] || refuse "$$f" "its group or others may write it"; \
	  d=$$(cd -P -- "$$(dirname -- "$$f")" && pwd) || exit 1; \
	  while :; do \
	    set -- $$(stat -c '%u %a' -- "$$d"); owned "$$1" "$$d (a directory above $$f)"; \
	    if [ $$(( 0$$2 & 022 )) != 0 ] && [ $$(( 0$$2 & 01000 )) = 0 ]; then refuse "$$d (a directory above $$f)" "its group or others may change it"; fi; \
	    [ "$$d" = / ] && break; d=$$(dirname -- "$$d"); \
	  done; \
	done; }

# macOS (LaunchAgent)
LABEL     ?= dev.hephaestus.selfupdate
AGENTDIR  ?= $(HOME)/Library/LaunchAgents
PLIST     := $(AGENTDIR)/$(LABEL).plist
# RUSTUP_TOOLCHAIN for the agent: launchd's bare environment otherwise picks rustup's
# default toolchain, which may be too old. Empty: not set.
TOOLCHAIN ?= stable
AGENT_PATH := $(HOME)/.cargo/bin:/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin

ifeq ($(BIN),)
INSTALL_BIN = $(TARGET_DIR)/release/heph-selfupdate
INSTALL_DEPS := build
else
INSTALL_BIN := $(BIN)
INSTALL_DEPS :=
endif
# The installed binary: it renders the unit or plist and writes completions and man pages.
INSTALLED := $(DESTDIR)$(BINDIR)/heph-selfupdate

.PHONY: all build test lint demo bench fuzz ci install enable disable uninstall doctor \
	install-system enable-system disable-system uninstall-system doctor-system release-assets

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
	$(CARGO) run --locked --quiet --example demo

## Long runs of the property tests of every parser of outside input (tests/fuzz.rs) and
## of the simulated update lifecycle with faults (tests/simulation.rs). `make test` runs
## the same with a few hundred cases each. A failing sequence prints its SIM_SEED.
FUZZ_CASES ?= 300000
SIM_SEQUENCES ?= 100000
fuzz:
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --locked --release --test fuzz
	SIM_SEQUENCES=$(SIM_SEQUENCES) $(CARGO) test --locked --release --test simulation

## Benchmarks against the alternatives (curl, the plain cargo install); writes
## docs/benchmarks.md and docs/rebuild.svg. Needs crates.io once (fixture dependencies).
bench:
	$(CARGO) build --locked --release --bins --examples
	$(CARGO) run --locked --quiet --release --example bench

## What CI runs (.ci/run).
ci: test

## A release's prebuilt assets (docs/assets.md), for a release job: archives of the
## already built WORKSPACE (an absolute path) per package (PACKAGES, default: every one
## with a binary) and target (TARGETS, default: the host's), SHA256SUMS, its SSH signature
## with SSH_KEY and minisign signature with MINISIGN_KEY; uploaded to TAG's release when
## FORGE_URL and REPO are set, with the token in TOKEN_FILE or $$FORGEJO_TOKEN.
## Example: make release-assets WORKSPACE=$$PWD/../hephaestus TAG=v1.4.0 SSH_KEY=release_key
WORKSPACE ?= .
TAG ?=
TARGETS ?=
PACKAGES ?=
SSH_KEY ?=
MINISIGN_KEY ?=
FORGE_URL ?=
REPO ?=
TOKEN_FILE ?=
release-assets:
	$(if $(TAG),,$(error name the release: make release-assets TAG=vX.Y.Z))scripts/publish-assets \
	    --workspace=$(call q,$(WORKSPACE)) --tag=$(call q,$(TAG)) \
	    $(foreach t,$(TARGETS),--target=$(call q,$(t))) $(foreach p,$(PACKAGES),--package=$(call q,$(p))) \
	    $(if $(SSH_KEY),--ssh-key=$(call q,$(SSH_KEY))) $(if $(MINISIGN_KEY),--minisign-key=$(call q,$(MINISIGN_KEY))) \
	    $(if $(FORGE_URL),--forge-url=$(call q,$(FORGE_URL)) --repo=$(call q,$(REPO))) \
	    $(if $(TOKEN_FILE),--token-file=$(call q,$(TOKEN_FILE)))

## Install the binary, shell completions, man pages and the units (Linux) or the
## LaunchAgent (macOS). Enables nothing.
install: $(INSTALL_DEPS)
	install -d $(call q,$(DESTDIR)$(BINDIR))
	install -m 0755 $(call q,$(INSTALL_BIN)) $(call q,$(INSTALLED))
	install -d $(call q,$(DESTDIR)$(BASHCOMPDIR)) $(call q,$(DESTDIR)$(ZSHCOMPDIR)) \
	    $(call q,$(DESTDIR)$(FISHCOMPDIR)) $(call q,$(DESTDIR)$(MAN1DIR))
	$(call q,$(INSTALLED)) completions bash > $(call q,$(DESTDIR)$(BASHCOMPDIR)/heph-selfupdate)
	$(call q,$(INSTALLED)) completions zsh > $(call q,$(DESTDIR)$(ZSHCOMPDIR)/_heph-selfupdate)
	$(call q,$(INSTALLED)) completions fish > $(call q,$(DESTDIR)$(FISHCOMPDIR)/heph-selfupdate.fish)
	$(call q,$(INSTALLED)) __man --out-dir=$(call q,$(DESTDIR)$(MAN1DIR))
ifeq ($(UNAME),Darwin)
	install -d $(call q,$(DESTDIR)$(AGENTDIR)) $(call q,$(DESTDIR)$(HOME)/Library/Logs)
	$(call q,$(INSTALLED)) __render --syntax=plist --template=plists/heph-selfupdate.plist \
	    --var=BINDIR=$(call q,$(BINDIR)) --var=HOME=$(call q,$(HOME)) --var=LABEL=$(call q,$(LABEL)) \
	    --var=TOOLCHAIN=$(call q,$(TOOLCHAIN)) > $(call q,$(DESTDIR)$(PLIST))
else
	install -d $(call q,$(DESTDIR)$(UNITDIR))
	$(call q,$(INSTALLED)) __render --syntax=systemd --template=units/heph-selfupdate.service \
	    --var=BINDIR=$(call q,$(BINDIR)) > $(call q,$(DESTDIR)$(UNITDIR)/heph-selfupdate.service)
	install -m 0644 units/heph-selfupdate.timer $(call q,$(DESTDIR)$(UNITDIR)/heph-selfupdate.timer)
endif
ifeq ($(DESTDIR),)
	@bin=$(call q,$(BINDIR)); case ":$$PATH:" in *:"$$bin":*) ;; *) \
	  case "$$bin" in "$$HOME"/*) bin="\$$HOME/$${bin#"$$HOME"/}";; esac; \
	  printf 'warning: %s is not on your PATH: a shell will not find heph-selfupdate by name.\n' $(call q,$(BINDIR)) >&2; \
	  printf '         Add this line to your shell profile (~/.profile, ~/.bashrc or ~/.zshrc), then log in again:\n' >&2; \
	  printf '           export PATH="%s:$$PATH"\n' "$$bin" >&2; \
	  printf '         (fish: fish_add_path %s)\n' "$$bin" >&2;; \
	esac
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
	rm -f $(call q,$(INSTALLED))
	rm -f $(call q,$(DESTDIR)$(BASHCOMPDIR)/heph-selfupdate) $(call q,$(DESTDIR)$(ZSHCOMPDIR)/_heph-selfupdate) \
	    $(call q,$(DESTDIR)$(FISHCOMPDIR)/heph-selfupdate.fish)
	rm -f $(call q,$(DESTDIR)$(MAN1DIR))/heph-selfupdate.1 $(call q,$(DESTDIR)$(MAN1DIR))/heph-selfupdate-*.1
ifeq ($(UNAME),Darwin)
	rm -f $(call q,$(DESTDIR)$(PLIST))
else
	rm -f $(call q,$(DESTDIR)$(UNITDIR)/heph-selfupdate.service) $(call q,$(DESTDIR)$(UNITDIR)/heph-selfupdate.timer)
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

## System scope (Linux, as root): heph-selfupdate@USER.timer runs heph-selfupdate as USER,
## the user hephd.service runs as; set service_manager = "systemd-system" and
## restart = "respawn" in that user's config. As root it needs BIN= (built before, not as
## root; it refuses to compile). Installs the binary to SYSTEM_PREFIX, the
## units to SYSTEM_UNITDIR, and creates the user's data, state and cache directories (the
## unit can write nowhere else). Enables nothing.
install-system: $(INSTALL_DEPS)
	$(check_home)@$(check_owned)
	install -d $(call q,$(DESTDIR)$(SYSTEM_BINDIR)) $(call q,$(DESTDIR)$(SYSTEM_DROPIN))
	install -m 0755 $(call q,$(INSTALL_BIN)) $(call q,$(SYSTEM_INSTALLED))
	$(call q,$(SYSTEM_INSTALLED)) __render --syntax=systemd --template=units/heph-selfupdate@.service \
	    --var=BINDIR=$(call q,$(SYSTEM_BINDIR)) > $(call q,$(DESTDIR)$(SYSTEM_UNITDIR)/heph-selfupdate@.service)
	install -m 0644 units/heph-selfupdate@.timer $(call q,$(DESTDIR)$(SYSTEM_UNITDIR)/heph-selfupdate@.timer)
	$(call q,$(SYSTEM_INSTALLED)) __render --syntax=systemd --template=units/heph-selfupdate@.service.d/home.conf \
	    --var=HOME=$(call q,$(USER_HOME)) > $(call q,$(DESTDIR)$(SYSTEM_DROPIN)/home.conf)
ifeq ($(DESTDIR),)
	runuser -u $(call q,$(USER)) -- mkdir -p $(call q,$(USER_HOME)/.cargo/bin) \
	    $(call q,$(USER_HOME)/.local/share/heph-selfupdate) $(call q,$(USER_HOME)/.local/state/heph-selfupdate) \
	    $(call q,$(USER_HOME)/.cache/heph-selfupdate)
endif

## Turn system-scope updates on for USER: start heph-selfupdate@USER.timer.
enable-system:
	$(SYSTEMCTL_SYSTEM) daemon-reload
	$(SYSTEMCTL_SYSTEM) enable --now $(call q,$(SYSTEM_INSTANCE).timer)

## Turn them off: afterwards nothing of heph-selfupdate runs for USER.
disable-system:
	$(SYSTEMCTL_SYSTEM) disable --now $(call q,$(SYSTEM_INSTANCE).timer) 2>/dev/null || true
	$(SYSTEMCTL_SYSTEM) stop $(call q,$(SYSTEM_INSTANCE).service) 2>/dev/null || true

## Disable for USER and remove USER's drop-in; the template units and the binary go with
## the last user (state, cache and version roots stay; see README).
uninstall-system: disable-system
	rm -f $(call q,$(DESTDIR)$(SYSTEM_DROPIN)/home.conf)
	rmdir $(call q,$(DESTDIR)$(SYSTEM_DROPIN)) 2>/dev/null || true
	@if ls -d $(call q,$(DESTDIR)$(SYSTEM_UNITDIR))/heph-selfupdate@*.service.d >/dev/null 2>&1; then \
	  echo "heph-selfupdate@.service and $(SYSTEM_BINDIR)/heph-selfupdate stay: other users' instances use them"; \
	else \
	  echo rm -f $(call q,$(DESTDIR)$(SYSTEM_UNITDIR)/heph-selfupdate@.service) $(call q,$(DESTDIR)$(SYSTEM_UNITDIR)/heph-selfupdate@.timer) $(call q,$(SYSTEM_INSTALLED)); \
	  rm -f $(call q,$(DESTDIR)$(SYSTEM_UNITDIR)/heph-selfupdate@.service) $(call q,$(DESTDIR)$(SYSTEM_UNITDIR)/heph-selfupdate@.timer) $(call q,$(SYSTEM_INSTALLED)); \
	fi
	$(SYSTEMCTL_SYSTEM) daemon-reload 2>/dev/null || true

## `heph-selfupdate doctor` as USER, with the PATH and environment file the system unit gives.
## The file is read by heph-selfupdate as USER, never by systemd as root (no
## EnvironmentFile=: a link in USER's home could point at a root-only file).
doctor-system:
	$(check_home)systemd-run --wait --pipe --quiet --collect --uid=$(call q,$(USER)) \
	    --setenv=PATH=$(call q,$(SYSTEM_UNIT_PATH)) \
	    --setenv=HEPH_SELFUPDATE_ENV_FILE=$(call q,$(USER_HOME)/.config/heph-selfupdate/env) \
	    $(call q,$(SYSTEM_BINDIR)/heph-selfupdate) doctor
