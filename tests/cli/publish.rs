//! The publishing recipe (`scripts/publish-assets`, docs/assets.md): run on the fixture
//! workspace, built for real, against a loopback stand-in of Forgejo's release API that
//! records the uploads; the uploaded files are then read back with `src/prebuilt`'s
//! parsers and checked with real `ssh-keygen` and `minisign` keys.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use heph_selfupdate::prebuilt::checksum::{self, Sha256Digest};
use heph_selfupdate::prebuilt::host::{HostTargets, RealHost, host_targets};
use heph_selfupdate::prebuilt::select::{self, Request, Selection};
use heph_selfupdate::prebuilt::signature::{self, SignatureKind, SshCheck};
use heph_selfupdate::prebuilt::unpack::{UnpackLimits, unpack};
use heph_selfupdate::prebuilt::{FailureKind, ReleaseAsset};
use heph_selfupdate::process::{Output, find_on_path};
use serde_json::{Value, json};

use crate::support::fixture::{self, Daemon};

const TOKEN: &str = "f00dfeed1234567890abcdef";
const REPO: &str = "eblume/hephaestus";

/// One request the stand-in saw.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
}

/// Asset name → (asset id, bytes).
type Assets = BTreeMap<String, (u64, Vec<u8>)>;

#[derive(Debug, Default)]
struct Releases {
    /// tag → (release id, its assets).
    by_tag: BTreeMap<String, (u64, Assets)>,
    next_id: u64,
    seen: Vec<Seen>,
}

/// A loopback stand-in for the parts of Forgejo's release API the recipe uses.
struct Recorder {
    url: String,
    state: Arc<Mutex<Releases>>,
}

impl Recorder {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(Releases {
            next_id: 7,
            ..Releases::default()
        }));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = answer(stream, &shared);
            }
        });
        Self { url, state }
    }

    fn assets(&self, tag: &str) -> BTreeMap<String, Vec<u8>> {
        let st = self.state.lock().unwrap();
        st.by_tag
            .get(tag)
            .map(|(_, a)| a.iter().map(|(k, (_, v))| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

fn answer(stream: TcpStream, state: &Mutex<Releases>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut st = state.lock().unwrap();
    st.seen.push(Seen {
        method: method.clone(),
        path: target.clone(),
        authorization: headers.get("authorization").cloned(),
    });
    let authorized =
        headers.get("authorization").map(String::as_str) == Some(format!("token {TOKEN}").as_str());
    let base = format!("/api/v1/repos/{REPO}/releases");
    let rest = path.strip_prefix(&base).unwrap_or("!");
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let release_json = |tag: &str, st: &Releases| {
        let (id, assets) = &st.by_tag[tag];
        json!({"id": id, "tag_name": tag, "assets": assets.iter()
            .map(|(name, (aid, _))| json!({"id": aid, "name": name})).collect::<Vec<_>>()})
    };
    let (status, reply): (u16, Value) = if authorized {
        match (method.as_str(), segments.as_slice()) {
            ("GET", ["tags", tag]) if st.by_tag.contains_key(*tag) => (200, release_json(tag, &st)),
            ("POST", []) => {
                let req: Value = serde_json::from_slice(&body).unwrap_or_default();
                let tag = req["tag_name"].as_str().unwrap_or_default().to_owned();
                let id = st.next_id;
                st.next_id += 1;
                st.by_tag.insert(tag.clone(), (id, BTreeMap::new()));
                (201, release_json(&tag, &st))
            }
            ("POST", [id, "assets"]) => {
                let name = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("name="))
                    .unwrap_or_default()
                    .to_owned();
                let data = attachment(&headers, &body);
                let aid = st.next_id;
                st.next_id += 1;
                let release = st
                    .by_tag
                    .values_mut()
                    .find(|(rid, _)| rid.to_string() == *id);
                match (release, data) {
                    (Some((_, assets)), Some(data)) => {
                        assets.insert(name.clone(), (aid, data));
                        (201, json!({"id": aid, "name": name}))
                    }
                    _ => (422, json!({"message": "no attachment"})),
                }
            }
            ("DELETE", [id, "assets", aid]) => {
                for (rid, assets) in st.by_tag.values_mut() {
                    if rid.to_string() == *id {
                        assets.retain(|_, (a, _)| a.to_string() != *aid);
                    }
                }
                (204, Value::Null)
            }
            _ => (404, json!({"message": "Not Found"})),
        }
    } else {
        (401, json!({"message": "token is required"}))
    };
    drop(st);
    let text = if status == 204 {
        String::new()
    } else {
        reply.to_string()
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    )?;
    out.flush()
}

/// The bytes of the multipart field `attachment`.
fn attachment(headers: &BTreeMap<String, String>, body: &[u8]) -> Option<Vec<u8>> {
    let boundary = headers.get("content-type")?.split("boundary=").nth(1)?;
    let delimiter = format!("\r\n--{boundary}");
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let field = find(body, b"name=\"attachment\"", 0)?;
    let start = find(body, b"\r\n\r\n", field)? + 4;
    let end = find(body, delimiter.as_bytes(), start)?;
    Some(body[start..end].to_vec())
}

/// `name` on PATH, or `None` after saying so (a failure under `CI_REQUIRE_TOOLS=1`).
fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = find_on_path(name, std::env::var_os("PATH").as_deref());
    if found.is_none() {
        assert!(
            std::env::var("CI_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{name} is not on PATH and CI_REQUIRE_TOOLS=1 (Debian package {package})"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {name} is not installed (Debian package {package}), so the publishing recipe was not run"
        );
    }
    found
}

#[track_caller]
fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `ssh-keygen` with the message on stdin, as the transaction will run it.
fn ssh_keygen(cmd: &heph_selfupdate::process::Cmd, stdin: Option<&Path>) -> Output {
    let mut c = Command::new(&cmd.program);
    c.args(&cmd.args).stdin(match stdin {
        Some(p) => Stdio::from(std::fs::File::open(p).unwrap()),
        None => Stdio::null(),
    });
    let out = c.output().unwrap();
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        tail: String::from_utf8_lossy(&out.stderr)
            .lines()
            .map(str::to_owned)
            .collect(),
        ..Output::default()
    }
}

/// Checks `sums`' SSH signature `sig` against `allowed` the way the transaction will:
/// find the principal, then verify for it.
fn ssh_check(
    ssh: &Path,
    allowed: &Path,
    sums: &Path,
    sig: &Path,
) -> heph_selfupdate::prebuilt::Result<String> {
    let check = SshCheck {
        ssh_keygen: ssh.to_path_buf(),
        allowed_signers: allowed.to_path_buf(),
        signature: sig.to_path_buf(),
        message: sums.to_path_buf(),
    };
    signature::require_armour(
        SignatureKind::Ssh,
        "SHA256SUMS.sig",
        &std::fs::read(sig).unwrap(),
    )?;
    let found = ssh_keygen(&check.find_principals(), None);
    let principals = signature::judge_find_principals("SHA256SUMS", &found, allowed)?;
    let verified = ssh_keygen(&check.verify(&principals[0]), Some(&check.message));
    signature::judge_verify("SHA256SUMS", &principals[0], &verified)?;
    Ok(principals[0].clone())
}

fn as_assets(uploaded: &BTreeMap<String, Vec<u8>>) -> Vec<ReleaseAsset> {
    uploaded
        .iter()
        .map(|(name, bytes)| ReleaseAsset {
            name: name.clone(),
            download_url: format!("http://forge.test/attachments/{name}"),
            api_url: None,
            size: Some(bytes.len() as u64),
        })
        .collect()
}

#[test]
fn the_recipe_publishes_signed_assets_that_heph_selfupdate_reads_and_verifies() {
    let (Some(ssh), Some(_curl), Some(_jq), Some(_xz), Some(minisign)) = (
        tool("ssh-keygen", "openssh-client"),
        tool("curl", "curl"),
        tool("jq", "jq"),
        tool("xz", "xz-utils"),
        tool("minisign", "minisign"),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    // The fixture workspace, version 1.4.0, built as a release job builds it.
    let ws = dir.join("work space");
    fixture::write_workspace(&ws, "1.4.0", Daemon::Good, "published");
    run_ok(
        Command::new(fixture::cargo())
            .args(["build", "--release", "--offline", "--quiet"])
            .current_dir(&ws)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET_DIR"),
    );

    // Keys: an SSH key in allowed_signers, another outside it, a minisign key pair.
    let keys = dir.join("keys");
    std::fs::create_dir(&keys).unwrap();
    for name in ["release", "stranger"] {
        run_ok(
            Command::new(&ssh)
                .args(["-q", "-t", "ed25519", "-N", "", "-C"])
                .arg(format!("{name}@heph"))
                .arg("-f")
                .arg(keys.join(name)),
        );
    }
    let allowed = keys.join("allowed_signers");
    let public = std::fs::read_to_string(keys.join("release.pub")).unwrap();
    std::fs::write(&allowed, format!("release@heph {public}")).unwrap();
    let stranger_allowed = keys.join("stranger_signers");
    let stranger = std::fs::read_to_string(keys.join("stranger.pub")).unwrap();
    std::fs::write(&stranger_allowed, format!("release@heph {stranger}")).unwrap();
    run_ok(
        Command::new(&minisign)
            .args(["-G", "-W", "-p"])
            .arg(keys.join("minisign.pub"))
            .arg("-s")
            .arg(keys.join("minisign.key")),
    );
    let token_file = keys.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();

    // curl, wrapped to record its argv: the token must be in none.
    let wrap = dir.join("wrap");
    std::fs::create_dir(&wrap).unwrap();
    let argv_log = dir.join("curl-argv");
    let real_curl = find_on_path("curl", std::env::var_os("PATH").as_deref()).unwrap();
    crate::support::env::write_script(
        &wrap.join("curl"),
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\nexec '{}' \"$@\"\n",
            argv_log.display(),
            real_curl.display()
        ),
    );
    let path = format!(
        "{}:{}",
        wrap.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let forge = Recorder::start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/publish-assets");
    let publish = || {
        let mut cmd = Command::new("bash");
        cmd.arg(&script)
            .arg(format!("--workspace={}", ws.display()))
            .args(["--tag=v1.4.0", "--package=hephd", "--package=heph"])
            .arg(format!("--ssh-key={}", keys.join("release").display()))
            .arg(format!(
                "--minisign-key={}",
                keys.join("minisign.key").display()
            ))
            .arg(format!("--forge-url={}", forge.url))
            .arg(format!("--repo={REPO}"))
            .arg(format!("--token-file={}", token_file.display()))
            .env("PATH", &path)
            .env("SOURCE_DATE_EPOCH", "1775124672")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("FORGEJO_TOKEN");
        run_ok(&mut cmd);
    };
    publish();

    let host = host_targets(&RealHost);
    let triple = host.candidates[0].triple.clone();
    let uploaded = forge.assets("v1.4.0");
    let archive = |p: &str| format!("{p}-1.4.0-{triple}.tar.xz");
    assert_eq!(
        uploaded.keys().cloned().collect::<Vec<_>>(),
        [
            "SHA256SUMS".to_owned(),
            "SHA256SUMS.minisig".to_owned(),
            "SHA256SUMS.sig".to_owned(),
            archive("heph"),
            archive("hephd"),
        ]
    );
    let seen = forge.seen();
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some(&format!("token {TOKEN}"))),
        "{seen:?}"
    );
    let argv = std::fs::read_to_string(&argv_log).unwrap();
    assert!(!argv.is_empty() && !argv.contains(TOKEN), "{argv}");

    // Read back as heph-selfupdate will: choose, then check checksums and signatures.
    let packages = vec!["hephd".to_owned(), "heph".to_owned()];
    let selection = choose(&uploaded, &packages, &host);
    assert_eq!(selection.target, triple);
    let sums_path = dir.join("SHA256SUMS");
    std::fs::write(&sums_path, &uploaded["SHA256SUMS"]).unwrap();
    let sig_path = dir.join("SHA256SUMS.sig");
    std::fs::write(&sig_path, &uploaded["SHA256SUMS.sig"]).unwrap();
    assert_eq!(
        ssh_check(&ssh, &allowed, &sums_path, &sig_path).unwrap(),
        "release@heph"
    );
    let key = signature::minisign_key(&std::fs::read_to_string(keys.join("minisign.pub")).unwrap())
        .unwrap();
    let comment = signature::verify_minisign(
        &key,
        "SHA256SUMS.minisig",
        &uploaded["SHA256SUMS.minisig"],
        &uploaded["SHA256SUMS"],
    )
    .unwrap();
    assert_eq!(comment, "v1.4.0");
    let text = String::from_utf8(uploaded["SHA256SUMS"].clone()).unwrap();
    let roots = dir.join("roots");
    std::fs::create_dir(&roots).unwrap();
    for chosen in &selection.archives {
        let sums = chosen.checksum.parse(&text).unwrap();
        let expected = chosen.expected_digest(&sums).unwrap();
        let bytes = &uploaded[&chosen.archive.name];
        let actual = Sha256Digest::of(bytes);
        checksum::check(&chosen.archive.name, &expected, &actual, "SHA256SUMS").unwrap();
        let file = dir.join(&chosen.archive.name);
        std::fs::write(&file, bytes).unwrap();
        let dest = roots.join(&chosen.package);
        let unpacked = unpack(
            &file,
            &chosen.archive.name,
            chosen.format,
            &dest,
            &UnpackLimits::default(),
        )
        .unwrap();
        let exes = select::executables(chosen, &unpacked).unwrap();
        assert_eq!(exes.len(), 1);
        assert_eq!(exes[0].name, chosen.package);
        let out = run_ok(Command::new(&exes[0].path).arg("--version"));
        let line = String::from_utf8_lossy(&out.stdout);
        let expected_version = if chosen.package == "hephd" {
            "hephd 1.4.0"
        } else {
            "heph 0.1.0"
        };
        assert!(line.starts_with(expected_version), "{line}");
    }

    // Hostile variants: a changed SHA256SUMS, a key outside allowed_signers, an OpenPGP
    // armour, a changed archive.
    let mut tampered = uploaded["SHA256SUMS"].clone();
    tampered[0] = if tampered[0] == b'0' { b'1' } else { b'0' };
    let tampered_path = dir.join("SHA256SUMS.tampered");
    std::fs::write(&tampered_path, &tampered).unwrap();
    let err = ssh_check(&ssh, &allowed, &tampered_path, &sig_path).unwrap_err();
    assert_eq!(err.kind, FailureKind::Refused);
    assert!(err.message.contains("does not verify"), "{}", err.message);
    let err = ssh_check(&ssh, &stranger_allowed, &sums_path, &sig_path).unwrap_err();
    assert_eq!(err.kind, FailureKind::Refused);
    assert!(err.message.contains("not by a key in"), "{}", err.message);
    let pgp = dir.join("pgp.sig");
    std::fs::write(
        &pgp,
        "-----BEGIN PGP SIGNATURE-----\n\niQ\n-----END PGP SIGNATURE-----\n",
    )
    .unwrap();
    let err = ssh_check(&ssh, &allowed, &sums_path, &pgp).unwrap_err();
    assert!(err.message.contains("OpenPGP"), "{}", err.message);
    let err = signature::verify_minisign(
        &key,
        "SHA256SUMS.minisig",
        &uploaded["SHA256SUMS.minisig"],
        &tampered,
    )
    .unwrap_err();
    assert_eq!(err.kind, FailureKind::Refused);
    let chosen = &selection.archives[0];
    let mut changed = uploaded[&chosen.archive.name].clone();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    let sums = chosen.checksum.parse(&text).unwrap();
    let err = checksum::check(
        &chosen.archive.name,
        &chosen.expected_digest(&sums).unwrap(),
        &Sha256Digest::of(&changed),
        "SHA256SUMS",
    )
    .unwrap_err();
    assert_eq!(err.kind, FailureKind::Refused);

    // A second run (a re-run of the release job) replaces the assets: the same five,
    // byte for byte (reproducible archives), each old one deleted first.
    publish();
    let again = forge.assets("v1.4.0");
    assert_eq!(
        again.keys().collect::<Vec<_>>(),
        uploaded.keys().collect::<Vec<_>>()
    );
    for name in uploaded
        .keys()
        .filter(|n| n.ends_with(".tar.xz") || *n == "SHA256SUMS")
    {
        assert_eq!(again[name], uploaded[name], "{name} differs between runs");
    }
    let deletes: Vec<Seen> = forge
        .seen()
        .into_iter()
        .filter(|s| s.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 5, "{deletes:?}");
    let base = format!("/api/v1/repos/{REPO}/releases/7/assets/");
    assert!(
        deletes.iter().all(|d| d.path.starts_with(&base)),
        "{deletes:?}"
    );
}

fn choose(
    uploaded: &BTreeMap<String, Vec<u8>>,
    packages: &[String],
    host: &HostTargets,
) -> Selection {
    select::select(
        &as_assets(uploaded),
        None,
        &Request {
            packages,
            version: "1.4.0",
            host,
            signatures: &[SignatureKind::Ssh, SignatureKind::Minisign],
        },
    )
    .unwrap()
}

#[test]
fn the_make_target_runs_the_recipe_with_quoted_arguments() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("make")
        .arg("-n")
        .arg("-C")
        .arg(dir)
        .args([
            "release-assets",
            "TAG=v1.4.0",
            "WORKSPACE=/srv/a b",
            "PACKAGES=hephd heph",
            "SSH_KEY=/k/release key",
            "FORGE_URL=https://forge.test",
            "REPO=eblume/hephaestus",
        ])
        .output();
    let Ok(out) = out else {
        let _ = writeln!(std::io::stderr(), "SKIPPED: make is not installed");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for part in [
        "scripts/publish-assets",
        "--workspace='/srv/a b'",
        "--tag='v1.4.0'",
        "--package='hephd' --package='heph'",
        "--ssh-key='/k/release key'",
        "--forge-url='https://forge.test' --repo='eblume/hephaestus'",
    ] {
        assert!(text.contains(part), "{part} not in:\n{text}");
    }
}
