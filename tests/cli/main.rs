//! Integration tests: the real binary against a loopback stand-in forge and stand-in
//! programs, each test in its own sandboxed home.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod apply;
mod check;
mod checkout_build;
mod completions;
mod config;
mod e2e_cargo;
mod faults;
mod fetch_failures;
mod fleet;
mod privilege;
mod promises_transaction;
mod promises_ux;
mod publish;
mod recovery;
mod respawn;
mod stdout;
mod systemd;
mod transaction;
mod trust;
mod units;
mod untested;
mod version;
mod workspaces;
