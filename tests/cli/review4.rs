//! Review 4: reproductions of defects in the fixes of e7e74ca (a fetch tried into a new
//! repository beside the checkout). Each test is ignored and fails on the code it was
//! written against; it passes once the defect is fixed.

use std::path::Path;

use crate::e2e_cargo::{checkout_dir, e2e, offer, plain_install, run_bin};
use crate::support::fixture::{self, Daemon};

/// The real git the stand-ins below hand over to.
fn real_git() -> &'static str {
    ["/usr/local/bin/git", "/usr/bin/git", "/bin/git"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("git")
}

/// A user's machine is killed (power cut, OOM kill of the service, `systemctl stop`
/// past its timeout) while a run heals a damaged checkout: `fetch_healing` has moved the
/// target dir into `<cache>/checkout.new` and removed `<cache>/checkout`, but not yet
/// renamed the new repository into place. The README promises the new repository
/// "replaces the checkout (its target dir kept)". What happens: the next run finds no
/// checkout, makes one from nothing (a cold build), and `checkout.new`, holding the
/// whole target dir (gigabytes on a real project), is never removed nor reported by
/// `status`; only another heal, if one ever happens, deletes it (target dir and all).
#[test]
#[ignore = "review4: reproduces a defect"]
fn a_kill_between_the_renames_of_a_healed_checkout_neither_leaks_checkout_new_nor_loses_the_target_dir()
 {
    let e = e2e(
        &[
            ("v0.1.0", Daemon::Good),
            ("v0.2.0", Daemon::Good),
            ("v0.3.0", Daemon::Good),
        ],
        &["v0.1.0", "v0.2.0"],
    );
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    e.env.run(&["check-and-apply"]).expect(0);
    let checkout = checkout_dir(&e);
    let target = checkout.join("target");
    assert!(target.is_dir(), "the build left its target dir");
    std::fs::write(target.join("review4-sentinel"), "the target dir of v0.2.0").unwrap();

    // The state fetch_healing leaves when killed after `remove_all(checkout)` and before
    // `rename(checkout.new, checkout)`: the new repository with v0.3.0 fetched, the
    // target dir moved into it, no checkout.
    let fresh = checkout.with_file_name("checkout.new");
    fixture::git(
        e.env.dir.path(),
        &["init", "-q", &fresh.display().to_string()],
    );
    fixture::git(
        &fresh,
        &[
            "fetch",
            "-q",
            "--no-tags",
            "--",
            &e.repo.url(),
            "+refs/tags/v0.3.0:refs/tags/v0.3.0",
        ],
    );
    std::fs::rename(&target, fresh.join("target")).unwrap();
    std::fs::remove_dir_all(&checkout).unwrap();

    offer(&e, &["v0.1.0", "v0.2.0", "v0.3.0"]);
    let run = e.env.run(&["check-and-apply"]);
    run.expect(0);
    assert_eq!(
        run_bin(&e.env.bin_dir.join("hephd")),
        "hephd 0.3.0 (build of v0.3.0)"
    );
    assert!(
        !fresh.exists(),
        "{} (with the old target dir) is left behind after a successful run:\n{}",
        fresh.display(),
        run.stderr
    );
    assert!(
        checkout.join("target/review4-sentinel").is_file(),
        "the target dir the killed heal was moving was not kept:\n{}",
        run.stderr
    );
}

/// A user runs the service on a machine with little memory (a small VPS, a Raspberry
/// Pi, a `MemoryMax=` on the unit): the kernel kills git's unpacker (`unpack-objects` or
/// `index-pack`) while `git fetch` receives a release. git says "error: unpack-objects
/// died of signal 9 / fatal: unpack-objects failed"; the fetch into the new repository
/// beside the checkout is killed the same way. What happens: the failure is called
/// "(the server)", the help tells the user to ask the forge's admins because the
/// repository "may be corrupt", and the good release is backed off. What is promised:
/// a process killed by SIGKILL is the machine's failure and "the release is not
/// blamed" (diagnose.rs, README's failure classes); before e7e74ca this fetch failure
/// was "(the machine)" without backoff.
#[test]
#[ignore = "review4: reproduces a defect"]
fn a_fetch_whose_unpacker_the_oom_killer_kills_is_not_blamed_on_the_server_nor_backs_off_the_release()
 {
    let e = e2e(
        &[
            ("v0.1.0", Daemon::Good),
            ("v0.2.0", Daemon::Good),
            ("v0.3.0", Daemon::Good),
        ],
        &["v0.1.0", "v0.2.0"],
    );
    plain_install(&e, "v0.1.0");
    e.env.start_daemon();
    e.env.run(&["check-and-apply"]).expect(0);

    // The real git, whose helpers that receive objects die of SIGKILL (as the OOM killer
    // kills them): `git fetch` runs them through its exec path.
    let real = real_git();
    let exec_path = std::process::Command::new(real)
        .arg("--exec-path")
        .output()
        .unwrap();
    let exec_path = String::from_utf8_lossy(&exec_path.stdout).trim().to_owned();
    let shim = e.env.dir.path().join("oom-exec-path");
    std::fs::create_dir_all(&shim).unwrap();
    let helper = shim.join("git");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\ncase \"$1\" in index-pack|unpack-objects) kill -9 $$;; esac\nGIT_EXEC_PATH='{exec_path}' exec '{real}' \"$@\"\n"
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&helper).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&helper, perms).unwrap();
    e.env.fake_bin(
        "git",
        &format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = fetch ] && GIT_EXEC_PATH='{}' exec '{real}' \"$@\"; done\nexec '{real}' \"$@\"\n",
            shim.display()
        ),
    );

    offer(&e, &["v0.1.0", "v0.2.0", "v0.3.0"]);
    let run = e.env.run(&["check-and-apply"]);
    assert_ne!(run.code, 0, "the fetch was killed:\n{}", run.stderr);
    assert!(
        run.stderr.contains("died of signal 9"),
        "git's unpacker was killed:\n{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("(the server)") && !run.stderr.contains("forge's admins"),
        "a process this machine killed is blamed on the server:\n{}",
        run.stderr
    );
    assert!(
        e.env.backoff_of("0.3.0").is_null(),
        "v0.3.0 was backed off for this machine's memory:\n{}",
        run.stderr
    );
}
