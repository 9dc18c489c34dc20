//! Closed sets of codes that come from outside (a processor, a card network) and grow over
//! time: each is an enum with an `Other(String)` escape, written and read as its string.

/// Declares such an enum: `parse`, `as_str`, `Display`, and serde as the string.
macro_rules! string_codes {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A code Flint does not know.
            Other(String),
        }

        impl $name {
            /// Every code Flint knows (not `Other`).
            pub const KNOWN: &'static [$name] = &[$($name::$variant,)*];

            pub fn parse(text: &str) -> $name {
                match text {
                    $($text => $name::$variant,)*
                    other => $name::Other(other.to_owned()),
                }
            }

            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(text) => text,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                Ok($name::parse(&<String as serde::Deserialize>::deserialize(deserializer)?))
            }
        }
    };
}

pub(crate) use string_codes;
