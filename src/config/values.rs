//! The value types of configuration keys. Each accepts the documented forms of its key —
//! from TOML, or from the text of an environment variable or `--set` — checks the rules
//! that need no other key, and serialises to its normal form (what `config` shows).
//!
//! Error messages are predicates ("must be …; found …"): the caller puts the key and
//! where it was set in front of them.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use semver::{Version, VersionReq};
use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::build::BuildMode;
use crate::forge::ForgeKind;
use crate::policy::Channel;
use crate::service::ServiceManagerKind;

use super::{Mode, RestartMethod};

/// How a list is written in the text of an environment variable or `--set`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sep {
    /// `heph, hephd`
    Comma,
    /// `heph status` (a command and its arguments)
    Whitespace,
    /// `Mon..Fri 02:00-05:00; Sat 10:00-12:00` (items that contain commas and spaces)
    Semicolon,
}

impl Sep {
    /// The newtype-struct name by which a list tells a text deserializer how it is split
    /// (TOML needs no such hint: its arrays are arrays).
    pub const fn marker(self) -> &'static str {
        match self {
            Self::Comma => "heph_selfupdate::list(,)",
            Self::Whitespace => "heph_selfupdate::list( )",
            Self::Semicolon => "heph_selfupdate::list(;)",
        }
    }

    /// The separator a marker names.
    pub fn from_marker(name: &str) -> Option<Self> {
        [Self::Comma, Self::Whitespace, Self::Semicolon]
            .into_iter()
            .find(|s| s.marker() == name)
    }

    /// The items of `text`, trimmed, empty ones dropped.
    pub fn split(self, text: &str) -> Vec<&str> {
        let items: Vec<&str> = match self {
            Self::Comma => text.split(',').collect(),
            Self::Whitespace => text.split_whitespace().collect(),
            Self::Semicolon => text.split(';').collect(),
        };
        items
            .into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// A list of values; in text, comma-separated.
#[derive(Debug, Clone, PartialEq)]
pub struct List<T>(pub Vec<T>);

/// A command and its arguments (argv, never a shell line); in text, space-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argv(pub Vec<String>);

/// A list of strings that may contain commas and spaces; in text, `;`-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows(pub Vec<String>);

fn deserialize_list<'de, D, T>(d: D, sep: Sep, expecting: &'static str) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserialize_list_or_text(d, sep, expecting, None)
}

/// As [`deserialize_list`]; `text`: a TOML string is taken too, split at this separator
/// (for keys whose documented value is one string, like `restart_window`).
fn deserialize_list_or_text<'de, D, T>(
    d: D,
    sep: Sep,
    expecting: &'static str,
    text: Option<Sep>,
) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ListVisitor<T> {
        expecting: &'static str,
        text: Option<Sep>,
        item: PhantomData<T>,
    }
    impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
            if self.text.is_some() {
                d.deserialize_any(self)
            } else {
                d.deserialize_seq(self)
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<T>, E> {
            let Some(sep) = self.text else {
                return Err(E::invalid_type(Unexpected::Str(v), &self));
            };
            sep.split(v)
                .into_iter()
                .map(|item| T::deserialize(de::value::StrDeserializer::<E>::new(item)))
                .collect()
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element()? {
                out.push(item);
            }
            Ok(out)
        }
    }
    d.deserialize_newtype_struct(
        sep.marker(),
        ListVisitor {
            expecting,
            text,
            item: PhantomData,
        },
    )
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_list(d, Sep::Comma, "a list of strings").map(Self)
    }
}

impl<'de> Deserialize<'de> for Argv {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_list(
            d,
            Sep::Whitespace,
            "a list of strings (a command and its arguments, e.g. [\"heph\", \"status\"])",
        )
        .map(Self)
    }
}

impl<'de> Deserialize<'de> for Windows {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_list_or_text(
            d,
            Sep::Semicolon,
            "a list of strings, or one string of windows separated by `;`",
            Some(Sep::Semicolon),
        )
        .map(Self)
    }
}

impl<T: Serialize> Serialize for List<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl Serialize for Argv {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl Serialize for Windows {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// An enum chosen by its kebab-case name.
pub trait Choice: Copy + PartialEq + 'static {
    /// Every accepted name and its value, in the order messages list them.
    const OPTIONS: &'static [(&'static str, Self)];
}

impl Choice for ForgeKind {
    const OPTIONS: &'static [(&'static str, Self)] = &[
        ("forgejo", Self::Forgejo),
        ("gitea", Self::Gitea),
        ("github", Self::GitHub),
        ("gitlab", Self::GitLab),
    ];
}

impl Choice for Channel {
    const OPTIONS: &'static [(&'static str, Self)] =
        &[("stable", Self::Stable), ("prerelease", Self::Prerelease)];
}

impl Choice for Mode {
    const OPTIONS: &'static [(&'static str, Self)] =
        &[("apply", Self::Apply), ("notify", Self::Notify)];
}

impl Choice for BuildMode {
    const OPTIONS: &'static [(&'static str, Self)] =
        &[("git", Self::Git), ("checkout", Self::Checkout)];
}

impl Choice for ServiceManagerKind {
    const OPTIONS: &'static [(&'static str, Self)] = &[
        ("systemd-user", Self::SystemdUser),
        ("systemd-system", Self::SystemdSystem),
        ("launchd", Self::Launchd),
        ("none", Self::None),
    ];
}

impl Choice for RestartMethod {
    const OPTIONS: &'static [(&'static str, Self)] =
        &[("manager", Self::Manager), ("respawn", Self::Respawn)];
}

/// One of the names of a [`Choice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick<T>(pub T);

struct OneOf<T>(PhantomData<T>);

impl<T: Choice> fmt::Display for OneOf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("one of ")?;
        for (i, (name, _)) in T::OPTIONS.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

impl<'de, T: Choice> Deserialize<'de> for Pick<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PickVisitor<T>(PhantomData<T>);
        impl<T: Choice> Visitor<'_> for PickVisitor<T> {
            type Value = Pick<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&OneOf::<T>(PhantomData), f)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Pick<T>, E> {
                T::OPTIONS
                    .iter()
                    .find(|(name, _)| *name == s)
                    .map(|(_, v)| Pick(*v))
                    .ok_or_else(|| E::invalid_value(Unexpected::Str(s), &self))
            }
        }
        d.deserialize_str(PickVisitor(PhantomData))
    }
}

impl<T: Choice> Pick<T> {
    /// The name the value is chosen by.
    pub fn name(self) -> &'static str {
        T::OPTIONS
            .iter()
            .find(|(_, v)| *v == self.0)
            .map_or("?", |(name, _)| *name)
    }
}

impl<T: Choice> Serialize for Pick<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A string value with rules of its own, checked once when it is read.
pub trait FromText: Sized {
    /// What a good value looks like, for messages about values that are not strings.
    const EXPECTING: &'static str;
    /// The value, or what is wrong with `text` (a predicate: "must …").
    fn from_text(text: &str) -> Result<Self, String>;
}

fn deserialize_text<'de, D: Deserializer<'de>, T: FromText>(d: D) -> Result<T, D::Error> {
    struct TextVisitor<T>(PhantomData<T>);
    impl<T: FromText> Visitor<'_> for TextVisitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(T::EXPECTING)
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
            T::from_text(s).map_err(E::custom)
        }
    }
    d.deserialize_str(TextVisitor(PhantomData))
}

/// Deserialize through [`FromText`], serialise as the string it shows.
macro_rules! text_value {
    ($($ty:ident),* $(,)?) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                deserialize_text(d)
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}

text_value!(
    Name,
    ServiceName,
    Repo,
    HttpUrl,
    GitUrl,
    Req,
    Pin,
    PathText,
    HostId
);

/// A package, binary or toolchain name: it becomes an argument and a file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(pub String);

impl FromText for Name {
    const EXPECTING: &'static str = "a name (letters, digits, _ - .)";
    fn from_text(name: &str) -> Result<Self, String> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            && !name.contains("..");
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(format!(
                "must be a name of letters, digits, _ - . (at most 64, starting with a letter, digit or _); found {name:?}"
            ))
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A systemd unit name or launchd label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceName(pub String);

impl FromText for ServiceName {
    const EXPECTING: &'static str = "a unit name or launchd label";
    fn from_text(name: &str) -> Result<Self, String> {
        let ok = !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && name.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.' | b'@' | b'-')
            });
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(format!(
                "must be a valid unit name or launchd label; found {name:?}"
            ))
        }
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `owner/name`, or `group/subgroup/name` (whether groups are allowed depends on the forge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo(pub String);

impl Repo {
    /// How many `/`-separated parts it has.
    pub fn depth(&self) -> usize {
        self.0.split('/').count()
    }
}

impl FromText for Repo {
    const EXPECTING: &'static str = "owner/name";
    fn from_text(repo: &str) -> Result<Self, String> {
        let parts: Vec<&str> = repo.split('/').collect();
        let parts_ok = parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with(['.', '-'])
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
        if parts.len() >= 2 && parts_ok {
            Ok(Self(repo.to_owned()))
        } else {
            Err(format!("must look like owner/name; found {repo:?}"))
        }
    }
}

impl fmt::Display for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A forge URL: http(s) only, with a host, no credentials, no trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(pub String);

impl FromText for HttpUrl {
    const EXPECTING: &'static str = "an https:// URL";
    fn from_text(url: &str) -> Result<Self, String> {
        let Some(rest) = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
        else {
            return Err(format!(
                "must start with https:// or http://; found {:?}",
                crate::redact::url(url)
            ));
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() {
            return Err(format!("must name a host; found {url:?}"));
        }
        if authority.contains('@') {
            return Err(format!(
                "must not contain credentials\nhelp: put the token in token_file or {}",
                crate::envvars::TOKEN
            ));
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters".to_owned());
        }
        if url::Url::parse(url).is_err() {
            return Err(format!("must be a valid URL; found {url:?}"));
        }
        Ok(Self(url.trim_end_matches('/').to_owned()))
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A URL cargo and git fetch: https, http, ssh or file; never with a password or token,
/// never with a host or user that git could take for an option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitUrl(pub String);

impl FromText for GitUrl {
    const EXPECTING: &'static str = "a URL (https://, http://, ssh:// or file://)";
    fn from_text(url: &str) -> Result<Self, String> {
        let schemes = ["https://", "http://", "ssh://", "file://"];
        let Some(rest) = schemes.iter().find_map(|s| url.strip_prefix(s)) else {
            let hint = if url.contains('@') && url.contains(':') {
                "\nhelp: cargo does not accept scp-style `git@host:path`; write ssh://git@host/path"
            } else {
                ""
            };
            return Err(format!(
                "must start with https://, http://, ssh:// or file://; found {}{hint}",
                crate::redact::url(url)
            ));
        };
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters".to_owned());
        }
        let authority = rest.split('/').next().unwrap_or_default();
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((user, host)) => (Some(user), host),
            None => (None, authority),
        };
        if let Some(user) = userinfo
            && (user.contains(':') || !url.starts_with("ssh://"))
        {
            return Err(format!(
                "must not contain credentials ({})\nhelp: use anonymous HTTPS, or ssh:// with a deploy key",
                crate::redact::url(url)
            ));
        }
        // ssh takes a host or user starting with `-` for an option (`-oProxyCommand=…`
        // runs a command); no real host name starts with `-` (RFC 1123).
        if host.starts_with('-') || userinfo.is_some_and(|u| u.starts_with('-')) {
            return Err(format!(
                "must not have a host or user starting with `-` (ssh would read it as an option); found {}",
                crate::redact::url(url)
            ));
        }
        Ok(Self(url.to_owned()))
    }
}

impl fmt::Display for GitUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A semver requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Req(pub VersionReq);

impl FromText for Req {
    const EXPECTING: &'static str = "a semver requirement such as \"~1.10\" or \"<2\"";
    fn from_text(text: &str) -> Result<Self, String> {
        VersionReq::parse(text).map(Self).map_err(|e| {
            format!(
                "must be a semver requirement such as \"~1.10\" or \"<2\"; found {text:?} ({e})"
            )
        })
    }
}

impl fmt::Display for Req {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An exact version, written `1.8.1` or `v1.8.1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin(pub Version);

impl FromText for Pin {
    const EXPECTING: &'static str = "a version such as \"1.8.1\" or \"v1.8.1\"";
    fn from_text(text: &str) -> Result<Self, String> {
        crate::version::parse_tag(text)
            .map(Self)
            .map_err(|e| format!("must be a version such as 1.8.1 or v1.8.1: {e}"))
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An absolute path as written, or one starting with `~/` (expanded once the home
/// directory is known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathText(pub String);

impl FromText for PathText {
    const EXPECTING: &'static str = "an absolute path (or one starting with ~/)";
    fn from_text(text: &str) -> Result<Self, String> {
        if text == "~" || text.starts_with("~/") || std::path::Path::new(text).is_absolute() {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "must be an absolute path (or start with ~/); found {text:?}\nhelp: services run from an unpredictable working directory"
            ))
        }
    }
}

impl fmt::Display for PathText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What this host is called in a rollout: printable ASCII, at most 128 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostId(pub String);

impl FromText for HostId {
    const EXPECTING: &'static str = "a host name (printable ASCII)";
    fn from_text(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.len() > 128 || !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            Err(format!(
                "must be 1 to 128 printable ASCII characters; found {text:?}"
            ))
        } else {
            Ok(Self(text.to_owned()))
        }
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A duration: whole seconds (`90`) or with units (`"90s"`, `"10min"`, `"1h 30m"`, `"2d"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

const DURATION_EXPECTING: &str = "a duration such as \"90s\", \"10min\" or \"2d\"";

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct DurVisitor;
        impl Visitor<'_> for DurVisitor {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(DURATION_EXPECTING)
            }
            fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Dur, E> {
                Ok(Dur(Duration::from_secs(secs)))
            }
            fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Dur, E> {
                u64::try_from(secs)
                    .map(|s| Dur(Duration::from_secs(s)))
                    .map_err(|_| E::invalid_value(Unexpected::Signed(secs), &self))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Dur, E> {
                s.parse::<u64>()
                    .ok()
                    .map(Duration::from_secs)
                    .or_else(|| humantime::parse_duration(s).ok())
                    .map(Dur)
                    .ok_or_else(|| E::invalid_value(Unexpected::Str(s), &self))
            }
        }
        d.deserialize_any(DurVisitor)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(self.0))
    }
}

/// A duration in the units people write: `"1m 30s"`, `"2d"`, `"1h 30m"`, `"0s"`; exact
/// (`humantime` reads it back to the same value).
pub fn format_duration(d: Duration) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut secs = d.as_secs();
    for (size, unit) in UNITS {
        if secs >= size {
            parts.push(format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    let nanos = d.subsec_nanos();
    for (size, unit) in [(1_000_000, "ms"), (1_000, "us"), (1, "ns")] {
        if !(nanos / size).is_multiple_of(1000) {
            parts.push(format!("{}{unit}", (nanos / size) % 1000));
        }
    }
    if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.join(" ")
    }
}

/// A size in bytes: a whole number of bytes, or with a unit (`"2GiB"`, `"500MB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"2GiB\" or \"500MB\"")
            }
            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<Size, E> {
                Ok(Size(bytes))
            }
            fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<Size, E> {
                u64::try_from(bytes)
                    .map(Size)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(bytes), &self))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Size, E> {
                s.parse::<u64>()
                    .ok()
                    .or_else(|| s.parse::<bytesize::ByteSize>().ok().map(|b| b.as_u64()))
                    .map(Size)
                    .ok_or_else(|| E::invalid_value(Unexpected::Str(s), &self))
            }
        }
        d.deserialize_any(SizeVisitor)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_size(self.0))
    }
}

/// A size in the largest unit that states it exactly: `"2 GiB"`, `"500 MB"`, `"1234 B"`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 8] = [
        (1 << 40, "TiB"),
        (1_000_000_000_000, "TB"),
        (1 << 30, "GiB"),
        (1_000_000_000, "GB"),
        (1 << 20, "MiB"),
        (1_000_000, "MB"),
        (1 << 10, "KiB"),
        (1_000, "kB"),
    ];
    UNITS
        .iter()
        .find(|(size, _)| bytes >= *size && bytes.is_multiple_of(*size))
        .map_or_else(
            || format!("{bytes} B"),
            |(size, unit)| format!("{} {unit}", bytes / size),
        )
}

/// A count of at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl Visitor<'_> for CountVisitor {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number of at least 1")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Count, E> {
                if n >= 1 {
                    Ok(Count(n))
                } else {
                    Err(E::invalid_value(Unexpected::Unsigned(n), &self))
                }
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Count, E> {
                u64::try_from(n)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(n), &self))
                    .and_then(|n| self.visit_u64(n))
            }
        }
        d.deserialize_u64(CountVisitor)
    }
}

impl Serialize for Count {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// A fraction in [0, 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fraction(pub f64);

impl<'de> Deserialize<'de> for Fraction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FractionVisitor;
        impl Visitor<'_> for FractionVisitor {
            type Value = Fraction;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number from 0 up to but not including 1, such as 0.25")
            }
            fn visit_f64<E: de::Error>(self, x: f64) -> Result<Fraction, E> {
                if (0.0..1.0).contains(&x) {
                    Ok(Fraction(x))
                } else {
                    Err(E::invalid_value(Unexpected::Float(x), &self))
                }
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Fraction, E> {
                if n == 0 {
                    Ok(Fraction(0.0))
                } else {
                    Err(E::invalid_value(Unexpected::Unsigned(n), &self))
                }
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Fraction, E> {
                if n == 0 {
                    Ok(Fraction(0.0))
                } else {
                    Err(E::invalid_value(Unexpected::Signed(n), &self))
                }
            }
        }
        d.deserialize_f64(FractionVisitor)
    }
}

impl Serialize for Fraction {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_shown_in_units_that_read_back_exactly() {
        for (secs, shown) in [
            (0, "0s"),
            (90, "1m 30s"),
            (180, "3m"),
            (5_400, "1h 30m"),
            (172_800, "2d"),
            (93_601, "1d 2h 1s"),
        ] {
            let d = Duration::from_secs(secs);
            assert_eq!(format_duration(d), shown);
            assert_eq!(humantime::parse_duration(shown).unwrap(), d);
        }
        let d = Duration::from_millis(1_500) + Duration::from_nanos(7);
        assert_eq!(format_duration(d), "1s 500ms 7ns");
        assert_eq!(humantime::parse_duration(&format_duration(d)).unwrap(), d);
    }

    #[test]
    fn sizes_are_shown_in_the_largest_exact_unit() {
        for (bytes, shown) in [
            (0, "0 B"),
            (2 << 30, "2 GiB"),
            (8 << 30, "8 GiB"),
            (500 << 20, "500 MiB"),
            (2_000_000_000, "2 GB"),
            (1_234_567, "1234567 B"),
            (1536, "1536 B"),
            (5_000, "5 kB"),
            (3 << 40, "3 TiB"),
            (7_000_000_000_000, "7 TB"),
        ] {
            assert_eq!(format_size(bytes), shown);
            assert_eq!(
                shown.parse::<bytesize::ByteSize>().unwrap().as_u64(),
                bytes,
                "{shown}"
            );
        }
    }

    #[test]
    fn lists_split_on_their_own_separator() {
        assert_eq!(Sep::Comma.split(" a, b,,c "), ["a", "b", "c"]);
        assert_eq!(Sep::Whitespace.split(" heph  status "), ["heph", "status"]);
        assert_eq!(
            Sep::Semicolon.split("Mon..Fri 02:00-05:00; Sat,Sun 10:00-12:00;"),
            ["Mon..Fri 02:00-05:00", "Sat,Sun 10:00-12:00"]
        );
        for sep in [Sep::Comma, Sep::Whitespace, Sep::Semicolon] {
            assert_eq!(Sep::from_marker(sep.marker()), Some(sep));
        }
    }

    #[test]
    fn ssh_urls_whose_host_or_user_could_be_an_option_are_refused() {
        for url in [
            "ssh://-oProxyCommand=touch%20/tmp/x/o/r.git",
            "ssh://git@-oProxyCommand=x/o/r.git",
            "ssh://-user@forge.example/o/r.git",
            "https://-evil.example/o/r.git",
        ] {
            let err = GitUrl::from_text(url).unwrap_err();
            assert!(err.contains("starting with `-`"), "{url}: {err}");
        }
        assert!(GitUrl::from_text("ssh://forgejo@forge.example:2222/o/r.git").is_ok());
        assert!(GitUrl::from_text("ssh://forge.example/o/-r.git").is_ok());
    }

    #[test]
    fn host_ids_are_short_printable_ascii() {
        assert!(HostId::from_text("laptop-7").is_ok());
        assert!(HostId::from_text("a b").is_ok());
        assert!(HostId::from_text(&"x".repeat(128)).is_ok());
        assert!(HostId::from_text(&"x".repeat(129)).is_err());
        assert!(HostId::from_text("").is_err());
        assert!(HostId::from_text("tab\there").is_err());
        assert!(HostId::from_text("café").is_err());
    }
}
