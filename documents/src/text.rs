//! How the documents read their values: counts, durations, property values and cloud settings
//! as people write them in YAML or JSON, each with an error that says what to write instead.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serializer};

/// The largest count Glance stores (min_disk, min_ram are 32-bit signed integers).
const COUNT_HINT: &str = "a whole number from 0 to 2147483647";

/// An optional whole number that may not be negative (`min_disk_gb`, `min_ram_mb`); the
/// component checks Glance's upper limit.
pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct Count;
    impl Visitor<'_> for Count {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(COUNT_HINT)
        }
        fn visit_u64<E>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom(format!("{v} is negative; give {COUNT_HINT}")))
        }
        fn visit_u128<E: de::Error>(self, v: u128) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom(format!("{v} is too large; give {COUNT_HINT}")))
        }
        fn visit_i128<E: de::Error>(self, v: i128) -> Result<u64, E> {
            Err(E::custom(format!("{v} is out of range; give {COUNT_HINT}")))
        }
    }
    optional(d, Count)
}

/// An optional duration in whole seconds, written as seconds or as text such as `90s`,
/// `30m`, `2h`, `1h30m`.
pub fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct Seconds;
    impl Visitor<'_> for Seconds {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration such as 90s, 30m, 2h or 1h30m, or whole seconds")
        }
        fn visit_u64<E>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v)
                .map_err(|_| E::custom(format!("{v} is negative; write e.g. 90s, 30m, 2h or 1h30m")))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            parse_duration(v).map_err(E::custom)
        }
    }
    optional(d, Seconds)
}

/// `90s`, `30m`, `2h`, `1d`, `1h30m` or bare seconds, as whole seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let invalid = || format!("'{text}' is not a duration; write e.g. 90s, 30m, 2h or 1h30m");
    let too_long = || format!("'{text}' is far too long; give at most a week (7d)");
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(invalid()),
        };
        if number.is_empty() {
            return Err(invalid());
        }
        // Only digits are collected, so a failed parse is an overflow.
        let n: u64 = number.parse().map_err(|_| too_long())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(too_long)?;
        number.clear();
    }
    if !number.is_empty() {
        total = number
            .parse::<u64>()
            .ok()
            .and_then(|n| total.checked_add(n))
            .ok_or_else(too_long)?;
    }
    if text.trim().is_empty() {
        Err(invalid())
    } else {
        Ok(total)
    }
}

/// Key/value properties: values may be text, numbers or booleans (Glance stores strings, so
/// they are kept as text); `null` is no properties. A wrong value is named by its key.
pub fn properties<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = Option::<BTreeMap<String, Property>>::deserialize(d)?.unwrap_or_default();
    Ok(raw.into_iter().map(|(key, Property(text))| (key, text)).collect())
}

/// One property value as text.
struct Property(String);

impl<'de> Deserialize<'de> for Property {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Value;
        impl Visitor<'_> for Value {
            type Value = Property;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("text, a number or true/false (property values are strings)")
            }
            fn visit_str<E>(self, v: &str) -> Result<Property, E> {
                Ok(Property(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Property, E> {
                Ok(Property(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Property, E> {
                Ok(Property(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Property, E> {
                Ok(Property(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Property, E> {
                Ok(Property(v.to_string()))
            }
        }
        d.deserialize_any(Value)
    }
}

/// An optional u64 written as a decimal string (exact in engines that keep numbers as
/// doubles), read from a string or a number.
pub mod decimal {
    use super::*;

    /// Writes `Some(n)` as `"n"`.
    pub fn serialize<S: Serializer>(value: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_str(&v.to_string()),
            None => s.serialize_none(),
        }
    }

    /// Reads `"n"` or `n`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        struct Decimal;
        impl Visitor<'_> for Decimal {
            type Value = u64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a whole number of nanoseconds")
            }
            fn visit_u64<E>(self, v: u64) -> Result<u64, E> {
                Ok(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
                v.parse()
                    .map_err(|_| E::custom(format!("'{v}' is not a whole number of nanoseconds")))
            }
        }
        optional(d, Decimal)
    }
}

/// An optional setting that is text; numbers and booleans are taken as written.
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Text;
    impl Visitor<'_> for Text {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("text")
        }
        fn visit_str<E>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    optional(d, Text)
}

/// An optional yes/no setting: `true` or `false`.
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    struct Flag;
    impl Visitor<'_> for Flag {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("true or false")
        }
        fn visit_bool<E>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
    }
    optional(d, Flag)
}

/// A value whose `null` (or YAML's empty value) means its default.
pub fn or_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `null` as `None`, anything else through `visitor`.
fn optional<'de, D: Deserializer<'de>, V: Visitor<'de>>(
    d: D,
    visitor: V,
) -> Result<Option<V::Value>, D::Error> {
    struct Optional<V>(V);
    impl<'de, V: Visitor<'de>> Visitor<'de> for Optional<V> {
        type Value = Option<V::Value>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            self.0.expecting(f)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self.0).map(Some)
        }
    }
    d.deserialize_option(Optional(visitor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("45"), Ok(45));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-5m").unwrap_err().contains("not a duration"));
        assert!(
            parse_duration("99999999999999999999h")
                .unwrap_err()
                .contains("far too long")
        );
        assert!(
            parse_duration("9999999999999999h")
                .unwrap_err()
                .contains("far too long")
        );
    }
}
