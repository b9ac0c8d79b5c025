//! git commands: resolving a tag to its commit, and the persistent checkout used by
//! `build = "checkout"`. Every command is built here (so `--dry-run` shows the same
//! argv) and values go after `--` or as `--opt=value`.

use std::path::{Path, PathBuf};

use crate::process::Cmd;
use crate::tool_path::Tool;

/// Environment for every git (and cargo) child: never prompt for credentials.
pub const NO_PROMPT: (&str, &str) = ("GIT_TERMINAL_PROMPT", "0");

/// A git command as every one of ours starts: hooks never run (`core.hooksPath=/dev/null`)
/// nor an fsmonitor (`core.fsmonitor=false`), whatever a repository's own configuration
/// says — the build checkout's `.git` is writable by the user a release's build scripts
/// run as, and `git checkout` runs `post-checkout`, `git fetch` `reference-transaction`.
/// Values given with `-c` win over every configuration file. Never prompts.
pub fn command(git: &Tool, summary: impl Into<String>) -> Cmd {
    git.cmd(summary)
        .args([
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "core.fsmonitor=false",
        ])
        .env(NO_PROMPT.0, NO_PROMPT.1)
}

/// `git ls-remote` of one tag; its peeled line (`^{}`) names the commit of an annotated tag.
pub fn ls_remote(git: &Tool, url: &str, tag: &str) -> Cmd {
    command(git, format!("find the commit of {tag}"))
        .args(["ls-remote", "--exit-code", "--tags", url])
        .arg(format!("refs/tags/{tag}"))
        .arg(format!("refs/tags/{tag}^{{}}"))
}

/// The commit a tag names, from `ls-remote` output (peeled for annotated tags).
pub fn parse_ls_remote(output: &str, tag: &str) -> Option<String> {
    let mut direct = None;
    for line in output.lines() {
        let (hash, name) = line.split_once('\t')?;
        let valid = hash.len() >= 40 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            continue;
        }
        if name == format!("refs/tags/{tag}^{{}}") {
            return Some(hash.to_owned());
        }
        if name == format!("refs/tags/{tag}") {
            direct = Some(hash.to_owned());
        }
    }
    direct
}

/// True for a repository on this machine (a path or a `file://` URL).
pub fn is_local_url(url: &str) -> bool {
    url.starts_with('/')
        || url.starts_with("file://")
        || url.starts_with("./")
        || url.starts_with("../")
}

/// The manifest of the Cargo workspace in a checked-out repository that holds
/// `packages`: `Cargo.toml` at its top, or else (a repository with more than Rust in it)
/// the shallowest one below whose directory holds every package, one that declares a
/// `[workspace]` first (a `fuzz/` workspace beside the real one is passed over), as
/// `cargo install --git` finds packages anywhere in the repository. Hidden directories
/// and `target` are not searched; at most four levels deep.
pub fn workspace_manifest(repo: &Path, packages: &[String]) -> PathBuf {
    let top = repo.join("Cargo.toml");
    if top.is_file() {
        return top;
    }
    let manifests = manifests_below(repo, 4);
    let package_of = |m: &Path| -> Option<(String, bool)> {
        let table = std::fs::read_to_string(m)
            .ok()?
            .parse::<toml::Table>()
            .ok()?;
        let name = table
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(toml::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Some((name, table.contains_key("workspace")))
    };
    let read: Vec<(PathBuf, String, bool)> = manifests
        .into_iter()
        .filter_map(|m| package_of(&m).map(|(name, ws)| (m, name, ws)))
        .collect();
    let holds_all = |m: &Path| {
        let dir = m.parent().unwrap_or(repo);
        packages.iter().all(|p| {
            read.iter()
                .any(|(other, name, _)| name == p && other.starts_with(dir))
        })
    };
    // Shallowest first (the walk is breadth-first), workspaces before plain packages.
    let pick = read
        .iter()
        .filter(|(_, _, ws)| *ws)
        .chain(read.iter().filter(|(_, _, ws)| !*ws))
        .map(|(m, _, _)| m)
        .filter(|m| holds_all(m))
        .min_by_key(|m| m.components().count());
    pick.cloned()
        .or_else(|| read.first().map(|(m, _, _)| m.clone()))
        .unwrap_or(top)
}

/// Every `Cargo.toml` below `repo` (not its own), breadth-first, in name order within a
/// level; hidden directories and `target` skipped.
fn manifests_below(repo: &Path, depth: usize) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut level = vec![repo.to_path_buf()];
    for _ in 0..depth {
        let mut next = Vec::new();
        for dir in &level {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
            entries.sort_by_key(std::fs::DirEntry::file_name);
            for e in entries {
                let name = e.file_name();
                let hidden = name.to_string_lossy().starts_with('.');
                if hidden || name == "target" || !e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let manifest = e.path().join("Cargo.toml");
                if manifest.is_file() {
                    found.push(manifest);
                }
                next.push(e.path());
            }
        }
        level = next;
    }
    found
}

/// Reading one tag without a checkout of our own, and without changing one: `doctor`
/// reads the newest release's manifests this way, and `verify_tag` reads the tag object
/// (from the build checkout's git dir, or from a scratch one it was fetched into alone).
#[derive(Debug, Clone)]
pub struct Peek {
    pub git: Tool,
    /// A git dir that has the tag (the build checkout's), or a scratch one to fetch into.
    pub git_dir: PathBuf,
}

impl Peek {
    fn git(&self, summary: String) -> Cmd {
        let mut dir = std::ffi::OsString::from("--git-dir=");
        dir.push(&self.git_dir);
        command(&self.git, summary).arg(dir)
    }

    /// Succeeds when the git dir has the tag.
    pub fn has_tag(&self, tag: &str) -> Cmd {
        self.git(format!("look for {tag} in the build checkout"))
            .args(["rev-parse", "--verify", "--quiet"])
            .arg(format!("refs/tags/{tag}^{{commit}}"))
    }

    /// Makes the scratch git dir.
    pub fn init(&self) -> Cmd {
        command(&self.git, "create a scratch repository")
            .args(["init", "--quiet", "--bare"])
            .arg(&self.git_dir)
    }

    /// Fetches the tag's commit alone (no history) into the scratch git dir.
    pub fn fetch(&self, url: &str, tag: &str) -> Cmd {
        self.git(format!("fetch {tag} (its files only)"))
            .args(["fetch", "--quiet", "--depth=1", "--no-tags", "--", url])
            .arg(format!("+refs/tags/{tag}:refs/tags/{tag}"))
    }

    /// Prints the tag object of `tag` (its header, message and signature), for
    /// `verify_tag` ([`crate::build::signature`]); fails for a lightweight tag.
    pub fn read_tag(&self, tag: &str) -> Cmd {
        self.git(format!("read the tag object of {tag}"))
            .args(["cat-file", "tag"])
            .arg(format!("refs/tags/{tag}"))
    }

    /// Prints the commit the fetched tag names.
    pub fn tag_commit(&self, tag: &str) -> Cmd {
        self.git(format!("read the commit of the fetched {tag}"))
            .args(["rev-parse", "--verify", "--quiet"])
            .arg(format!("refs/tags/{tag}^{{commit}}"))
    }

    /// Writes the tag's files to `tree`, keeping git's index in `index` (never the
    /// checkout's own: its files and index stay as they are).
    pub fn write_tree(&self, tag: &str, tree: &Path, index: &Path) -> Cmd {
        let mut work_tree = std::ffi::OsString::from("--work-tree=");
        work_tree.push(tree);
        self.git(format!("write the files of {tag}"))
            .arg(work_tree)
            .args(["checkout", "--quiet"])
            .arg(format!("refs/tags/{tag}"))
            .args(["--", "."])
            .env("GIT_INDEX_FILE", index)
    }
}

/// The sparse-checkout patterns of the build checkout: every file but cargo's
/// configuration files, at any depth. `cargo install --path DIR` reads `.cargo/config.toml`
/// (and the older `.cargo/config`) in DIR and every directory above it, so a release's own
/// `[env]`, `build.rustc-wrapper` or `build.rustc` would apply to the checkout build, when
/// `cargo install --git` — whose configuration starts at `CARGO_HOME` — reads none of them.
pub const CARGO_CONFIG_PATTERNS: &str = "/*\n!**/.cargo/config\n!**/.cargo/config.toml\n";

/// Cargo configuration files cargo would read for a package in `member_dir` from inside
/// `checkout` (in that directory or one above it, up to the checkout's top): none, once
/// the checkout left them out ([`Checkout::hide_cargo_config`]); a submodule's are not.
pub fn cargo_configs_in(checkout: &Path, member_dir: &Path) -> Vec<PathBuf> {
    member_dir
        .ancestors()
        .take_while(|d| d.starts_with(checkout))
        .flat_map(|d| ["config", "config.toml"].map(|f| d.join(".cargo").join(f)))
        .filter(|p| p.exists())
        .collect()
}

/// Where the persistent checkout lives in the cache dir.
pub fn checkout_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("checkout")
}

/// The persistent checkout for `build = "checkout"`.
#[derive(Debug, Clone)]
pub struct Checkout {
    pub git: Tool,
    pub dir: PathBuf,
}

/// The file in the checkout's `.git` that says what the checkout was made for: the
/// repository (without credentials) on its first line, the commit last checked out on
/// the second.
const MARKER: &str = "heph-selfupdate";

/// The state of the persistent checkout, from its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// There is none yet.
    Missing,
    /// It must be made again; the reason, for the log.
    Damaged(String),
    /// Usable.
    Sound,
}

/// Lock files a killed git leaves behind (`index.lock`, `HEAD.lock`, a ref's `.lock`).
fn find_lock(dir: &Path, depth: usize) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let path = e.path();
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir && path.extension().is_some_and(|x| x == "lock") {
            return Some(path);
        }
        // Refs nest (refs/tags/v1.lock); objects do not hold locks worth the walk.
        let name = e.file_name();
        if is_dir
            && depth > 0
            && (depth < 8 || name == "refs")
            && name != "objects"
            && let Some(found) = find_lock(&path, depth - 1)
        {
            return Some(found);
        }
    }
    None
}

impl Checkout {
    fn git(&self, summary: String) -> Cmd {
        command(&self.git, summary).arg("-C").arg(&self.dir)
    }

    /// True when the directory already holds a repository.
    pub fn exists(&self) -> bool {
        self.dir.join(".git").exists()
    }

    fn marker(&self) -> PathBuf {
        self.dir.join(".git").join(MARKER)
    }

    /// Records that the checkout was made for `url` and, once checked out, is at `commit`.
    pub fn write_marker(&self, url: &str, commit: Option<&str>) -> anyhow::Result<()> {
        let text = format!(
            "{}\n{}\n",
            crate::redact::url(url),
            commit.unwrap_or_default()
        );
        crate::fsutil::atomic_write(&self.marker(), text.as_bytes())
    }

    /// Forgets what the checkout was made for: the next run makes it again.
    pub fn condemn(&self) {
        let _ = std::fs::remove_file(self.marker());
    }

    /// Checks, from its files alone, that the checkout is a repository made for `url` by
    /// us, with no lock a killed git left, and `HEAD` where the last build left it.
    /// Uncommitted changes need git: see [`Checkout::status`].
    pub fn health(&self, url: &str) -> Health {
        let git_dir = self.dir.join(".git");
        if !self.dir.exists() {
            return Health::Missing;
        }
        let is_repo =
            git_dir.is_dir() && git_dir.join("objects").is_dir() && git_dir.join("refs").is_dir();
        let Some(head) = is_repo
            .then(|| std::fs::read_to_string(git_dir.join("HEAD")).ok())
            .flatten()
        else {
            if !git_dir.exists() && !self.dir.join("target").exists() {
                let empty = std::fs::read_dir(&self.dir).is_ok_and(|mut d| d.next().is_none());
                if empty {
                    return Health::Missing;
                }
            }
            return Health::Damaged("it is not a git repository".into());
        };
        if let Some(lock) = find_lock(&git_dir, 8) {
            return Health::Damaged(format!(
                "a killed git left {}",
                lock.strip_prefix(&self.dir).unwrap_or(&lock).display()
            ));
        }
        let Ok(marker) = std::fs::read_to_string(self.marker()) else {
            return Health::Damaged(
                "it was not made by this version, or a build step in it failed".into(),
            );
        };
        let mut lines = marker.lines();
        let made_for = lines.next().unwrap_or_default();
        if made_for != crate::redact::url(url) {
            return Health::Damaged(format!(
                "it was made for {made_for}, and git_url is {}",
                crate::redact::url(url)
            ));
        }
        let expected = lines.next().unwrap_or_default().trim();
        let head = head.trim();
        match (expected.is_empty(), head.strip_prefix("ref: ")) {
            // Never checked out: HEAD is still the unborn branch of `git init`.
            (true, Some(_)) => Health::Sound,
            (false, None) if head == expected => Health::Sound,
            _ => Health::Damaged(format!(
                "HEAD is at {head}, not at {} where the last build left it",
                if expected.is_empty() {
                    "(nothing)"
                } else {
                    expected
                }
            )),
        }
    }

    /// `git status` of tracked files, without taking git's index lock: prints a line per
    /// changed file.
    pub fn status(&self) -> Cmd {
        command(&self.git, "look for changes in the build checkout")
            .args(["--no-optional-locks", "-C"])
            .arg(&self.dir)
            .args(["status", "--porcelain", "--untracked-files=no"])
    }

    /// Removes everything of the checkout but its target dir (kept: a damaged checkout
    /// does not make its build artefacts wrong, and a compile failure is retried from a
    /// clean target dir anyway).
    pub fn remove_keeping_target(&self) -> anyhow::Result<()> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(());
        };
        for e in entries.filter_map(Result::ok) {
            if e.file_name() != "target" {
                crate::fsutil::remove_all(&e.path())?;
            }
        }
        Ok(())
    }

    pub fn init(&self) -> Cmd {
        command(&self.git, "create the build checkout")
            .args(["init", "--quiet"])
            .arg(&self.dir)
    }

    /// Fetches exactly the tag (and its history) from `url`.
    pub fn fetch_tag(&self, url: &str, tag: &str) -> Cmd {
        self.git(format!("fetch {tag}"))
            .args([
                "fetch",
                "--quiet",
                "--force",
                "--no-tags",
                // Submodules are updated (and synced to moved URLs) by their own steps.
                "--no-recurse-submodules",
                "--",
                url,
            ])
            .arg(format!("+refs/tags/{tag}:refs/tags/{tag}"))
    }

    /// Records `url` as the checkout's `origin`: git resolves relative submodule URLs
    /// (`../assets`) against it, as `cargo install --git` does against the repository.
    pub fn set_origin(&self, url: &str) -> Cmd {
        self.git("note where the build checkout comes from".into())
            .args(["config", "remote.origin.url", url])
    }

    /// Points the submodules at the URLs the checked-out `.gitmodules` names (a release
    /// may have moved one).
    pub fn sync_submodules(&self) -> Cmd {
        self.git("follow moved submodules".into()).args([
            "submodule",
            "--quiet",
            "sync",
            "--recursive",
        ])
    }

    /// Prints the commit the fetched tag names.
    pub fn tag_commit(&self, tag: &str) -> Cmd {
        self.git(format!("read the commit of the fetched {tag}"))
            .args(["rev-parse", "--verify", "--quiet"])
            .arg(format!("refs/tags/{tag}^{{commit}}"))
    }

    /// Leaves the release's own cargo configuration out of the work tree (see
    /// [`CARGO_CONFIG_PATTERNS`]): with the patterns written
    /// ([`Checkout::write_sparse_patterns`]), `read-tree -mu HEAD` applies them as a sparse
    /// checkout. The files stay in git's index, marked skip-worktree, so `git status` sees
    /// no change and the checkout is not taken for a damaged one.
    pub fn hide_cargo_config(&self) -> Cmd {
        self.git("leave the release's .cargo/config.toml out of the build checkout".into())
            .args([
                "-c",
                "core.sparseCheckout=true",
                "-c",
                "core.sparseCheckoutCone=false",
                "read-tree",
                "-mu",
                "HEAD",
            ])
    }

    /// Writes [`CARGO_CONFIG_PATTERNS`] as the checkout's sparse-checkout patterns.
    pub fn write_sparse_patterns(&self) -> anyhow::Result<()> {
        let info = self.dir.join(".git/info");
        crate::fsutil::create_private_dir(&info)?;
        crate::fsutil::atomic_write(
            &info.join("sparse-checkout"),
            CARGO_CONFIG_PATTERNS.as_bytes(),
        )
    }

    pub fn checkout(&self, tag: &str) -> Cmd {
        self.git(format!("check out {tag}"))
            .args(["checkout", "--quiet", "--force", "--detach"])
            .arg(format!("refs/tags/{tag}"))
    }

    /// Checks out the submodules the tag records, as `cargo install --git` does (a no-op
    /// without `.gitmodules`). `local`: the repository is on this machine, so its
    /// submodules may be too (git refuses `file://` submodules unless told).
    pub fn submodules(&self, local: bool) -> Cmd {
        let mut cmd = self.git("check out the submodules".into());
        if local {
            cmd = cmd.args(["-c", "protocol.file.allow=always"]);
        }
        cmd.args([
            "submodule",
            "--quiet",
            "update",
            "--init",
            "--recursive",
            "--force",
        ])
    }

    /// Removes stray files, keeping the target dir that makes rebuilds fast.
    pub fn clean(&self) -> Cmd {
        self.git("clean the build checkout".into())
            .args(["clean", "-ffdxq", "-e", "/target"])
    }

    pub fn target_dir(&self) -> PathBuf {
        self.dir.join("target")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// git from a `tool_path` of `/t` (it is not there: the commands are only shown).
    fn test_git() -> Tool {
        crate::tool_path::ToolPath::new(vec![PathBuf::from("/t")]).find("git")
    }

    const C1: &str = "1111111111111111111111111111111111111111";
    const C2: &str = "2222222222222222222222222222222222222222";

    #[test]
    fn finds_the_workspace_that_holds_the_packages() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path();
        let write = |path: &str, text: &str| {
            let p = repo.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        let packages = vec!["heph".to_owned(), "hephd".to_owned()];
        write(
            "fuzz/Cargo.toml",
            "[package]\nname = \"fuzz\"\n[workspace]\n",
        );
        write("rust/Cargo.toml", "[workspace]\nmembers = [\"crates/*\"]\n");
        write(
            "rust/crates/heph/Cargo.toml",
            "[package]\nname = \"heph\"\n",
        );
        write(
            "rust/crates/hephd/Cargo.toml",
            "[package]\nname = \"hephd\"\n",
        );
        write(".hidden/Cargo.toml", "[workspace]\n");
        assert_eq!(
            workspace_manifest(repo, &packages),
            repo.join("rust/Cargo.toml")
        );
        // Nothing holds them all: the shallowest manifest, for cargo to explain.
        let other = vec!["nowhere".to_owned()];
        assert_eq!(
            workspace_manifest(repo, &other),
            repo.join("fuzz/Cargo.toml")
        );
        // A manifest at the top is the workspace.
        write("Cargo.toml", "[workspace]\n");
        assert_eq!(workspace_manifest(repo, &packages), repo.join("Cargo.toml"));
    }

    #[test]
    fn finds_cargo_configuration_from_the_package_up_to_the_checkout_only() {
        let tmp = tempfile::tempdir().unwrap();
        let co = tmp.path().join("checkout");
        let member = co.join("sub/crates/hephd");
        for dir in [
            tmp.path().join(".cargo"),
            co.join("sub/.cargo"),
            member.join(".cargo"),
        ] {
            std::fs::create_dir_all(&dir).unwrap();
        }
        std::fs::write(tmp.path().join(".cargo/config.toml"), "").unwrap();
        assert!(
            cargo_configs_in(&co, &member).is_empty(),
            "above the checkout: not the release's"
        );
        std::fs::write(co.join("sub/.cargo/config.toml"), "").unwrap();
        std::fs::write(member.join(".cargo/config"), "").unwrap();
        assert_eq!(
            cargo_configs_in(&co, &member),
            [
                member.join(".cargo/config"),
                co.join("sub/.cargo/config.toml")
            ]
        );
    }

    #[test]
    fn peels_annotated_tags() {
        let out = format!("{C1}\trefs/tags/v1.0.0\n{C2}\trefs/tags/v1.0.0^{{}}\n");
        assert_eq!(parse_ls_remote(&out, "v1.0.0").as_deref(), Some(C2));
    }

    #[test]
    fn takes_lightweight_tags_as_they_are() {
        let out = format!("{C1}\trefs/tags/v1.0.0\n");
        assert_eq!(parse_ls_remote(&out, "v1.0.0").as_deref(), Some(C1));
    }

    #[test]
    fn ignores_other_refs_that_end_the_same() {
        let out = format!("{C1}\trefs/tags/xv1.0.0\n{C2}\trefs/tags/old/v1.0.0\n");
        assert_eq!(parse_ls_remote(&out, "v1.0.0"), None);
        assert_eq!(parse_ls_remote("garbage", "v1.0.0"), None);
    }

    fn sh_git(dir: &Path, args: &[&str]) {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "git {args:?}");
    }

    #[test]
    fn tells_a_sound_checkout_from_a_damaged_one() {
        let tmp = tempfile::tempdir().unwrap();
        let co = Checkout {
            git: test_git(),
            dir: tmp.path().join("checkout"),
        };
        let url = "https://u:secret@f/x.git";
        assert_eq!(co.health(url), Health::Missing);
        std::fs::create_dir_all(&co.dir).unwrap();
        assert_eq!(co.health(url), Health::Missing, "an empty directory");
        std::fs::write(co.dir.join("stray"), "x").unwrap();
        assert!(matches!(co.health(url), Health::Damaged(r) if r.contains("not a git repository")));
        std::fs::remove_file(co.dir.join("stray")).unwrap();

        sh_git(&co.dir, &["init", "-q"]);
        assert!(
            matches!(co.health(url), Health::Damaged(r) if r.contains("not made by this version")),
            "no marker"
        );
        co.write_marker(url, None).unwrap();
        let marker = std::fs::read_to_string(co.dir.join(".git/heph-selfupdate")).unwrap();
        assert!(!marker.contains("secret"), "{marker}");
        assert_eq!(co.health(url), Health::Sound, "fresh, never checked out");
        assert!(
            matches!(co.health("https://f/other.git"), Health::Damaged(r) if r.contains("made for https://<redacted>@f/x.git")),
            "another repository"
        );

        // Checked out at a commit, as a build leaves it.
        std::fs::write(co.dir.join("a"), "a").unwrap();
        sh_git(&co.dir, &["add", "a"]);
        sh_git(
            &co.dir,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-qm",
                "a",
            ],
        );
        sh_git(&co.dir, &["checkout", "-q", "--detach"]);
        let head = std::fs::read_to_string(co.dir.join(".git/HEAD")).unwrap();
        co.write_marker(url, Some(head.trim())).unwrap();
        assert_eq!(co.health(url), Health::Sound);
        co.write_marker(url, Some(C1)).unwrap();
        assert!(
            matches!(co.health(url), Health::Damaged(r) if r.contains("where the last build left it"))
        );
        co.write_marker(url, Some(head.trim())).unwrap();

        std::fs::write(co.dir.join(".git/index.lock"), "").unwrap();
        assert!(matches!(co.health(url), Health::Damaged(r) if r.contains(".git/index.lock")));
        std::fs::remove_file(co.dir.join(".git/index.lock")).unwrap();
        std::fs::create_dir_all(co.dir.join(".git/refs/tags")).unwrap();
        std::fs::write(co.dir.join(".git/refs/tags/v1.lock"), "").unwrap();
        assert!(matches!(co.health(url), Health::Damaged(r) if r.contains("v1.lock")));
        std::fs::remove_file(co.dir.join(".git/refs/tags/v1.lock")).unwrap();

        // Recreating keeps only the target dir.
        std::fs::create_dir_all(co.dir.join("target/release")).unwrap();
        co.remove_keeping_target().unwrap();
        let left: Vec<_> = std::fs::read_dir(&co.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["target"]);
        assert!(matches!(co.health(url), Health::Damaged(r) if r.contains("not a git repository")));
        co.condemn();
    }

    #[test]
    fn values_never_become_options() {
        let cmd = ls_remote(&test_git(), "https://f/x.git", "v1.0.0");
        assert_eq!(
            cmd.display(),
            "/t/git -c core.hooksPath=/dev/null -c core.fsmonitor=false ls-remote --exit-code --tags https://f/x.git refs/tags/v1.0.0 refs/tags/v1.0.0^{}"
        );
        let co = Checkout {
            git: test_git(),
            dir: "/c".into(),
        };
        assert_eq!(
            co.fetch_tag("https://f/x.git", "v1.0.0").display(),
            "/t/git -c core.hooksPath=/dev/null -c core.fsmonitor=false -C /c fetch --quiet --force --no-tags --no-recurse-submodules -- https://f/x.git +refs/tags/v1.0.0:refs/tags/v1.0.0"
        );
        let peek = Peek {
            git: test_git(),
            git_dir: "/c/.git".into(),
        };
        assert_eq!(
            peek.read_tag("v1.0.0").display(),
            "/t/git -c core.hooksPath=/dev/null -c core.fsmonitor=false --git-dir=/c/.git cat-file tag refs/tags/v1.0.0"
        );
    }

    #[test]
    fn no_git_command_runs_the_hooks_of_a_repository() {
        let co = Checkout {
            git: test_git(),
            dir: "/c".into(),
        };
        let peek = Peek {
            git: test_git(),
            git_dir: "/c/.git".into(),
        };
        for cmd in [
            ls_remote(&test_git(), "https://f/x.git", "v1"),
            co.init(),
            co.fetch_tag("https://f/x.git", "v1"),
            co.tag_commit("v1"),
            co.checkout("v1"),
            co.hide_cargo_config(),
            co.clean(),
            co.set_origin("https://f/x.git"),
            co.sync_submodules(),
            co.submodules(true),
            co.status(),
            peek.init(),
            peek.fetch("https://f/x.git", "v1"),
            peek.read_tag("v1"),
            peek.has_tag("v1"),
            peek.write_tree("v1", Path::new("/t"), Path::new("/i")),
        ] {
            assert!(
                cmd.display()
                    .starts_with("/t/git -c core.hooksPath=/dev/null -c core.fsmonitor=false "),
                "{}",
                cmd.display()
            );
        }
    }

    #[test]
    fn a_hook_planted_in_the_checkout_never_runs() {
        use crate::process::{Runner, SystemRunner};
        let real = ["/usr/bin/git", "/bin/git"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("git (Debian package `git`), which every build needs");
        let d = tempfile::tempdir().unwrap();
        let git = crate::tool_path::ToolPath::new(vec![Path::new(real).parent().unwrap().into()])
            .find("git");
        let plain = |args: &[&str]| {
            let out = std::process::Command::new(real)
                .args(args)
                .current_dir(d.path())
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        plain(&["init", "-q", "src"]);
        plain(&[
            "-C",
            "src",
            "-c",
            "user.name=a",
            "-c",
            "user.email=a@b",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ]);
        plain(&["-C", "src", "tag", "v1"]);
        let co = Checkout {
            git,
            dir: d.path().join("co"),
        };
        let runner = SystemRunner::default();
        assert!(runner.run(&co.init()).unwrap().success());
        // What a build, running as the same user, could leave in the checkout.
        let mark = d.path().join("hook-ran");
        let hook = format!("#!/bin/sh\ntouch '{}'\n", mark.display());
        for h in ["post-checkout", "reference-transaction"] {
            let p = co.dir.join(".git/hooks").join(h);
            std::fs::write(&p, &hook).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        let url = d.path().join("src").display().to_string();
        for cmd in [co.fetch_tag(&url, "v1"), co.checkout("v1")] {
            let out = runner.run(&cmd).unwrap();
            assert!(out.success(), "{}: {}", cmd.display(), out.tail_text());
        }
        assert!(!mark.exists(), "a hook in the checkout ran");
        // The same hook does run without the guard (the test can fail).
        plain(&["-C", "co", "checkout", "-q", "--detach", "v1"]);
        assert!(mark.exists(), "the planted hook is a working one");
    }
}
