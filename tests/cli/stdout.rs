//! Output streams a person or a script may close or redirect: a reader that goes away
//! (`| head`, `| true`), a full disk, and colour only on a terminal.

use std::io::Read;
use std::process::{Command, Stdio};

use crate::support::env::TestEnv;
use crate::support::forge::{FakeForge, FakeRelease, Flavour};

/// What a run left when its stdout was a pipe nobody reads.
struct Closed {
    code: Option<i32>,
    signal: Option<i32>,
    stderr: String,
}

/// Runs the binary with stdout a pipe whose read end is already closed, as in
/// `heph-selfupdate status | true` when `true` exits first.
fn run_with_closed_stdout(mut cmd: Command) -> Closed {
    use std::os::unix::process::ExitStatusExt;
    // Close-on-exec, so no other test's child keeps the read end open.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = cmd
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    Closed {
        code: out.status.code(),
        signal: out.status.signal(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn sandbox() -> (TestEnv, FakeForge) {
    let forge = FakeForge::start(Flavour::Forgejo, vec![FakeRelease::new("v0.1.0")]);
    let mut env = TestEnv::new();
    env.forge(&forge);
    env.install_fakes();
    env.install_plain("0.1.0", &["heph", "hephd"]);
    (env, forge)
}

#[test]
fn a_closed_stdout_ends_each_command_quietly_with_its_own_exit_code() {
    let (env, _forge) = sandbox();
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["check", "--json"],
        &["check"],
        &["config"],
        &["config", "--json"],
        &["doctor"],
        &["check-and-apply", "--dry-run"],
        &["completions", "bash"],
    ] {
        let read = env.run(args);
        let closed = run_with_closed_stdout(env.command(args));
        assert!(!read.stdout.is_empty(), "{args:?} prints something");
        assert_eq!(
            (closed.code, closed.signal),
            (Some(read.code), None),
            "{args:?}: the exit code of a run whose output was read, and no signal\n{}",
            closed.stderr
        );
        assert_eq!(
            closed.stderr, read.stderr,
            "{args:?}: nothing more on stderr (no panic, no broken pipe)"
        );
    }
}

#[test]
fn a_closed_stdout_does_not_change_what_check_reports_by_its_exit_code() {
    let forge = FakeForge::start(
        Flavour::Forgejo,
        vec![FakeRelease::new("v0.1.0"), FakeRelease::new("v0.2.0")],
    );
    let mut env = TestEnv::new();
    env.forge(&forge);
    env.install_plain("0.1.0", &["heph", "hephd"]);
    let run = run_with_closed_stdout(env.command(&["check", "--json"]));
    assert_eq!(run.code, Some(100), "{}", run.stderr);
}

#[test]
fn a_full_disk_behind_stdout_is_an_error_not_a_silent_loss() {
    if !std::path::Path::new("/dev/full").exists() {
        eprintln!("SKIPPED: no /dev/full");
        return;
    }
    let (env, _forge) = sandbox();
    let mut cmd = env.command(&["config"]);
    cmd.stdout(std::fs::File::create("/dev/full").unwrap());
    let out = cmd.stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: could not write the output to stdout")
            && !stderr.contains("panicked"),
        "{stderr}"
    );
}

/// Runs the binary with stderr on a new pseudo-terminal; returns what the terminal got.
fn stderr_on_a_terminal(mut cmd: Command) -> String {
    let (mut master, slave) = crate::support::pty::open();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    // The child holds the only slave end now (ours went into the Command, dropped below).
    drop(cmd);
    let mut text = Vec::new();
    // Read until the child's end closes (EIO on Linux).
    let _ = master.read_to_end(&mut text);
    child.wait().unwrap();
    String::from_utf8_lossy(&text).into_owned()
}

#[test]
fn error_labels_are_coloured_on_a_terminal_unless_no_color_or_a_dumb_terminal() {
    let mut env = TestEnv::new();
    env.var("HEPH_SELFUPDATE_FORGE_URL", "http://127.0.0.1:9")
        .var("TERM", "xterm-256color");
    let coloured = stderr_on_a_terminal(env.command(&["check"]));
    assert!(
        coloured.starts_with("\x1b[1;31merror:\x1b[0m "),
        "{coloured:?}"
    );
    env.var("NO_COLOR", "1");
    let plain = stderr_on_a_terminal(env.command(&["check"]));
    assert!(plain.starts_with("error: "), "{plain:?}");
    env.unset("NO_COLOR").var("TERM", "dumb");
    let dumb = stderr_on_a_terminal(env.command(&["check"]));
    assert!(dumb.starts_with("error: "), "{dumb:?}");
    env.var("TERM", "xterm").var("JOURNAL_STREAM", "8:1234");
    let journal = stderr_on_a_terminal(env.command(&["check"]));
    assert!(!journal.contains('\x1b'), "{journal:?}");
}
