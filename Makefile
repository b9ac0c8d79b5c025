# heph-selfupdate — build, test, demo, install and enable.
# PREFIX and DESTDIR are respected; every target can be run again safely; `make -n` shows
# exactly what a target would do.

CARGO   ?= cargo
PREFIX  ?= $(HOME)/.local
DESTDIR ?=
BINDIR  := $(DESTDIR)$(PREFIX)/bin

.PHONY: all build test lint demo bench fuzz ci

all: build

build:
	$(CARGO) build --release --locked

## The README's test command: formatting, lints, every test (the real-systemd ones
## skip with a message unless run as root).
test: lint
	$(CARGO) test --locked --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

## The sandboxed demo: a local git repository, a loopback stand-in forge, a stand-in
## service manager, a throw-away HOME. No forge on the network is needed.
demo:
	$(CARGO) build --locked --bins --examples
	./target/debug/examples/demo

## What CI runs.
ci: test
