//! git commands: resolving a tag to its commit, and the persistent checkout used by
//! `build = "checkout"`. Every command is built here (so `--dry-run` shows the same
//! argv) and values go after `--` or as `--opt=value`.

use std::path::{Path, PathBuf};

use crate::process::Cmd;

/// Environment for every git (and cargo) child: never prompt for credentials.
pub const NO_PROMPT: (&str, &str) = ("GIT_TERMINAL_PROMPT", "0");

/// `git ls-remote` of one tag; its peeled line (`^{}`) names the commit of an annotated tag.
pub fn ls_remote(git: &Path, url: &str, tag: &str) -> Cmd {
    Cmd::new(git, format!("find the commit of {tag}"))
        .args(["ls-remote", "--exit-code", "--tags", url])
        .arg(format!("refs/tags/{tag}"))
        .arg(format!("refs/tags/{tag}^{{}}"))
        .env(NO_PROMPT.0, NO_PROMPT.1)
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

/// The persistent checkout for `build = "checkout"`.
#[derive(Debug, Clone)]
pub struct Checkout {
    pub git: PathBuf,
    pub dir: PathBuf,
}

impl Checkout {
    fn git(&self, summary: String) -> Cmd {
        Cmd::new(&self.git, summary)
            .arg("-C")
            .arg(&self.dir)
            .env(NO_PROMPT.0, NO_PROMPT.1)
    }

    /// True when the directory already holds a repository.
    pub fn exists(&self) -> bool {
        self.dir.join(".git").exists()
    }

    pub fn init(&self) -> Cmd {
        Cmd::new(&self.git, "create the build checkout")
            .args(["init", "--quiet"])
            .arg(&self.dir)
    }

    /// Fetches exactly the tag (and its history) from `url`.
    pub fn fetch_tag(&self, url: &str, tag: &str) -> Cmd {
        self.git(format!("fetch {tag}"))
            .args(["fetch", "--quiet", "--force", "--no-tags", "--", url])
            .arg(format!("+refs/tags/{tag}:refs/tags/{tag}"))
    }

    /// Prints the commit the fetched tag names.
    pub fn tag_commit(&self, tag: &str) -> Cmd {
        self.git(format!("read the commit of the fetched {tag}"))
            .args(["rev-parse", "--verify", "--quiet"])
            .arg(format!("refs/tags/{tag}^{{commit}}"))
    }

    /// `git verify-tag` against an ssh allowed-signers file. Only its exit code counts:
    /// it prints "Good signature" even for keys outside the list.
    pub fn verify_tag(&self, tag: &str, allowed_signers: &Path) -> Cmd {
        let mut setting = std::ffi::OsString::from("gpg.ssh.allowedSignersFile=");
        setting.push(allowed_signers);
        Cmd::new(&self.git, format!("verify the signature of {tag}"))
            .arg("-C")
            .arg(&self.dir)
            .arg("-c")
            .arg(setting)
            .args(["verify-tag", "--"])
            .arg(format!("refs/tags/{tag}"))
            .env(NO_PROMPT.0, NO_PROMPT.1)
    }

    pub fn checkout(&self, tag: &str) -> Cmd {
        self.git(format!("check out {tag}"))
            .args(["checkout", "--quiet", "--force", "--detach"])
            .arg(format!("refs/tags/{tag}"))
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

    const C1: &str = "1111111111111111111111111111111111111111";
    const C2: &str = "2222222222222222222222222222222222222222";

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

    #[test]
    fn values_never_become_options() {
        let cmd = ls_remote(Path::new("git"), "https://f/x.git", "v1.0.0");
        assert_eq!(
            cmd.display(),
            "git ls-remote --exit-code --tags https://f/x.git refs/tags/v1.0.0 refs/tags/v1.0.0^{}"
        );
        let co = Checkout {
            git: "git".into(),
            dir: "/c".into(),
        };
        assert_eq!(
            co.fetch_tag("https://f/x.git", "v1.0.0").display(),
            "git -C /c fetch --quiet --force --no-tags -- https://f/x.git +refs/tags/v1.0.0:refs/tags/v1.0.0"
        );
        assert_eq!(
            co.verify_tag("v1.0.0", Path::new("/s")).display(),
            "git -C /c -c gpg.ssh.allowedSignersFile=/s verify-tag -- refs/tags/v1.0.0"
        );
    }
}
