//! Property tests and fuzzing of every parser that reads outside input: release JSON per
//! forge, `--version` output, tags, the config file, the state file, cargo's install
//! records, `git ls-remote`, `systemctl show`, `launchctl print`, `Link` headers — and
//! the update decision's invariants. `make test` runs a short pass; `make fuzz` a long one
//! (`PROPTEST_CASES`).
#![allow(clippy::unwrap_used, clippy::format_collect)]

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use heph_selfupdate::config::{Config, Dirs, Inputs, Os};
use heph_selfupdate::forge::{ForgeKind, next_link, parse_releases};
use heph_selfupdate::policy::{Channel, Holds, InstalledState, Overrides, Policy, Reason, decide};
use heph_selfupdate::release::Release;
use heph_selfupdate::service::{Launchd, ServiceManager, Systemd};
use heph_selfupdate::version::{parse_tag, parse_version_output, precedence};
use proptest::prelude::*;
use semver::Version;
use serde_json::{Value, json};

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        tag().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("tag_name".to_owned()),
        Just("draft".to_owned()),
        Just("prerelease".to_owned()),
        Just("published_at".to_owned()),
        Just("created_at".to_owned()),
        Just("released_at".to_owned()),
        Just("upcoming_release".to_owned()),
        "[a-z_]{1,12}",
    ]
}

/// Tags: mostly plausible, some hostile.
fn tag() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..4, 0u64..20, 0u64..20).prop_map(|(a, b, c)| format!("v{a}.{b}.{c}")),
        (0u64..4, 0u64..20, 0u64..20, 0u64..12)
            .prop_map(|(a, b, c, r)| format!("v{a}.{b}.{c}-rc.{r}")),
        (0u64..4, 0u64..20).prop_map(|(a, b)| format!("{a}.{b}")),
        Just("-v1.0.0".to_owned()),
        Just("v1.0.0/../../x".to_owned()),
        Just("v1.0.0; rm -rf /".to_owned()),
        ".{0,30}",
        "[ -~]{0,200}",
    ]
}

/// A release entry as a forge might send it, with any field possibly wrong.
fn release_entry() -> impl Strategy<Value = Value> {
    (
        prop_oneof![tag().prop_map(Value::String), json_value()],
        prop_oneof![any::<bool>().prop_map(Value::Bool), json_value()],
        prop_oneof![any::<bool>().prop_map(Value::Bool), json_value()],
        prop_oneof![
            Just(json!("2026-01-30T08:05:19Z")),
            Just(json!("2026-01-30T09:05:19+01:00")),
            Just(json!("2026-03-02T09:30:12.418Z")),
            json_value()
        ],
        any::<bool>(),
    )
        .prop_map(|(tag, draft, pre, date, upcoming)| {
            json!({"tag_name": tag, "draft": draft, "prerelease": pre, "published_at": date,
                   "created_at": date, "released_at": date, "upcoming_release": upcoming})
        })
}

fn kinds() -> impl Strategy<Value = ForgeKind> {
    prop_oneof![
        Just(ForgeKind::Forgejo),
        Just(ForgeKind::GitHub),
        Just(ForgeKind::GitLab)
    ]
}

proptest! {
    #[test]
    fn release_lists_of_any_shape_never_panic(kind in kinds(), body in prop_oneof![
        prop::collection::vec(release_entry(), 0..20).prop_map(Value::Array),
        json_value(),
    ]) {
        let bytes = serde_json::to_vec(&body).unwrap();
        let _ = parse_releases(kind, &bytes);
    }

    #[test]
    fn release_bodies_of_any_bytes_never_panic(kind in kinds(), body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_releases(kind, &body);
    }

    #[test]
    fn accepted_tags_are_safe_to_pass_to_programs(t in tag()) {
        if let Ok(v) = parse_tag(&t) {
            prop_assert!(!t.starts_with('-'));
            prop_assert!(!t.contains('/') && !t.contains("..") && !t.contains(char::is_whitespace));
            prop_assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b".-+".contains(&b)));
            prop_assert_eq!(t.trim_start_matches('v'), v.to_string());
        }
    }

    #[test]
    fn version_output_parsing_never_panics(out in ".{0,300}") {
        if let Some(v) = parse_version_output(&out) {
            prop_assert!(out.lines().next().unwrap_or("").contains(&v.major.to_string()));
        }
    }

    #[test]
    fn config_files_of_any_content_never_panic_and_what_config_shows_reads_back(text in prop_oneof![
        ".{0,200}",
        prop::collection::vec((prop_oneof![
            Just("forge"), Just("forge_url"), Just("repo"), Just("packages"), Just("pin"),
            Just("version_req"), Just("min_release_age"), Just("keep_versions"), Just("verify_tag"),
            Just("health_command"), Just("bin_dir"), Just("git_url"), Just("nope"),
            Just("restart"), Just("restart_timeout"), Just("restart_window"), Just("rollout_wave"),
            Just("host_id"), Just("cache_max_size"), Just("metrics_file"), Just("min_free_space")
        ], prop_oneof![
            Just("\"x\"".to_owned()), Just("3".to_owned()), Just("true".to_owned()),
            Just("[\"a\", \"b\"]".to_owned()), Just("\"~/bin\"".to_owned()), Just("\"-rf\"".to_owned()),
            Just("0.25".to_owned()), Just("\"1h 30m\"".to_owned()), Just("\"500MiB\"".to_owned()),
            Just("\"respawn\"".to_owned()), Just("\"v1.2.3-rc.1\"".to_owned()), Just("\"~1.10\"".to_owned()),
            "\"[ -~]{0,20}\"",
            "[0-9]{1,12}",
            "0\\.[0-9]{1,17}",
            "\\[(\"[ -~&&[^\"\\\\]]{0,12}\", ){0,3}\\]",
        ]), 0..6).prop_map(|kv| kv.iter().map(|(k, v)| format!("{k} = {v}\n")).collect::<String>()),
    ]) {
        if let Ok(cfg) = Config::from_text(&inputs(), Path::new("/c.toml"), Some(&text)) {
            let shown = heph_selfupdate::commands::show_config::render(&cfg);
            let again = Config::from_text(&inputs(), Path::new("/shown.toml"), Some(&shown));
            prop_assert!(again.is_ok(), "{:?}\n{}", again.err(), shown);
            let values = |c: &Config| c.entries().iter().map(|e| (e.key, e.value.clone())).collect::<Vec<_>>();
            prop_assert_eq!(values(&cfg), values(&again.unwrap()), "{}", shown);
        }
    }

    #[test]
    fn state_files_of_any_content_never_panic(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        json_value().prop_map(|v| serde_json::to_vec(&json!({"schema": 1, "bad": v, "history": v, "backoff": v})).unwrap()),
    ]) {
        let _ = heph_selfupdate::state::decode(&bytes);
    }

    #[test]
    fn tool_outputs_of_any_content_never_panic(text in "(.{0,60}\n){0,12}") {
        let _ = heph_selfupdate::install_records::parse(&text);
        let _ = heph_selfupdate::git::parse_ls_remote(&text, "v1.0.0");
        let _ = Systemd::new(Path::new("systemctl"), "hephd.service", true, std::time::Duration::from_secs(60)).parse(&text);
        let _ = Launchd::new(Path::new("launchctl"), "x", 501, std::time::Duration::from_secs(60)).parse(&text);
        let _ = next_link(&text);
        let _ = heph_selfupdate::redact::url(&text);
    }

    #[test]
    fn the_decision_never_downgrades_without_a_pin_and_picks_the_highest(
        installed in prop::option::of((0u64..3, 0u64..5, 0u64..5)),
        tags in prop::collection::vec(tag(), 0..12),
        channel in prop_oneof![Just(Channel::Stable), Just(Channel::Prerelease)],
    ) {
        let installed = InstalledState {
            version: installed.map(|(a, b, c)| Version::new(a, b, c)),
            missing: vec![],
        };
        let releases: Vec<Release> = tags.iter()
            .map(|t| Release::published(t, time::macros::datetime!(2026-01-01 00:00 UTC)))
            .collect();
        let policy = Policy { channel, version_req: None, pin: None, min_release_age: Duration::ZERO, rollout: None };
        let now = time::macros::datetime!(2026-06-01 00:00 UTC);
        let d = decide(&installed, &releases, &policy, &Holds::default(), &Overrides::default(), now);
        let eligible: Vec<Version> = tags.iter()
            .filter_map(|t| parse_tag(t).ok())
            .filter(|v| channel == Channel::Prerelease || v.pre.is_empty())
            .collect();
        let best = eligible.iter().max_by(|a, b| precedence(a, b));
        prop_assert_eq!(d.chosen.as_ref().map(|c| &c.version).is_some(), best.is_some());
        if let (Some(c), Some(b)) = (&d.chosen, best) {
            prop_assert_eq!(precedence(&c.version, b), Ordering::Equal);
        }
        if d.due {
            let target = &d.chosen.as_ref().unwrap().version;
            if let Some(i) = &installed.version {
                prop_assert_eq!(precedence(target, i), Ordering::Greater, "never a downgrade: {}", d.summary());
            }
        } else {
            prop_assert!(!matches!(d.reason, Reason::NewerRelease | Reason::NotInstalled));
        }
    }
}

fn inputs() -> Inputs {
    Inputs {
        config_flag: None,
        sets: vec![],
        env: BTreeMap::new(),
        dirs: Dirs {
            home: "/home/u".into(),
            config: "/home/u/.config/heph-selfupdate".into(),
            data: "/home/u/.local/share/heph-selfupdate".into(),
            state: "/home/u/.local/state/heph-selfupdate".into(),
            cache: "/home/u/.cache/heph-selfupdate".into(),
        },
        os: Os::Linux,
    }
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    for kind in [ForgeKind::Forgejo, ForgeKind::GitHub, ForgeKind::GitLab] {
        assert!(parse_releases(kind, deep.as_bytes()).is_err());
    }
    assert!(
        heph_selfupdate::state::decode(deep.as_bytes())
            .unwrap()
            .is_err()
    );
}

#[test]
fn a_huge_release_list_is_read() {
    let entries: Vec<Value> = (0..50_000)
        .map(|i| json!({"tag_name": format!("v0.{}.{}", i / 100, i % 100)}))
        .collect();
    let body = serde_json::to_vec(&entries).unwrap();
    assert_eq!(
        parse_releases(ForgeKind::Forgejo, &body).unwrap().len(),
        50_000
    );
}

// --- prebuilt release assets (src/prebuilt) ---------------------------------------------

/// Asset and manifest field names, so generated JSON hits the fields that are read.
fn asset_field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("name".to_owned()),
        Just("browser_download_url".to_owned()),
        Just("direct_asset_url".to_owned()),
        Just("url".to_owned()),
        Just("size".to_owned()),
        Just("state".to_owned()),
        Just("kind".to_owned()),
        Just("path".to_owned()),
        Just("assets".to_owned()),
        Just("target_triples".to_owned()),
        Just("artifacts".to_owned()),
        Just("releases".to_owned()),
        Just("app_name".to_owned()),
        Just("links".to_owned()),
        "[a-z_]{1,12}",
    ]
}

fn asset_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(|n| json!(n)),
        Just(json!("https://forge.test/a/b.tar.xz")),
        Just(json!("executable-zip")),
        Just(json!("executable")),
        Just(json!("../../etc/passwd")),
        Just(json!("x86_64-unknown-linux-gnu")),
        ".{0,30}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(asset_field(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Plain file names, as a release job would give its assets.
fn asset_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._+-]{1,40}".prop_filter("not a dot name", |n| n != "." && n != "..")
}

proptest! {
    #[test]
    fn forge_asset_lists_of_any_shape_never_panic_and_keep_only_plain_names(v in asset_json()) {
        use heph_selfupdate::prebuilt::asset::read_assets;
        for kind in [ForgeKind::Forgejo, ForgeKind::GitHub, ForgeKind::GitLab] {
            for a in read_assets(kind, &json!({"assets": v.clone()}))
                .into_iter()
                .chain(read_assets(kind, &json!({"assets": {"links": v.clone()}})))
            {
                prop_assert!(!a.name.is_empty() && !a.name.contains('/') && a.name != "..");
                prop_assert!(a.download_url.starts_with("http"));
            }
        }
    }

    #[test]
    fn dist_manifests_of_any_shape_never_panic_and_name_no_path_outside(v in asset_json(), bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        use heph_selfupdate::prebuilt::manifest::parse;
        for m in [parse(v.to_string().as_bytes()), parse(&bytes)].into_iter().flatten() {
            for a in m.archives {
                for p in a.executables {
                    prop_assert!(!p.starts_with('/') && !p.split('/').any(|c| c == ".."), "{p}");
                }
            }
        }
    }

    #[test]
    fn checksum_files_of_any_content_never_panic(text in "(.{0,80}\n){0,8}", hexes in prop::collection::vec("[0-9a-fA-F]{60,68}", 0..4)) {
        use heph_selfupdate::prebuilt::checksum::Checksums;
        let _ = Checksums::parse("SHA256SUMS", &text);
        let _ = Checksums::parse_single("x.tar.xz.sha256", &text);
        let lines: String = hexes.iter().map(|h| format!("{h}  x\n")).collect();
        let _ = Checksums::parse("SHA256SUMS", &lines);
        let _ = Checksums::parse_single("x.sha256", hexes.first().map_or("", String::as_str));
    }

    #[test]
    fn sha256sum_output_reads_back_as_written(
        entries in prop::collection::btree_map(asset_name(), prop::array::uniform32(any::<u8>()), 0..12),
        binary in any::<bool>(),
        bsd in any::<bool>(),
    ) {
        use heph_selfupdate::prebuilt::checksum::{Checksums, Sha256Digest};
        let text: String = entries
            .iter()
            .map(|(name, d)| {
                let hex = Sha256Digest(*d).hex();
                if bsd {
                    format!("SHA256 ({name}) = {hex}\n")
                } else {
                    format!("{hex} {}{name}\n", if binary { '*' } else { ' ' })
                }
            })
            .collect();
        let sums = Checksums::parse("SHA256SUMS", &text).unwrap();
        prop_assert_eq!(sums.len(), entries.len());
        for (name, d) in &entries {
            prop_assert_eq!(sums.get(name), Some(&Sha256Digest(*d)));
        }
    }

    #[test]
    fn signature_armours_of_any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        use heph_selfupdate::prebuilt::signature::{SignatureKind, armour, require_armour};
        let _ = armour(&bytes);
        let _ = require_armour(SignatureKind::Ssh, "x.sig", &bytes);
        let _ = require_armour(SignatureKind::Minisign, "x.minisig", &bytes);
    }
}
