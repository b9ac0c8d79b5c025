//! The layers configuration is made of — `--set`, the environment, the file — each read
//! into the one [`RawConfig`] type, then merged key by key, keeping where each value
//! came from.
//!
//! A file value is TOML and must have its key's type; an environment or `--set` value is
//! text, parsed into the key's type (lists comma-separated, commands space-separated,
//! `restart_window` `;`-separated). An empty text value puts a key back to its default.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::forward_to_deserialize_any;

use super::Source;
use super::raw::RawConfig;
use super::values::Sep;

/// Where one value was set: the layer, and its line in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub source: Source,
    pub line: Option<usize>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}, line {line}", self.source),
            None => self.source.fmt(f),
        }
    }
}

/// A value as a layer gives it.
#[derive(Debug, Clone)]
pub enum Given {
    Toml(toml::Value),
    Text(String),
    /// An empty text value: back to the default.
    Reset,
}

/// One key's value in one layer.
#[derive(Debug, Clone)]
pub struct Setting {
    pub key: String,
    pub value: Given,
    pub origin: Origin,
}

/// Why a value does not fit its key (a predicate such as "must be …; found …"), and
/// where it was set once known.
#[derive(Debug)]
pub struct Problem {
    pub message: String,
    pub unknown_key: bool,
    pub at: Option<(String, Origin)>,
}

impl Problem {
    fn at(mut self, setting: &Setting) -> Self {
        if self.at.is_none() {
            self.at = Some((setting.key.clone(), setting.origin.clone()));
        }
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Some((key, origin)) => write!(f, "`{key}` ({origin}) {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Problem {}

impl de::Error for Problem {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            message: msg.to_string(),
            unknown_key: false,
            at: None,
        }
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!("must be {exp}; found {unexp}"))
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!("must be {exp}; found {unexp}"))
    }

    fn invalid_length(len: usize, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!("must be {exp}; found {len} items"))
    }

    fn unknown_field(field: &str, _expected: &'static [&'static str]) -> Self {
        Self {
            message: format!("unknown key `{field}`"),
            unknown_key: true,
            at: None,
        }
    }
}

/// Reads the settings of one layer — or the winners of a merge — into a [`RawConfig`].
pub fn read(settings: &[&Setting]) -> Result<RawConfig, Problem> {
    let given: Vec<&Setting> = settings
        .iter()
        .copied()
        .filter(|s| !matches!(s.value, Given::Reset))
        .collect();
    RawConfig::deserialize(Settings {
        items: given.into_iter(),
        current: None,
    })
}

/// For each key, the setting of the first layer (highest precedence first) that has it.
pub fn merge(layers: &[Vec<Setting>]) -> BTreeMap<&str, &Setting> {
    let mut winners = BTreeMap::new();
    for layer in layers {
        for setting in layer {
            winners.entry(setting.key.as_str()).or_insert(setting);
        }
    }
    winners
}

struct Settings<'a, I: Iterator<Item = &'a Setting>> {
    items: I,
    current: Option<&'a Setting>,
}

impl<'de, 'a, I: Iterator<Item = &'a Setting>> Deserializer<'de> for Settings<'a, I> {
    type Error = Problem;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        visitor.visit_map(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map struct
        enum identifier ignored_any
    }
}

impl<'de, 'a, I: Iterator<Item = &'a Setting>> MapAccess<'de> for Settings<'a, I> {
    type Error = Problem;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Problem> {
        let Some(setting) = self.items.next() else {
            return Ok(None);
        };
        self.current = Some(setting);
        let key: de::value::StrDeserializer<'_, Problem> = setting.key.as_str().into_deserializer();
        seed.deserialize(key).map(Some).map_err(|e| e.at(setting))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Problem> {
        let Some(setting) = self.current.take() else {
            return Err(de::Error::custom("a value without a key"));
        };
        match &setting.value {
            Given::Toml(value) => seed.deserialize(TomlValue(value)),
            Given::Text(text) => seed.deserialize(Text {
                text,
                sep: Sep::Comma,
            }),
            Given::Reset => Err(de::Error::custom("was reset")),
        }
        .map_err(|e| e.at(setting))
    }
}

/// Items of a list, each its own deserializer.
struct Items<I>(I);

impl<'de, I, D> de::SeqAccess<'de> for Items<I>
where
    I: Iterator<Item = D>,
    D: Deserializer<'de, Error = Problem>,
{
    type Error = Problem;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Problem> {
        self.0.next().map(|d| seed.deserialize(d)).transpose()
    }
}

/// A TOML value, deserialised with [`Problem`] errors. Dates and tables are no key's type.
struct TomlValue<'a>(&'a toml::Value);

impl<'de> Deserializer<'de> for TomlValue<'_> {
    type Error = Problem;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        match self.0 {
            toml::Value::String(s) => visitor.visit_str(s),
            toml::Value::Integer(i) => visitor.visit_i64(*i),
            toml::Value::Float(x) => visitor.visit_f64(*x),
            toml::Value::Boolean(b) => visitor.visit_bool(*b),
            toml::Value::Array(items) => visitor.visit_seq(Items(items.iter().map(TomlValue))),
            toml::Value::Datetime(_) => Err(de::Error::invalid_type(
                de::Unexpected::Other("a date-time"),
                &visitor,
            )),
            toml::Value::Table(_) => Err(de::Error::invalid_type(de::Unexpected::Map, &visitor)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Problem> {
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf unit unit_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

/// The text of an environment variable or `--set`, parsed into whatever type is asked
/// for; a list is split by `sep` (or by the separator its type asks for).
struct Text<'a> {
    text: &'a str,
    sep: Sep,
}

impl Text<'_> {
    fn parse<T: std::str::FromStr, V: de::Expected>(&self, visitor: &V) -> Result<T, Problem> {
        self.text
            .parse()
            .map_err(|_| de::Error::invalid_value(de::Unexpected::Str(self.text), visitor))
    }
}

impl<'de> Deserializer<'de> for Text<'_> {
    type Error = Problem;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        visitor.visit_str(self.text)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        match self.text {
            "true" | "1" | "yes" => visitor.visit_bool(true),
            "false" | "0" | "no" => visitor.visit_bool(false),
            other => Err(de::Error::invalid_value(
                de::Unexpected::Str(other),
                &"true or false",
            )),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        let n = self.parse(&visitor)?;
        visitor.visit_u64(n)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        let n = self.parse(&visitor)?;
        visitor.visit_i64(n)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        self.deserialize_i64(visitor)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        self.deserialize_i64(visitor)
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        self.deserialize_i64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        let x = self.parse(&visitor)?;
        visitor.visit_f64(x)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Problem> {
        let sep = Sep::from_marker(name).unwrap_or(self.sep);
        visitor.visit_newtype_struct(Text {
            text: self.text,
            sep,
        })
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        let items = self.sep.split(self.text);
        visitor.visit_seq(Items(items.into_iter().map(|text| Text {
            text,
            sep: Sep::Comma,
        })))
    }

    forward_to_deserialize_any! {
        i128 u128 char str string bytes byte_buf unit unit_struct tuple tuple_struct map
        struct enum identifier ignored_any
    }
}

/// The names of a struct's fields, in order, as its `Deserialize` implementation asks
/// for them: the one list of keys is the raw struct itself.
pub fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Grab<'g>(&'g mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Grab<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("only the field names were wanted"))
        }
        forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
            enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Grab(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::values::{Argv, Count, Dur, List, Name, Windows};
    use std::time::Duration;

    fn text(key: &str, value: &str, source: Source) -> Setting {
        Setting {
            key: key.to_owned(),
            value: if value.is_empty() {
                Given::Reset
            } else {
                Given::Text(value.to_owned())
            },
            origin: Origin { source, line: None },
        }
    }

    fn toml_setting(key: &str, value: toml::Value) -> Setting {
        Setting {
            key: key.to_owned(),
            value: Given::Toml(value),
            origin: Origin {
                source: Source::File("/c.toml".into()),
                line: Some(3),
            },
        }
    }

    #[test]
    fn the_highest_layer_wins_each_key_on_its_own() {
        let flags = vec![text("repo", "o/flag", Source::Flag)];
        let env = vec![
            text("repo", "o/env", Source::Env("HEPH_SELFUPDATE_REPO".into())),
            text(
                "binary",
                "b-env",
                Source::Env("HEPH_SELFUPDATE_BINARY".into()),
            ),
        ];
        let file = vec![
            toml_setting("binary", "b-file".into()),
            toml_setting("keep_versions", 4.into()),
        ];
        let layers = [flags, env, file];
        let winners = merge(&layers);
        assert_eq!(winners["repo"].origin.source, Source::Flag);
        assert_eq!(
            winners["binary"].origin.source,
            Source::Env("HEPH_SELFUPDATE_BINARY".into())
        );
        assert!(matches!(
            winners["keep_versions"].origin.source,
            Source::File(_)
        ));
        let raw = read(&winners.values().copied().collect::<Vec<_>>()).unwrap();
        assert_eq!(raw.repo.unwrap().0, "o/flag");
        assert_eq!(raw.binary, Some(Name("b-env".into())));
        assert_eq!(raw.keep_versions, Some(Count(4)));
    }

    #[test]
    fn an_empty_text_value_resets_a_lower_layer() {
        let layers = [
            vec![text("pin", "", Source::Flag)],
            vec![toml_setting("pin", "1.2.3".into())],
        ];
        let winners = merge(&layers);
        let raw = read(&winners.values().copied().collect::<Vec<_>>()).unwrap();
        assert!(raw.pin.is_none());
    }

    #[test]
    fn text_is_parsed_into_the_type_of_its_key() {
        let settings = [
            text("packages", " heph, hephd ,", Source::Flag),
            text("health_command", "heph  status --json", Source::Flag),
            text(
                "restart_window",
                "Mon..Fri 02:00-05:00; Sat,Sun 10:00",
                Source::Flag,
            ),
            text("keep_versions", "3", Source::Flag),
            text("verify_tag", "yes", Source::Flag),
            text("http_timeout", "90", Source::Flag),
            text("rollout_wave", "0.25", Source::Flag),
        ];
        let raw = read(&settings.iter().collect::<Vec<_>>()).unwrap();
        assert_eq!(
            raw.packages,
            Some(List(vec![Name("heph".into()), Name("hephd".into())]))
        );
        assert_eq!(
            raw.health_command,
            Some(Argv(vec!["heph".into(), "status".into(), "--json".into()]))
        );
        assert_eq!(
            raw.restart_window,
            Some(Windows(vec![
                "Mon..Fri 02:00-05:00".into(),
                "Sat,Sun 10:00".into()
            ]))
        );
        assert_eq!(raw.keep_versions, Some(Count(3)));
        assert_eq!(raw.verify_tag, Some(true));
        assert_eq!(raw.http_timeout, Some(Dur(Duration::from_secs(90))));
        assert_eq!(raw.rollout_wave.map(|w| w.0), Some(0.25));
    }

    #[test]
    fn a_file_value_of_the_wrong_type_names_key_place_and_type() {
        for (key, value, expected) in [
            ("keep_versions", toml::Value::from("3"), "a whole number"),
            ("packages", toml::Value::from("hephd"), "a list of strings"),
            ("verify_tag", toml::Value::from("yes"), "a boolean"),
            ("rollout_wave", toml::Value::from("0.5"), "a number from 0"),
            (
                "health_command",
                toml::Value::from("heph status"),
                "a list of strings",
            ),
            (
                "forge",
                toml::Value::from(3),
                "one of forgejo, gitea, github, gitlab",
            ),
            ("pin", toml::Value::from(true), "a version"),
        ] {
            let setting = toml_setting(key, value);
            let err = read(&[&setting]).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("`{key}` (file /c.toml, line 3) must be"))
                    && err.contains(expected),
                "{err}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_found_by_the_raw_struct() {
        let setting = toml_setting("chanel", "stable".into());
        let err = read(&[&setting]).unwrap_err();
        assert!(err.unknown_key);
        assert_eq!(err.at.unwrap().0, "chanel");
    }

    #[test]
    fn field_names_come_from_the_raw_struct_in_order() {
        let keys = field_names::<RawConfig>();
        assert_eq!(keys.first(), Some(&"forge"));
        assert!(keys.contains(&"restart_window") && keys.contains(&"ca_file"));
        let mut sorted = keys.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), keys.len());
    }
}
