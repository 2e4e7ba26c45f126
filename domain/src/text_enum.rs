//! [`text_enum!`]: a closed set of names that is stored in a TEXT column, sent on the wire
//! and used as a metric label, with one spelling of each name. The enum it declares
//! serializes (serde) and binds/decodes (sqlx, Postgres TEXT) as that name, parses from it
//! (`FromStr`: an unknown name is an [`UnknownName`] error, never a default), and lists every
//! value in `ALL`, so a table of them (a metric's label set, a documented list) is made from
//! the enum rather than written out again.

/// A name that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a {kind}")]
pub struct UnknownName {
    pub kind: &'static str,
    pub name: String,
}

/// Declares an enum of names:
///
/// ```ignore
/// text_enum! {
///     /// Why a search failed.
///     pub enum FailureCause {
///         NoMitraAvailable = "no_mitra_available",
///         CustomerCancelled = "customer_cancelled",
///     }
/// }
/// ```
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $text:tt, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, utoipa::ToSchema,
        )]
        $vis enum $name {
            $( $(#[$variant_meta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[ $( Self::$variant, )+ ];

            /// The name stored, sent and used as a label.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::text_enum::UnknownName;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $( $text => Ok(Self::$variant), )+
                    _ => Err($crate::text_enum::UnknownName { kind: stringify!($name), name: text.to_owned() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<'_, sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $name {
            fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<'r, sqlx::Postgres>>::decode(value)?;
                Ok(text.parse::<Self>()?)
            }
        }

        impl sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::postgres::PgHasArrayType>::array_type_info()
            }

            fn array_compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::postgres::PgHasArrayType>::array_compatible(ty)
            }
        }
    };
}

pub(crate) use text_enum;

#[cfg(test)]
mod tests {
    text_enum! {
        enum Sample {
            One = "one",
            TwoWords = "two_words",
        }
    }

    #[test]
    fn names_round_trip_through_every_form() {
        for value in Sample::ALL {
            let name = value.as_str();
            assert_eq!(name.parse::<Sample>(), Ok(*value));
            assert_eq!(serde_json::to_value(value).expect("serializes"), name);
            assert_eq!(serde_json::from_value::<Sample>(name.into()).expect("deserializes"), *value);
            assert_eq!(value.to_string(), name);
        }
        let unknown = "three".parse::<Sample>().expect_err("not a name");
        assert_eq!(unknown.to_string(), "\"three\" is not a Sample");
        assert!(serde_json::from_value::<Sample>("TwoWords".into()).is_err());
    }

    #[test]
    fn the_openapi_schema_lists_the_names_sent() {
        // utoipa reads `#[serde(rename = ...)]`; a name captured as a `literal` fragment
        // reached it wrapped and was ignored, so the schema listed `TwoWords`.
        let schema = serde_json::to_value(<Sample as utoipa::PartialSchema>::schema()).expect("schema");
        assert_eq!(schema["enum"], serde_json::json!(["one", "two_words"]));
    }
}
