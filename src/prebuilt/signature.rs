//! Signatures over a release's checksum file (or cargo-dist manifest): SSH signatures
//! checked with `ssh-keygen` against `allowed_signers`, and minisign signatures checked
//! here with a public key from the configuration.
//!
//! SSH follows the rules of signed tags (`../shared/notes/protocols.md`): SSH only (an
//! OpenPGP armour is refused: gpg would accept any key in a keyring), namespace `file`
//! (what `ssh-keygen -Y sign -n file` writes), and validity judged now: no
//! `-Overify-time`, so a key whose `valid-before` has passed signs nothing new. Only the
//! exit codes of `ssh-keygen` count.
//!
//! The signature of a file `F` is the asset `F.sig` (SSH) or `F.minisig` (minisign).

use std::path::{Path, PathBuf};

use crate::process::{Cmd, Output};

use super::{Failure, Result};

/// Signature files larger than this are not read (an SSH signature is under 1 KiB).
pub const MAX_SIGNATURE_BYTES: u64 = 64 * 1024;

/// A kind of signature a host can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SignatureKind {
    /// `ssh-keygen -Y sign -n file`, checked against `allowed_signers`.
    Ssh,
    /// minisign, checked against the configured public key.
    Minisign,
}

impl SignatureKind {
    /// The suffix of the signature asset: `SHA256SUMS` is signed by `SHA256SUMS.sig`.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Ssh => ".sig",
            Self::Minisign => ".minisig",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Ssh => "SSH",
            Self::Minisign => "minisign",
        }
    }
}

/// What a signature file is, by its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Armour {
    Ssh,
    Minisign,
    OpenPgp,
    /// X.509 / CMS (`git`'s gpgsm signatures).
    Cms,
    Unknown,
}

/// The armour of a signature file's text.
pub fn armour(text: &[u8]) -> Armour {
    let text = String::from_utf8_lossy(text.get(..256).unwrap_or(text));
    let first = text.trim_start().lines().next().unwrap_or_default().trim();
    match first {
        "-----BEGIN SSH SIGNATURE-----" => Armour::Ssh,
        "-----BEGIN PGP SIGNATURE-----" | "-----BEGIN PGP MESSAGE-----" => Armour::OpenPgp,
        "-----BEGIN SIGNED MESSAGE-----" | "-----BEGIN PKCS7-----" | "-----BEGIN CMS-----" => {
            Armour::Cms
        }
        l if l.starts_with("untrusted comment:") => Armour::Minisign,
        _ => Armour::Unknown,
    }
}

const ONLY_SSH_OR_MINISIGN: &str = "help: only SSH signatures from allowed_signers (`ssh-keygen -Y sign -n file`) or minisign signatures count; see docs/assets.md";

/// Refuses a signature file of the wrong kind for `kind`, naming what it is instead.
pub fn require_armour(kind: SignatureKind, file: &str, text: &[u8]) -> Result<()> {
    let found = armour(text);
    let expected = match kind {
        SignatureKind::Ssh => Armour::Ssh,
        SignatureKind::Minisign => Armour::Minisign,
    };
    if found == expected {
        return Ok(());
    }
    let what = match found {
        Armour::OpenPgp => "an OpenPGP signature, which heph-selfupdate does not accept",
        Armour::Cms => "an X.509/CMS signature, which heph-selfupdate does not accept",
        Armour::Ssh => "an SSH signature, not a minisign one",
        Armour::Minisign => "a minisign signature, not an SSH one",
        Armour::Unknown => "not a signature heph-selfupdate reads",
    };
    Err(Failure::refused(format!(
        "{file} is {what}\n{ONLY_SSH_OR_MINISIGN}"
    )))
}

/// The two `ssh-keygen` runs that check an SSH signature, as git checks signed tags:
/// which allowed principals hold the key, then the signature for one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshCheck {
    /// The `ssh-keygen` program.
    pub ssh_keygen: PathBuf,
    pub allowed_signers: PathBuf,
    /// The `.sig` file, on disk.
    pub signature: PathBuf,
    /// The signed file, on disk: [`SshCheck::verify`] reads it on its standard input.
    pub message: PathBuf,
}

impl SshCheck {
    /// `ssh-keygen -Y find-principals -f <allowed_signers> -s <sig>`: prints the
    /// principals whose key made the signature (valid now), one per line; fails when no
    /// allowed key did.
    pub fn find_principals(&self) -> Cmd {
        // Paths follow their option letter as one argument: never read as options.
        Cmd::new(&self.ssh_keygen, "find who signed the release's checksums")
            .args(["-Y", "find-principals"])
            .arg(joined("-f", &self.allowed_signers))
            .arg(joined("-s", &self.signature))
    }

    /// `ssh-keygen -Y verify -f <allowed_signers> -I <principal> -n file -s <sig>`, with
    /// [`SshCheck::message`] as its standard input. No `-Overify-time`: validity is
    /// judged now.
    pub fn verify(&self, principal: &str) -> Cmd {
        Cmd::new(
            &self.ssh_keygen,
            format!("check the SSH signature of the release's checksums by {principal}"),
        )
        .args(["-Y", "verify"])
        .arg(joined("-f", &self.allowed_signers))
        .arg(format!("-I{principal}"))
        .args(["-n", "file"])
        .arg(joined("-s", &self.signature))
    }
}

fn joined(flag: &str, path: &Path) -> std::ffi::OsString {
    let mut s = std::ffi::OsString::from(flag);
    s.push(path);
    s
}

/// The principals `find-principals` printed, or why the signature is refused.
pub fn judge_find_principals(
    file: &str,
    out: &Output,
    allowed_signers: &Path,
) -> Result<Vec<String>> {
    let principals: Vec<String> = out
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if !out.success() || principals.is_empty() {
        return Err(Failure::refused(format!(
            "the SSH signature of {file} is not by a key in {} that is valid now ({})\nhelp: the release is held; if the release key changed, add it to allowed_signers",
            allowed_signers.display(),
            out.tail_text().trim()
        )));
    }
    Ok(principals)
}

/// Whether `ssh-keygen -Y verify` accepted the signature (only its exit code counts).
pub fn judge_verify(file: &str, principal: &str, out: &Output) -> Result<()> {
    if out.success() {
        return Ok(());
    }
    Err(Failure::refused(format!(
        "the SSH signature of {file} does not verify for {principal} ({})\nhelp: the file is not what the release key signed (tampering, or a release whose checksums were replaced); the release is held until a person looks",
        out.tail_text().trim()
    )))
}

/// A minisign public key from the configuration: the base64 line (`RW…`) or the whole
/// `.pub` file.
pub fn minisign_key(text: &str) -> Result<minisign_verify::PublicKey, String> {
    let text = text.trim();
    minisign_verify::PublicKey::decode(text)
        .or_else(|_| minisign_verify::PublicKey::from_base64(text))
        .map_err(|e| {
            format!(
                "not a minisign public key ({e}): expected the `RW…` line of a minisign .pub file"
            )
        })
}

/// Checks the minisign signature `signature` (the `.minisig` file's text, named `file`)
/// of `data`; returns its trusted comment.
pub fn verify_minisign(
    key: &minisign_verify::PublicKey,
    file: &str,
    signature: &[u8],
    data: &[u8],
) -> Result<String> {
    require_armour(SignatureKind::Minisign, file, signature)?;
    let text = String::from_utf8_lossy(signature);
    let sig = minisign_verify::Signature::decode(&text).map_err(|e| {
        Failure::refused(format!(
            "{file} is not a readable minisign signature ({e})\nhelp: the release is held; ask its publisher to sign it again"
        ))
    })?;
    // Legacy (non-prehashed) signatures are plain Ed25519 over small files: as strong.
    key.verify(data, &sig, true).map_err(|e| {
        let why = match e {
            minisign_verify::Error::UnexpectedKeyId => {
                "it was made with another key than the configured minisign public key"
            }
            _ => "it does not match the file (tampering, or a replaced file)",
        };
        Failure::refused(format!(
            "the minisign signature {file} is bad: {why}\nhelp: the release is held until a person looks; if the release key changed, configure its new public key"
        ))
    })?;
    Ok(sig.trusted_comment().to_owned())
}

#[cfg(test)]
mod tests {
    use super::super::FailureKind;
    use super::*;

    const PGP: &str =
        "-----BEGIN PGP SIGNATURE-----\n\niHUEABYKAB0WIQ\n=abcd\n-----END PGP SIGNATURE-----\n";
    const SSH: &str =
        "-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ\n-----END SSH SIGNATURE-----\n";

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/minisign")
                .join(name),
        )
        .unwrap()
    }

    fn key(name: &str) -> minisign_verify::PublicKey {
        minisign_key(&String::from_utf8(fixture(name)).unwrap()).unwrap()
    }

    fn output(code: i32, stdout: &str, stderr: &str) -> Output {
        Output {
            code: Some(code),
            stdout: stdout.to_owned(),
            tail: stderr.lines().map(str::to_owned).collect(),
            ..Output::default()
        }
    }

    #[test]
    fn armours_are_told_apart_by_their_first_line() {
        assert_eq!(armour(SSH.as_bytes()), Armour::Ssh);
        assert_eq!(armour(PGP.as_bytes()), Armour::OpenPgp);
        assert_eq!(armour(&fixture("SHA256SUMS.minisig")), Armour::Minisign);
        assert_eq!(
            armour(b"-----BEGIN SIGNED MESSAGE-----\nMIAG\n"),
            Armour::Cms
        );
        assert_eq!(armour(b"\x00\x01binary"), Armour::Unknown);
        assert_eq!(armour(b""), Armour::Unknown);
    }

    #[test]
    fn an_openpgp_signature_is_refused_saying_only_ssh_or_minisign_count() {
        for kind in [SignatureKind::Ssh, SignatureKind::Minisign] {
            let err = require_armour(kind, "SHA256SUMS.sig", PGP.as_bytes()).unwrap_err();
            assert_eq!(err.kind, FailureKind::Refused);
            assert!(err.message.contains("OpenPGP"), "{}", err.message);
            assert!(
                err.message
                    .contains("only SSH signatures from allowed_signers")
                    && err.message.contains("minisign"),
                "{}",
                err.message
            );
        }
        assert!(require_armour(SignatureKind::Ssh, "x.sig", SSH.as_bytes()).is_ok());
    }

    #[test]
    fn the_ssh_commands_use_namespace_file_and_judge_validity_now() {
        let check = SshCheck {
            ssh_keygen: "/usr/bin/ssh-keygen".into(),
            allowed_signers: "/etc/heph/allowed_signers".into(),
            signature: "/cache/SHA256SUMS.sig".into(),
            message: "/cache/SHA256SUMS".into(),
        };
        assert_eq!(
            check.find_principals().argv(),
            [
                "/usr/bin/ssh-keygen",
                "-Y",
                "find-principals",
                "-f/etc/heph/allowed_signers",
                "-s/cache/SHA256SUMS.sig"
            ]
        );
        let verify = check.verify("-release@heph");
        assert_eq!(
            verify.argv(),
            [
                "/usr/bin/ssh-keygen",
                "-Y",
                "verify",
                "-f/etc/heph/allowed_signers",
                "-I-release@heph",
                "-n",
                "file",
                "-s/cache/SHA256SUMS.sig"
            ]
        );
        assert!(!verify.argv().iter().any(|a| a.contains("verify-time")));
    }

    #[test]
    fn principals_are_read_from_a_successful_find() {
        let out = output(0, "release@heph\nbackup@heph\n", "");
        assert_eq!(
            judge_find_principals("SHA256SUMS.sig", &out, Path::new("/s")).unwrap(),
            ["release@heph", "backup@heph"]
        );
    }

    #[test]
    fn a_key_outside_allowed_signers_is_refused() {
        let out = output(255, "", "No principal matched.");
        let err =
            judge_find_principals("SHA256SUMS.sig", &out, Path::new("/etc/signers")).unwrap_err();
        assert_eq!(err.kind, FailureKind::Refused);
        assert!(err.message.contains("/etc/signers"), "{}", err.message);
        assert!(
            err.message.contains("No principal matched"),
            "{}",
            err.message
        );
        // Exit 0 with nothing printed names nobody either.
        assert!(judge_find_principals("x", &output(0, "\n", ""), Path::new("/s")).is_err());
    }

    #[test]
    fn only_the_exit_code_of_verify_counts() {
        assert!(judge_verify("x", "p", &output(0, "", "")).is_ok());
        let err = judge_verify("x", "p", &output(255, "Good \"file\" signature", "")).unwrap_err();
        assert_eq!(err.kind, FailureKind::Refused);
    }

    #[test]
    fn a_good_minisign_signature_verifies_and_gives_its_trusted_comment() {
        let comment = verify_minisign(
            &key("release.pub"),
            "SHA256SUMS.minisig",
            &fixture("SHA256SUMS.minisig"),
            &fixture("SHA256SUMS"),
        )
        .unwrap();
        assert_eq!(comment, "hephaestus v1.4.0");
    }

    #[test]
    fn a_minisign_key_may_be_given_as_its_base64_line() {
        let line = String::from_utf8(fixture("release.pub")).unwrap();
        let b64 = line.lines().nth(1).unwrap();
        let from_line = minisign_key(b64).unwrap();
        let comment = verify_minisign(
            &from_line,
            "SHA256SUMS.minisig",
            &fixture("SHA256SUMS.minisig"),
            &fixture("SHA256SUMS"),
        );
        assert_eq!(comment.unwrap(), "hephaestus v1.4.0");
        assert!(minisign_key("RWnotakey").is_err());
    }

    #[test]
    fn a_minisign_signature_over_changed_data_or_by_another_key_is_refused() {
        let mut changed = fixture("SHA256SUMS");
        changed[0] ^= 1;
        let err = verify_minisign(
            &key("release.pub"),
            "SHA256SUMS.minisig",
            &fixture("SHA256SUMS.minisig"),
            &changed,
        )
        .unwrap_err();
        assert_eq!(err.kind, FailureKind::Refused);
        assert!(err.message.contains("does not match"), "{}", err.message);
        let err = verify_minisign(
            &key("other.pub"),
            "SHA256SUMS.minisig",
            &fixture("SHA256SUMS.minisig"),
            &fixture("SHA256SUMS"),
        )
        .unwrap_err();
        assert!(err.message.contains("another key"), "{}", err.message);
    }

    #[test]
    fn a_garbled_or_foreign_minisig_is_refused() {
        let err = verify_minisign(
            &key("release.pub"),
            "SHA256SUMS.minisig",
            b"untrusted comment: x\nnot base64\n",
            &fixture("SHA256SUMS"),
        )
        .unwrap_err();
        assert_eq!(err.kind, FailureKind::Refused);
        let err = verify_minisign(
            &key("release.pub"),
            "SHA256SUMS.minisig",
            PGP.as_bytes(),
            &fixture("SHA256SUMS"),
        )
        .unwrap_err();
        assert!(err.message.contains("OpenPGP"), "{}", err.message);
    }
}
