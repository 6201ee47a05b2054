//! `type`-tagged config blocks (a source, a sink) whose errors keep their
//! position.
//!
//! serde's internally tagged enums (`#[serde(tag = "type")]`) buffer the
//! whole block before reading it, so an error inside it (an unknown
//! `decoder`, a bad duration, an unknown key) lost its line and key path and
//! was reported at the block's first line as `sources: ...`. Here a block is
//! read as a map. When `type` is its first key (as in every example), the
//! rest of the map is handed unbuffered to the enum's derived, externally
//! tagged `Deserialize` (`#[serde(remote = "Self")]`), so the YAML
//! deserializer reports each error at its own value and key path
//! (`sources[0].decoder`). A block whose `type` comes later is buffered
//! first, as serde does: the same errors, placed at the block.
//!
//! Contract: [`deserialize`] accepts exactly the maps that
//! `#[serde(tag = "type")]` accepts for an enum of unit, newtype (of a
//! struct) and struct variants, less any other key of a unit variant and
//! any block that fails [`Tagged::check`]; that error is placed at the
//! block (`sources[1]`, its first line).

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, MapDeserializer};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, VariantAccess,
    Visitor,
};

/// An enum written as a map with a `type` key.
pub(crate) trait Tagged: Sized {
    /// What one block is, for messages (`a source`).
    const WHAT: &'static str;
    /// The accepted values of `type`, as the derived enum spells them.
    const TYPES: &'static [&'static str];
    /// The enum's derived, externally tagged deserializer.
    fn derived<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
    /// Checks serde cannot make; run while the block is read, so that an
    /// error is placed at the block (`sources[1]`, its line).
    fn check(&self) -> Result<(), String>;
}

/// Reads a `type`-tagged block (see the module docs).
pub(crate) fn deserialize<'de, T: Tagged, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    deserializer.deserialize_map(BlockVisitor(PhantomData))
}

struct BlockVisitor<T>(PhantomData<T>);

impl<'de, T: Tagged> Visitor<'de> for BlockVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: a map with a `type` key", T::WHAT)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Err(de::Error::missing_field("type"));
        };
        let block = if first == "type" {
            let tag = map.next_value_seed(TypeSeed(T::TYPES))?;
            T::derived(Body {
                tag,
                body: MapAccessDeserializer::new(map),
            })?
        } else {
            buffered(first, map)?
        };
        block.check().map_err(de::Error::custom)?;
        Ok(block)
    }
}

/// A block whose `type` is not its first key: buffered, then read.
fn buffered<'de, T: Tagged, A: MapAccess<'de>>(first: String, mut map: A) -> Result<T, A::Error> {
    let mut rest = vec![(
        serde_yaml_ng::Value::String(first),
        map.next_value::<serde_yaml_ng::Value>()?,
    )];
    while let Some(key) = map.next_key::<serde_yaml_ng::Value>()? {
        rest.push((key, map.next_value()?));
    }
    let Some(index) = rest
        .iter()
        .position(|(key, _)| key.as_str() == Some("type"))
    else {
        return Err(de::Error::missing_field("type"));
    };
    let (_, tag) = rest.remove(index);
    let tag = TypeSeed(T::TYPES)
        .deserialize(tag)
        .map_err(de::Error::custom)?;
    T::derived(Body {
        tag,
        body: MapDeserializer::<_, serde_yaml_ng::Error>::new(rest.into_iter()),
    })
    .map_err(de::Error::custom)
}

/// The `type` value, checked where it is written.
struct TypeSeed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for TypeSeed {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for TypeSeed {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "one of {}", self.0.join(", "))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<String, E> {
        if self.0.contains(&text) {
            Ok(text.to_string())
        } else {
            Err(E::unknown_variant(text, self.0))
        }
    }
}

/// The block without its `type`, shown to the derived deserializer as the
/// externally tagged enum `{tag: body}`.
struct Body<B> {
    tag: String,
    body: B,
}

impl<'de, B: Deserializer<'de>> Deserializer<'de> for Body<B> {
    type Error = B::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, B::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de, B: Deserializer<'de>> EnumAccess<'de> for Body<B> {
    type Error = B::Error;
    type Variant = VariantBody<B>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, VariantBody<B>), B::Error> {
        let variant = seed.deserialize(self.tag.into_deserializer())?;
        Ok((variant, VariantBody(self.body)))
    }
}

struct VariantBody<B>(B);

impl<'de, B: Deserializer<'de>> VariantAccess<'de> for VariantBody<B> {
    type Error = B::Error;

    fn unit_variant(self) -> Result<(), B::Error> {
        self.0.deserialize_map(NoFields)
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, B::Error> {
        seed.deserialize(self.0)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        _len: usize,
        _visitor: V,
    ) -> Result<V::Value, B::Error> {
        Err(de::Error::custom(
            "a tuple variant cannot be written as a tagged block",
        ))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, B::Error> {
        self.0.deserialize_map(visitor)
    }
}

/// The rest of a unit variant's block: any key is unknown.
struct NoFields;

impl<'de> Visitor<'de> for NoFields {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no key other than `type`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        match map.next_key_seed(NoFields)? {
            Some(()) => Err(de::Error::custom("unreachable: every key is refused")),
            None => Ok(()),
        }
    }
}

impl<'de> DeserializeSeed<'de> for NoFields {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(UnknownKey)
    }
}

/// A key of a unit variant's block, refused where it is written.
struct UnknownKey;

impl Visitor<'_> for UnknownKey {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no key other than `type`")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<(), E> {
        Err(E::unknown_field(key, &["type"]))
    }
}
