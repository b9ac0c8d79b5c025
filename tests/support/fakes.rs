//! Stand-in programs (POSIX sh): a daemon that reports its version, a recording `cargo`
//! that installs such daemons, and a recording service manager (`systemctl`,
//! `launchctl`) that really starts and stops the daemon process.
//!
//! They record each call as one line in `$FAKE_LOG` and read their mode from files in
//! `$FAKE_STATE`, so a test can change their behaviour between runs.

/// A binary that prints `<name> <version> (fake)` for `--version` and otherwise runs as a
/// daemon until killed — unless `$FAKE_STATE/bad-<version>` exists: then it dies at
/// start, or after the number of seconds the file holds.
pub fn version_script(name: &str, version: &str) -> String {
    format!(
        r#"#!/bin/sh
case "$1" in --version) {RECORD_ALL}echo "{name} {version} (fake)"; exit 0;; esac
if [ -n "$FAKE_STATE" ] && [ -f "$FAKE_STATE/bad-{version}" ]; then sleep "$(cat "$FAKE_STATE/bad-{version}")" 2>/dev/null; echo "{name}: fatal error" >&2; exit 1; fi
exec sleep 100000
"#
    )
}

/// Records the call only when `$FAKE_RECORD_ALL` is set (see `TestEnv::record_everything`).
const RECORD_ALL: &str = r#"[ -n "$FAKE_RECORD_ALL" ] && { printf '%s' "$(basename "$0")" >> "$FAKE_LOG"; for a in "$@"; do printf ' %s' "$a" >> "$FAKE_LOG"; done; echo >> "$FAKE_LOG"; }; "#;

/// A program that records its call and exits with `code`.
pub fn recording_script(code: i32) -> String {
    format!("#!/bin/sh\n{RECORD}exit {code}\n")
}

/// A `git` that records its calls, then runs the real git (`$FAKE_REAL_GIT`).
pub fn git_script() -> String {
    format!("#!/bin/sh\n{RECORD}exec \"$FAKE_REAL_GIT\" \"$@\"\n")
}

const RECORD: &str = r#"printf '%s' "$(basename "$0")" >> "$FAKE_LOG"; for a in "$@"; do printf ' %s' "$a" >> "$FAKE_LOG"; done; echo >> "$FAKE_LOG"
if [ -n "$HEPH_SELFUPDATE_TOKEN" ]; then echo "TOKEN-IN-ENVIRONMENT $(basename "$0")" >> "$FAKE_LOG"; fi
"#;

/// `cargo install` stand-in. Modes (file `$FAKE_STATE/cargo-mode`): `ok`, `fail` (a
/// compile error), `network` (a fetch error), `rustc` (needs a newer rustc), `slow` (sleeps
/// 5 s first), `long` (33 s), `hang` (never finishes), `lie` (installs binaries reporting 0.0.1),
/// `wrong-commit` (records another commit). Writes `.crates2.json` with the commit built
/// (`--rev`, or the tag's).
pub fn cargo_script() -> String {
    format!(
        r#"#!/bin/sh
{RECORD}
mode=$(cat "$FAKE_STATE/cargo-mode" 2>/dev/null || echo ok)
[ "$1" = "--version" ] && {{ echo "cargo 1.95.0 (fake)"; exit 0; }}
[ "$1" = "install" ] || {{ echo "fake cargo: only install" >&2; exit 2; }}
root= tag= rev= git= pkgs=
for a in "$@"; do
  case "$a" in
    --root=*) root="${{a#--root=}}";;
    --tag=*) tag="${{a#--tag=}}";;
    --rev=*) rev="${{a#--rev=}}";;
    --git=*) git="${{a#--git=}}";;
    --*|install) ;;
    *) pkgs="$pkgs $a";;
  esac
done
echo "    Updating git repository \`$git\`" >&2
case "$mode" in
  fail) echo "error[E0425]: cannot find value \`x\` in this scope" >&2; echo "error: could not compile \`hephd\` (bin \"hephd\") due to 1 previous error" >&2; exit 101;;
  network) echo "error: failed to clone into: /tmp/x" >&2; echo "Caused by: network failure seems to have happened" >&2; exit 101;;
  rustc) echo "error: rustc 1.70.0 is not supported by the following package:" >&2; echo "  hephd@0.2.0 requires rustc 1.85" >&2; exit 101;;
  slow) sleep 5;;
  long) sleep 33;;
  hang) mkdir -p "$root/bin"; echo partial > "$root/bin/partial"; echo $$ > "$FAKE_STATE/cargo.pid"
        sleep 100000 & echo $! > "$FAKE_STATE/cargo-child.pid"; wait; exit 1;;
  fill) mkdir -p "$root/bin"; dd if=/dev/zero of="$root/bin/filler" bs=1M count=4096 2>&1 | tail -n 1 >&2
        echo "error: failed to write $root/bin/filler: No space left on device (os error 28)" >&2; exit 101;;
esac
if [ -n "$rev" ]; then
  # `--rev=<commit>`: the version is that of the tag naming the commit (peeled or not).
  tag=$("${{FAKE_REAL_GIT:-git}}" ls-remote --tags "$git" | grep "^$rev	" | head -n 1 | cut -f2 | sed 's|^refs/tags/||; s|\^{{}}$||')
  commit=$rev; source="rev=$rev"
else
  commit=$("${{FAKE_REAL_GIT:-git}}" ls-remote "$git" "refs/tags/$tag" "refs/tags/$tag^{{}}" | tail -n 1 | cut -f1)
  source="tag=$tag"
fi
version=${{tag#v}}
[ "$mode" = lie ] && version=0.0.1
[ "$mode" = wrong-commit ] && commit=0123456789abcdef0123456789abcdef01234567
mkdir -p "$root/bin"
installs=""
for p in $pkgs; do
  cat > "$root/bin/$p.new" <<SCRIPT
#!/bin/sh
case "\$1" in --version) [ -n "\$FAKE_RECORD_ALL" ] && echo "\$(basename "\$0") \$1" >> "\$FAKE_LOG"; echo "$p $version (fake)"; exit 0;; esac
if [ -n "\$FAKE_STATE" ] && [ -f "\$FAKE_STATE/bad-$version" ]; then sleep "\$(cat "\$FAKE_STATE/bad-$version")" 2>/dev/null; echo "$p: fatal error" >&2; exit 1; fi
exec sleep 100000
SCRIPT
  chmod +x "$root/bin/$p.new"; mv "$root/bin/$p.new" "$root/bin/$p"
  echo "  Installing $root/bin/$p" >&2
  [ -n "$installs" ] && installs="$installs,"
  installs="$installs\"$p $version (git+$git?$source#$commit)\":{{\"bins\":[\"$p\"]}}"
done
echo "{{\"installs\":{{$installs}}}}" > "$root/.crates2.json"
"#
    )
}

/// A service manager stand-in: `systemctl` and `launchctl` in one script (by its name).
/// `restart`/`kickstart -k` kill the daemon and start `$HOME/.cargo/bin/hephd` again (or the
/// binary `$FAKE_STATE/daemon` names there);
/// `show`/`print` report it as systemd/launchd would. With `$FAKE_STATE/manager-down`
/// it fails as if the manager could not be reached; with `$FAKE_STATE/stuck-<version>`
/// `show` says that version is forever starting; with `$FAKE_STATE/restart-fails-once`
/// the next restart is refused; with `$FAKE_STATE/restart-delay` holding seconds, a
/// restart blocks that long first (a daemon that drains slowly); with
/// `$FAKE_STATE/come-up-delay` holding seconds, `show` says the daemon is still starting
/// for that long after a restart returns (a daemon slow to come up).
///
/// With `$FAKE_STATE/keepalive` the daemon runs under a supervisor, as with systemd's
/// `Restart=always` or launchd's `KeepAlive`: whenever it exits (or is killed), the
/// supervisor starts it again 0.2 s later and counts the restart (`NRestarts`, `runs`);
/// meanwhile `show` says `activating (auto-restart)`. `show` also answers what `doctor`
/// asks of a unit: `Restart=` (`always` with keepalive, else `no`, or the contents of
/// `unit-restart`), `User=` (this user, or `unit-user`), `ExecStart=` (`~/.cargo/bin/hephd`,
/// or `unit-exec`), `ActiveEnterTimestamp=` (when the running daemon was started, as
/// systemd writes it) and `ControlGroup=` (the running daemon's cgroup, empty when it is
/// the root one).
pub fn service_manager_script() -> String {
    format!(
        r#"#!/bin/sh
{RECORD}
S="$FAKE_STATE"
me=$(basename "$0")
# The daemon the unit runs: `$FAKE_STATE/daemon` names another binary in ~/.cargo/bin.
D="$HOME/.cargo/bin/$(cat "$S/daemon" 2>/dev/null || echo hephd)"
if [ -f "$S/manager-down" ]; then echo "Failed to connect to bus: No such file or directory" >&2; exit 1; fi
running() {{
  [ -r "/proc/$1/stat" ] || return 1
  st=$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)
  [ "$st" != Z ]
}}
alive() {{
  [ -f "$S/pid" ] && running "$(cat "$S/pid")"
}}
supervised() {{
  [ -f "$S/supervisor.pid" ] && running "$(cat "$S/supervisor.pid")"
}}
count() {{
  n=$(cat "$S/$1" 2>/dev/null || echo 0); echo $((n+1)) > "$S/$1"
}}
spawn() {{
  "$D" --mode local </dev/null >>"$S/daemon.log" 2>&1 9>&- &
  echo $! > "$S/pid"
  date '+%a %Y-%m-%d %H:%M:%S %Z' > "$S/since"
  count invocations
}}
supervise() {{
  exec 9>>"$S/state.lock"
  while :; do
    wait "$(cat "$S/pid")" 2>/dev/null
    echo $? > "$S/last-exit"
    sleep 0.2
    # The sandbox is gone (the test ended): stop.
    [ -x "$D" ] || exit 0
    # The count and the new PID change together for `show` (which takes the same lock).
    flock 9
    count restarts
    spawn
    flock -u 9
  done
}}
restart() {{
  # A daemon that drains slowly: the restart blocks this long before the old one stops.
  if [ -f "$S/restart-delay" ]; then sleep "$(cat "$S/restart-delay")"; fi
  if supervised; then kill "$(cat "$S/supervisor.pid")" 2>/dev/null; rm -f "$S/supervisor.pid"; fi
  if [ -f "$S/pid" ]; then
    kill "$(cat "$S/pid")" 2>/dev/null
    i=0; while alive && [ $i -lt 2000 ]; do sleep 0.005; i=$((i+1)); done
    kill -9 "$(cat "$S/pid")" 2>/dev/null
    date +%s%N >> "$S/stopped"
  fi
  if [ -f "$S/keepalive" ]; then
    # The supervisor starts the daemon itself, so that it can wait for it.
    ( spawn; supervise ) </dev/null >>"$S/daemon.log" 2>&1 &
    echo $! > "$S/supervisor.pid"
    i=0; while ! alive && [ $i -lt 400 ]; do sleep 0.005; i=$((i+1)); done
  else
    spawn
  fi
  # A daemon slow to come up: starting (no main PID) until `up-at` (Unix ms).
  if [ -f "$S/come-up-delay" ]; then
    awk -v n="$(date +%s%3N)" -v d="$(cat "$S/come-up-delay")" 'BEGIN {{ printf "%.0f\n", n + d * 1000 }}' > "$S/up-at"
  else
    rm -f "$S/up-at"
  fi
}}
verb=""
for a in "$@"; do case "$a" in -*) ;; *) if [ -z "$verb" ]; then verb="$a"; fi;; esac; done
case "$me:$verb" in
  systemctl:restart|systemctl:start|launchctl:kickstart)
    if [ -f "$S/restart-fails-once" ]; then rm -f "$S/restart-fails-once"; echo "Failed to restart hephd.service: Transaction is destructive." >&2; exit 1; fi
    restart;;
  systemctl:show)
    # heph-selfupdate's own system unit: the environment files `$S/selfupdate-env-files`
    # names (one `PATH (ignore_errors=yes)` a line), from drop-ins `$S/selfupdate-drop-ins`.
    case " $* " in *" heph-selfupdate@"*)
      if [ -f "$S/selfupdate-env-files" ]; then sed 's/^/EnvironmentFiles=/' "$S/selfupdate-env-files"; else echo "EnvironmentFiles="; fi
      echo "DropInPaths=$(cat "$S/selfupdate-drop-ins" 2>/dev/null)"
      exit 0;;
    esac
    case " $* " in *" heph-selfupdate.timer "*)
      if [ -f "$S/timer-enabled" ]; then echo "LoadState=loaded"; echo "UnitFileState=enabled"; echo "ActiveState=active"; echo "NextElapseUSecRealtime=$(cat "$S/timer-enabled")";
      else echo "LoadState=not-found"; echo "UnitFileState="; echo "ActiveState=inactive"; fi
      exit 0;;
    esac
    exec 9>>"$S/state.lock"; flock 9
    v=$(FAKE_RECORD_ALL= "$D" --version 2>/dev/null | cut -d' ' -f2)
    if [ -f "$S/up-at" ] && [ "$(date +%s%3N)" -lt "$(cat "$S/up-at")" ]; then echo "ActiveState=activating"; echo "SubState=start"; echo "MainPID=0"; echo "NRestarts=0"; echo "LoadState=loaded"; exit 0; fi
    if [ -f "$S/stuck-$v" ]; then echo "ActiveState=activating"; echo "SubState=start"; echo "MainPID=0"; echo "NRestarts=0"; echo "LoadState=loaded"; exit 0; fi
    if alive; then echo "ActiveState=active"; echo "SubState=running"; echo "MainPID=$(cat "$S/pid")"; echo "ActiveEnterTimestamp=$(cat "$S/since" 2>/dev/null)";
      # The daemon's own cgroup, as systemd names a unit's; none when that is the root.
      cg=$(sed -n 's/^0:://p' "/proc/$(cat "$S/pid")/cgroup" 2>/dev/null); [ "$cg" = / ] && cg=; echo "ControlGroup=$cg";
    elif supervised; then echo "ActiveState=activating"; echo "SubState=auto-restart"; echo "MainPID=0";
    else echo "ActiveState=failed"; echo "SubState=failed"; echo "MainPID=0"; fi
    echo "NRestarts=$(cat "$S/restarts" 2>/dev/null || echo 0)"
    echo "InvocationID=$(cat "$S/invocations" 2>/dev/null || echo 0)"
    echo "LoadState=loaded"
    if [ -f "$S/unit-restart" ]; then echo "Restart=$(cat "$S/unit-restart")";
    elif [ -f "$S/keepalive" ]; then echo "Restart=always"; else echo "Restart=no"; fi
    echo "RestartUSec=200ms"
    echo "User=$(cat "$S/unit-user" 2>/dev/null || id -un)"
    exe=$(cat "$S/unit-exec" 2>/dev/null || echo "$D")
    echo "ExecStart={{ path=$exe ; argv[]=$exe --mode local ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }}";;
  launchctl:print)
    exec 9>>"$S/state.lock"; flock 9
    echo "$2 = {{"
    echo "	active count = 1"
    echo "	state = $(if alive; then echo running; else echo 'not running'; fi)"
    if [ -f "$S/keepalive" ]; then echo "	properties = keepalive | runatload | inferred program"; fi
    if alive; then echo "	pid = $(cat "$S/pid")"; fi
    echo "	runs = $(cat "$S/invocations" 2>/dev/null || echo 0)"
    echo "	last exit code = $(if alive; then echo '(never exited)'; else cat "$S/last-exit" 2>/dev/null || echo 1; fi)"
    echo "}}";;
  *) ;;
esac
exit 0
"#
    )
}
