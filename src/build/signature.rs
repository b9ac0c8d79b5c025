//! `verify_tag`: only an SSH signature, by a key `allowed_signers` lists as valid now.
//!
//! `git verify-tag` is not used: git picks the checker from the signature's armour, so a
//! `BEGIN PGP SIGNATURE` goes to gpg (any key in the user's keyring passes) and a `BEGIN
//! SIGNED MESSAGE` to gpgsm, whatever `gpg.ssh.allowedSignersFile` says; and for SSH it
//! passes `-Overify-time=<tagger date>`, a date the signer chooses, so a key past its
//! `valid-before` still signs a backdated tag. Instead the tag object is read (`git cat-file
//! tag`), split here into the signed payload and the signature as git splits it, anything
//! but an SSH signature refused, and `ssh-keygen` asked directly: `-Y find-principals`
//! names who in `allowed_signers` has the key, `-Y verify -n git` checks the signature for
//! that principal, both judging the key's validity at the present.

use std::path::Path;

use crate::layout::Signer;
use crate::process::Cmd;
use crate::tool_path::Tool;

/// How a signature is armoured: which program git would give it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Armour {
    /// `-----BEGIN SSH SIGNATURE-----`: ssh-keygen.
    Ssh,
    /// `-----BEGIN PGP SIGNATURE-----`: gpg, with the user's keyring.
    OpenPgp,
    /// `-----BEGIN SIGNED MESSAGE-----`: gpgsm (X.509).
    X509,
}

impl Armour {
    const ALL: [(&'static str, Self); 3] = [
        ("-----BEGIN SSH SIGNATURE-----", Self::Ssh),
        ("-----BEGIN PGP SIGNATURE-----", Self::OpenPgp),
        ("-----BEGIN SIGNED MESSAGE-----", Self::X509),
    ];

    /// What people call it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ssh => "SSH",
            Self::OpenPgp => "OpenPGP (gpg)",
            Self::X509 => "X.509 (gpgsm)",
        }
    }
}

/// A tag object split as git splits it: everything before the last line that starts a
/// signature is what was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTag<'a> {
    pub armour: Armour,
    pub payload: &'a str,
    pub signature: &'a str,
}

/// Splits the text of a tag object (`git cat-file tag`); `None` when it carries no
/// signature. Like git's `parse_signed_buffer`, the signature starts at the last line
/// that begins with any known armour, so a message quoting one cannot hide the real one.
pub fn split(tag_object: &str) -> Option<SignedTag<'_>> {
    let mut found = None;
    let mut at = 0;
    for line in tag_object.split_inclusive('\n') {
        if let Some((_, armour)) = Armour::ALL.iter().find(|(m, _)| line.starts_with(m)) {
            found = Some((at, *armour));
        }
        at += line.len();
    }
    let (start, armour) = found?;
    Some(SignedTag {
        armour,
        payload: &tag_object[..start],
        signature: &tag_object[start..],
    })
}

/// What a tag object's header says of itself: the object it tags, that object's type,
/// and the tag's own name. The signature covers these: a signed tag fetched under
/// another name still says the name it was signed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagHeader<'a> {
    pub object: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
}

/// Reads the header of a tag object (the lines before the first empty one); `None` when
/// `object`, `type` or `tag` is missing.
pub fn header(payload: &str) -> Option<TagHeader<'_>> {
    let (mut object, mut kind, mut name) = (None, None, None);
    for line in payload.lines().take_while(|l| !l.is_empty()) {
        match line.split_once(' ') {
            Some(("object", v)) => object = object.or(Some(v)),
            Some(("type", v)) => kind = kind.or(Some(v)),
            Some(("tag", v)) => name = name.or(Some(v)),
            _ => {}
        }
    }
    Some(TagHeader {
        object: object?,
        kind: kind?,
        name: name?,
    })
}

/// `ssh-keygen -Y find-principals`: prints who in `allowed_signers` has the key that made
/// `signature` and may sign now (it fails when nobody does).
pub fn find_principals(ssh_keygen: &Tool, signature: &Path, allowed_signers: &Path) -> Cmd {
    ssh_keygen
        .cmd("find who in allowed_signers made the tag's signature")
        .args(["-Y", "find-principals", "-s"])
        .arg(signature)
        .arg("-f")
        .arg(allowed_signers)
}

/// `ssh-keygen -Y verify -n git` of `payload` (its input) for `principal`, judged now.
pub fn verify(
    ssh_keygen: &Tool,
    allowed_signers: &Path,
    principal: &str,
    signature: &Path,
    payload: &Path,
) -> Cmd {
    ssh_keygen
        .cmd("verify the tag's signature")
        .args(["-Y", "verify", "-f"])
        .arg(allowed_signers)
        .arg("-I")
        .arg(principal)
        .args(["-n", "git", "-s"])
        .arg(signature)
        .stdin(payload)
}

/// The principals `find-principals` printed.
pub fn principals(find_output: &str) -> Vec<String> {
    find_output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Who signed, from what `ssh-keygen -Y verify` said (`Good "git" signature for P with
/// ED25519 key SHA256:…`); the key as ssh-keygen names it.
pub fn signer(verify_output: &str, principal: &str) -> Signer {
    let key = verify_output
        .lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix("Good \"git\" signature for ")?;
            let (_, key) = rest.rsplit_once(" with ")?;
            Some(key.trim().to_owned())
        })
        .unwrap_or_default();
    Signer {
        principal: principal.to_owned(),
        key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "object e7ada4256e81e8934bc8585b07bacb0daaceb932\ntype commit\ntag v1\ntagger a <a@b> 1559347200 +0000\n\nrel v1\n";

    #[test]
    fn splits_a_tag_where_git_does_and_names_the_armour() {
        let ssh = "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n";
        let tag = format!("{HEAD}{ssh}");
        let s = split(&tag).unwrap();
        assert_eq!((s.armour, s.payload, s.signature), (Armour::Ssh, HEAD, ssh));
        for (armour, begin) in [
            (Armour::OpenPgp, "-----BEGIN PGP SIGNATURE-----"),
            (Armour::X509, "-----BEGIN SIGNED MESSAGE-----"),
        ] {
            let tag = format!("{HEAD}{begin}\nxx\n");
            assert_eq!(split(&tag).unwrap().armour, armour);
        }
        assert_eq!(split(HEAD), None, "unsigned");
    }

    #[test]
    fn a_message_quoting_an_ssh_signature_cannot_hide_the_real_one() {
        let tag = format!(
            "{HEAD}-----BEGIN SSH SIGNATURE-----\nquoted\n-----END SSH SIGNATURE-----\n-----BEGIN PGP SIGNATURE-----\nreal\n-----END PGP SIGNATURE-----\n"
        );
        assert_eq!(split(&tag).unwrap().armour, Armour::OpenPgp);
        // Not at the start of a line: not a signature.
        let tag = format!("{HEAD}see -----BEGIN PGP SIGNATURE----- here\n");
        assert_eq!(split(&tag), None);
    }

    #[test]
    fn reads_the_object_type_and_name_a_tag_object_gives_itself() {
        assert_eq!(
            header(HEAD),
            Some(TagHeader {
                object: "e7ada4256e81e8934bc8585b07bacb0daaceb932",
                kind: "commit",
                name: "v1",
            })
        );
        // The message cannot add a header: only lines before the first empty one count.
        let quoted = "object e7ada4256e81e8934bc8585b07bacb0daaceb932\ntype commit\ntagger a <a@b> 1 +0000\n\ntag v9\n";
        assert_eq!(header(quoted), None);
    }

    #[test]
    fn the_commands_give_values_as_arguments_and_the_payload_as_input() {
        let k = &crate::tool_path::ToolPath::new(vec!["/usr/bin".into()]).find("ssh-keygen");
        assert_eq!(
            find_principals(k, Path::new("/t/v1.sig"), Path::new("/s")).display(),
            "/usr/bin/ssh-keygen -Y find-principals -s /t/v1.sig -f /s"
        );
        let v = verify(
            k,
            Path::new("/s"),
            "-rel@x",
            Path::new("/t/v1.sig"),
            Path::new("/t/v1.payload"),
        );
        assert_eq!(
            v.display(),
            "/usr/bin/ssh-keygen -Y verify -f /s -I -rel@x -n git -s /t/v1.sig < /t/v1.payload"
        );
    }

    #[test]
    fn reads_principals_and_the_signer() {
        assert_eq!(principals("rel@x\n\nops@x\n"), ["rel@x", "ops@x"]);
        let s = signer(
            "Good \"git\" signature for rel@x with ED25519 key SHA256:IaD6Px\n",
            "rel@x",
        );
        assert_eq!(
            (s.principal.as_str(), s.key.as_str()),
            ("rel@x", "ED25519 key SHA256:IaD6Px")
        );
        assert_eq!(signer("", "rel@x").key, "");
    }
}
