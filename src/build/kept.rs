//! `verify_tag` for a build kept from before. A version root is switched to again (a
//! kept build of the resolved commit, a staged root, `--to`, `rollback`) only on the
//! strength of its tag's signature checked *now*: a key removed from `allowed_signers`
//! since (compromised, retired) signs nothing any more, built or not. The tag object
//! whose signature was checked is kept in the root ([`KEPT_TAG`]); before reuse the same
//! ssh-keygen steps as for a new build run over it, and its header must name the root's
//! commit (and, when known, the tag). Cheap: no network, two short ssh-keygen runs.

use std::path::Path;

use anyhow::Result;

use super::{Builder, Target, signature};
use crate::layout::{Origin, Root, Signer};

/// The file in a version root that holds the tag object its build checked.
pub const KEPT_TAG: &str = "heph-tag";

/// Keeps `tag_object` (as `git cat-file tag` printed it) in the staging root `staging`.
pub fn keep_tag(staging: &Path, tag_object: &str) -> Result<()> {
    crate::fsutil::atomic_write(&staging.join(KEPT_TAG), tag_object.as_bytes())
}

/// What the signature kept with a root says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeptSignature {
    /// Signed by an allowed key, valid now, naming the root's commit.
    Good(Signer),
    /// No tag was kept with it: built without `verify_tag`, or by an earlier
    /// heph-selfupdate (or adopted).
    Missing,
    /// Kept, and refused now; why.
    Refused(String),
}

impl Builder<'_> {
    /// Checks the signature of the tag kept with `root` now, against `allowed_signers` as
    /// it is; `tag`: the name the tag must give itself, when known.
    pub fn kept_signature(&self, root: &Root, tag: Option<&str>) -> KeptSignature {
        let Ok(text) = std::fs::read_to_string(root.path.join(KEPT_TAG)) else {
            return KeptSignature::Missing;
        };
        match self.check_kept(root, tag, &text) {
            Ok(signer) => KeptSignature::Good(signer),
            Err(why) => KeptSignature::Refused(why),
        }
    }

    fn check_kept(&self, root: &Root, tag: Option<&str>, text: &str) -> Result<Signer, String> {
        let signed = signature::split(text)
            .filter(|s| s.armour == signature::Armour::Ssh)
            .ok_or("the tag kept with it carries no SSH signature")?;
        let header = signature::header(signed.payload)
            .ok_or("the tag kept with it has no object, type or tag line")?;
        let commit = root.meta.commit.as_deref().unwrap_or_default();
        if header.object != commit {
            return Err(format!(
                "the tag kept with it names {} {}, not the commit it was built from ({commit})",
                header.kind, header.object
            ));
        }
        if let Some(tag) = tag.filter(|t| *t != header.name) {
            return Err(format!(
                "the tag kept with it was signed as {:?}, not {tag}",
                header.name
            ));
        }
        let signers = self
            .settings
            .allowed_signers
            .as_deref()
            .ok_or("allowed_signers is not set")?;
        let dir = tempfile::Builder::new()
            .prefix("heph-selfupdate-kept-tag-")
            .tempdir()
            .map_err(|e| format!("could not make a scratch directory: {e}"))?;
        let (sig, payload) = (dir.path().join("tag.sig"), dir.path().join("tag.payload"));
        crate::fsutil::atomic_write(&sig, signed.signature.as_bytes())
            .and_then(|()| crate::fsutil::atomic_write(&payload, signed.payload.as_bytes()))
            .map_err(|e| format!("{e:#}"))?;
        let said = |out: &crate::process::Output| out.tail_text().trim().replace('\n', "; ");
        let find = signature::find_principals(&self.tools.ssh_keygen, &sig, signers);
        let out = self
            .run_signature_cmd(&find)
            .map_err(|f| format!("{:#}", f.error))?;
        let principals = signature::principals(&out.stdout);
        if !out.success() || principals.is_empty() {
            return Err(format!(
                "its signature is not from a signer allowed_signers lists now, valid now (ssh-keygen: {})",
                said(&out)
            ));
        }
        let mut last = String::new();
        for principal in &principals {
            let verify =
                signature::verify(&self.tools.ssh_keygen, signers, principal, &sig, &payload);
            let out = self
                .run_signature_cmd(&verify)
                .map_err(|f| format!("{:#}", f.error))?;
            if out.success() {
                return Ok(signature::signer(
                    &format!("{}\n{}", out.stdout, out.tail_text()),
                    principal,
                ));
            }
            last = said(&out);
        }
        Err(format!(
            "its signature does not verify for {} (ssh-keygen: {last})",
            principals.join(", ")
        ))
    }

    /// True when the kept build `root` may be used for `target` instead of building it:
    /// always without `verify_tag`; with it, when the signature kept with it verifies now
    /// (says which in the log). Otherwise the tag is checked as for any build.
    pub fn reusable(&self, root: &Root, target: &Target) -> bool {
        if !self.settings.verify_tag {
            return true;
        }
        let (name, tag) = (&root.name, &target.tag);
        match self.kept_signature(root, Some(tag)) {
            KeptSignature::Good(s) => {
                log::info!(
                    "the signature of {tag} kept with the build {name} is good now: signed by {} with {}",
                    s.principal,
                    s.key
                );
                true
            }
            KeptSignature::Missing => {
                log::info!(
                    "the kept build {name} of {tag} is not used: no checked signature was kept with it (built without verify_tag, or by an earlier heph-selfupdate); its tag is checked as for any build"
                );
                false
            }
            KeptSignature::Refused(why) => {
                log::warn!(
                    "the kept build {name} of {tag} is not used: {why}; its tag is checked as for any build"
                );
                false
            }
        }
    }

    /// `Err(why)` when, with `verify_tag`, `rollback` must not switch to `root`: the
    /// signature kept with it is refused now. A root with none kept (adopted, or built
    /// without `verify_tag` or by an earlier heph-selfupdate) is a person's choice to go
    /// back to, with a warning.
    pub fn may_roll_back_to(&self, root: &Root) -> Result<(), String> {
        if !self.settings.verify_tag || root.meta.origin == Origin::Adopted {
            return Ok(());
        }
        match self.kept_signature(root, None) {
            KeptSignature::Good(s) => {
                log::info!(
                    "the signature kept with {} is good now: signed by {} with {}",
                    root.name,
                    s.principal,
                    s.key
                );
                Ok(())
            }
            KeptSignature::Missing => {
                log::warn!(
                    "{} has no checked signature kept with it (built without verify_tag, or by an earlier heph-selfupdate): going back to it on your word",
                    root.name
                );
                Ok(())
            }
            KeptSignature::Refused(why) => Err(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::BuildSettings;
    use crate::build::tests::{settings, test_builder};
    use crate::layout::RootMeta;
    use crate::process::Cmd;
    use crate::process::fake::{Recorder, ok};

    const C1: &str = "1111111111111111111111111111111111111111";
    const SSH: &str = "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n";

    fn root(dir: &Path, tag_object: Option<&str>) -> Root {
        let path = dir.join("versions/1.0.0");
        std::fs::create_dir_all(&path).unwrap();
        match tag_object {
            Some(t) => keep_tag(&path, t).unwrap(),
            None => drop(std::fs::remove_file(path.join(KEPT_TAG))),
        }
        Root {
            name: "1.0.0".into(),
            path,
            meta: RootMeta {
                version: Some("1.0.0".into()),
                commit: Some(C1.into()),
                origin: Origin::Built,
                signed_by: None,
                bins: None,
            },
        }
    }

    fn tag(object: &str, name: &str) -> String {
        format!(
            "object {object}\ntype commit\ntag {name}\ntagger R <r@x> 1 +0000\n\nrelease\n{SSH}"
        )
    }

    #[test]
    fn a_kept_signature_is_checked_again_now_and_must_name_the_roots_commit_and_tag() {
        let dir = tempfile::tempdir().unwrap();
        let s = BuildSettings {
            verify_tag: true,
            allowed_signers: Some("/etc/heph/allowed_signers".into()),
            ..settings(dir.path())
        };
        // ssh-keygen answers as for an allowed key, valid now.
        let good = Recorder::new(|c: &Cmd| {
            if c.args.iter().any(|a| a == "find-principals") {
                ok("rel@x\n")
            } else {
                ok("Good \"git\" signature for rel@x with ED25519 key SHA256:k\n")
            }
        });
        let b = test_builder(&s, &good, dir.path());
        assert_eq!(
            b.kept_signature(&root(dir.path(), Some(&tag(C1, "v1.0.0"))), Some("v1.0.0")),
            KeptSignature::Good(Signer {
                principal: "rel@x".into(),
                key: "ED25519 key SHA256:k".into()
            })
        );
        let shown = good.lines();
        assert!(
            shown[0].contains("-Y find-principals") && shown[1].contains("-Y verify"),
            "{shown:?}"
        );
        assert_eq!(
            b.kept_signature(&root(dir.path(), None), Some("v1.0.0")),
            KeptSignature::Missing
        );
        for (object, said) in [
            (
                tag(&C1.replace('1', "2"), "v1.0.0"),
                "names commit 2222222222222222222222222222222222222222, not the commit it was built from",
            ),
            (tag(C1, "v0.9.0"), "signed as \"v0.9.0\", not v1.0.0"),
            (
                tag(C1, "v1.0.0").replace("SSH SIGNATURE", "PGP SIGNATURE"),
                "carries no SSH signature",
            ),
        ] {
            let r = root(dir.path(), Some(&object));
            let KeptSignature::Refused(why) = b.kept_signature(&r, Some("v1.0.0")) else {
                panic!("{object} passed");
            };
            assert!(why.contains(said), "{why}");
        }
        // The key is no longer allowed: find-principals names nobody.
        let gone = Recorder::new(|c: &Cmd| {
            if c.args.iter().any(|a| a == "find-principals") {
                crate::process::Output {
                    code: Some(1),
                    tail: vec!["No principal matched.".into()],
                    ..crate::process::Output::default()
                }
            } else {
                ok("")
            }
        });
        let b = test_builder(&s, &gone, dir.path());
        let r = root(dir.path(), Some(&tag(C1, "v1.0.0")));
        assert!(matches!(
            b.kept_signature(&r, Some("v1.0.0")),
            KeptSignature::Refused(why) if why.contains("not from a signer allowed_signers lists now")
        ));
        assert!(!b.reusable(
            &r,
            &Target {
                tag: "v1.0.0".into(),
                version: semver::Version::new(1, 0, 0)
            }
        ));
        assert!(b.may_roll_back_to(&r).is_err());
    }
}
