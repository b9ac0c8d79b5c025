//! Shell completions and man pages, generated from the command-line definition.

use std::process::Command;

use crate::support::assert_snapshot;
use crate::support::env::TestEnv;

#[test]
fn bash_can_source_the_completion_and_it_completes_commands_and_options() {
    let env = TestEnv::new();
    let run = env.run(&["completions", "bash"]);
    run.expect(0);
    let file = env.dir.path().join("heph-selfupdate.bash");
    std::fs::write(&file, &run.stdout).unwrap();
    // Source it, show the registration, then ask it as bash would on <TAB>.
    let script = r#"
set -e
source "$1"
complete -p heph-selfupdate
complete_words() {
    COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    "$fn" heph-selfupdate "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    echo "${COMPREPLY[*]}"
}
fn=$(complete -p heph-selfupdate | sed -n 's/.*-F \([^ ]*\).*/\1/p')
complete_words heph-selfupdate che
complete_words heph-selfupdate status --j
complete_words heph-selfupdate completions ''
"#;
    let out = Command::new("bash")
        .args(["--noprofile", "--norc", "-c", script, "bash"])
        .arg(&file)
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{:?}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("complete ")
            && lines[0].contains(" -F ")
            && lines[0].ends_with(" heph-selfupdate"),
        "{stdout}"
    );
    assert_eq!(lines[1], "check check-and-apply", "{stdout}");
    assert_eq!(lines[2], "--json", "{stdout}");
    let shells: Vec<&str> = lines[3].split(' ').collect();
    for shell in ["bash", "zsh", "fish"] {
        assert!(shells.contains(&shell), "{stdout}");
    }
}

#[test]
fn the_man_page_is_a_reviewed_snapshot() {
    let env = TestEnv::new();
    let dir = env.dir.path().join("man1");
    std::fs::create_dir_all(&dir).unwrap();
    let dir_arg = format!("--out-dir={}", dir.display());
    env.run(&["__man", &dir_arg]).expect(0);
    let page = std::fs::read_to_string(dir.join("heph-selfupdate.1")).unwrap();
    assert_snapshot("heph-selfupdate.1", &page);
    if Command::new("man").arg("--version").output().is_ok() {
        // man renders it without a warning from groff.
        let out = Command::new("man")
            .arg("-l")
            .arg(dir.join("heph-selfupdate.1"))
            .env("MANWIDTH", "100")
            .env("MANPAGER", "cat")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.is_empty(), "{stderr}");
        assert!(!out.stdout.is_empty());
    }
}

#[test]
fn the_completions_help_is_a_reviewed_snapshot() {
    let env = TestEnv::new();
    let run = env.run(&["completions", "--help"]);
    run.expect(0);
    assert_snapshot("help-completions.txt", &run.stdout);
}
