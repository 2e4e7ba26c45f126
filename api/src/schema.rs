//! The machine-readable rules of request fields, for the OpenAPI documents (`schema_with` /
//! `param(schema_with)`): lengths, patterns and formats that say exactly what the domain
//! accepts, so a generated client (or schemathesis, `scripts/schema-check`) sends what the
//! server takes and is refused only for what the schema forbids.
//!
//! Lengths count characters (code points) as sent, as the domain does. "White space" is
//! Unicode's White_Space (Rust's `char::is_whitespace`, `str::trim`), and "control" the Cc
//! characters (`char::is_control`); both are spelled out as character classes, because a
//! regex engine's `\s` differs from one language to the next.

use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat,
    SchemaType, Type,
};
use utoipa::openapi::{RefOr, Schema};

/// Unicode White_Space, as a class body.
pub const WHITE: &str = r"\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// The Cc characters, as a class body.
pub const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";

fn text(min: usize, max: usize, pattern: String) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(min))
        .max_length(Some(max))
        .pattern(Some(pattern))
}

/// `builder`'s strings, or `null` (an optional field the server reads as absent).
fn or_null(builder: ObjectBuilder) -> ObjectBuilder {
    builder.schema_type(SchemaType::from_iter([Type::String, Type::Null]))
}

/// Free text: `1..=max` characters, no NUL, at least one that is not white space.
fn prose(max: usize) -> ObjectBuilder {
    text(1, max, format!("^[^\\u0000]*[^\\u0000{WHITE}][^\\u0000]*$"))
}

/// A name: `1..=max` characters, no control character, at least one that is not white space.
fn name(max: usize) -> ObjectBuilder {
    text(1, max, format!("^[^{CONTROL}]*[^{CONTROL}{WHITE}][^{CONTROL}]*$"))
}

/// A chat message's body.
pub fn message_body() -> ObjectBuilder {
    prose(4_000).description(Some("1–4,000 characters, not only white space, no NUL"))
}

/// A goodbye left while a session closes.
pub fn closing_message() -> ObjectBuilder {
    prose(1_000).description(Some("1–1,000 characters, not only white space, no NUL"))
}

/// An early end's free-text reason (white space only counts as none).
pub fn reason_text() -> ObjectBuilder {
    or_null(text(0, 1_000, "^[^\\u0000]*$".to_owned())).description(Some("at most 1,000 characters, no NUL"))
}

/// The app's id for a message.
pub fn client_msg_id() -> ObjectBuilder {
    text(1, 64, format!("^[^{CONTROL}]+$"))
        .description(Some("1–64 characters, no control character; a UUID is fine"))
}

/// A customer's call name, or `null` (keep the stored one).
pub fn call_name() -> ObjectBuilder {
    or_null(name(50)).description(Some("1–50 characters, no control character, not only white space"))
}

/// A mitra's display name.
pub fn display_name() -> ObjectBuilder {
    name(100).description(Some("1–100 characters, no control character, not only white space"))
}

/// A password of a mitra or operator.
pub fn password() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).min_length(Some(8)).max_length(Some(256))
}

/// An e-mail address as `accounts::normalize_email` takes it: white space around it is
/// dropped, and it is stored in lower case.
pub fn email() -> ObjectBuilder {
    let part = format!("[^@{WHITE}{CONTROL}]");
    let label = format!("[^@.{WHITE}{CONTROL}]");
    let pattern = format!("^[{WHITE}]*{part}+@{label}{part}*\\.{part}*{label}[{WHITE}]*$");
    text(5, 254, pattern).description(Some("`name@example.com`, at most 254 characters"))
}

/// A phone number that can receive the code. The pattern is an Indonesian mobile number
/// (the default `auth.phone_countries`) in international or local form; the server also takes
/// spaces, dashes and brackets, and the numbers of any country configured.
pub fn phone() -> ObjectBuilder {
    text(10, 15, r"^(\+62|0)8[1-35-9][0-9]{7,10}$".to_owned())
        .description(Some("a mobile number: `+6281234567890` or `081234567890`"))
}

/// The one-time code.
pub fn otp_code() -> ObjectBuilder {
    text(6, 6, "^[0-9]{6}$".to_owned()).description(Some("the 6 digits sent to the phone"))
}

/// An FCM registration token (white space around it is dropped).
pub fn fcm_token() -> ObjectBuilder {
    text(1, 4_096, format!("^[{WHITE}]*[!-~]+[{WHITE}]*$"))
        .description(Some("1–4,096 visible ASCII characters"))
}

/// Free text in a query parameter (no NUL: Postgres text cannot hold one).
pub fn query_text() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[^\\u0000]*$"))
}

/// A date (`YYYY-MM-DD`, a day in the marketplace's time zone) or an RFC 3339 time.
pub fn date_or_time() -> RefOr<Schema> {
    let format =
        |known| ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(known)));
    AnyOfBuilder::new()
        .item(format(KnownFormat::Date))
        .item(format(KnownFormat::DateTime))
        .description(Some("a date (`YYYY-MM-DD`: the day in the marketplace's time zone, `database.time_zone`) or an RFC 3339 time"))
        .into()
}

/// `POST /api/client/payment-sessions`: a chat (`purpose` `chat` or absent, no
/// `chat_session_id`, optionally a returning chat's `targeted_mitra_id`) or an extension
/// (`purpose: "extension"` with the session's `chat_session_id`, never targeted); either names
/// its tier by `tier_id` or `duration_minutes` (both must name the same tier).
pub fn payment_order() -> RefOr<Schema> {
    let nullable = |kind: Type| SchemaType::from_iter([kind, Type::Null]);
    let uuid = |kind: SchemaType| {
        ObjectBuilder::new().schema_type(kind).format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
    };
    let null = || ObjectBuilder::new().schema_type(Type::Null);
    let named_by = |field: &str, kind: Type| {
        ObjectBuilder::new().property(field, ObjectBuilder::new().schema_type(kind)).required(field)
    };
    let order = |title: &str, fields: ObjectBuilder| {
        let fields = fields
            .schema_type(Type::Object)
            .property(
                "tier_id",
                ObjectBuilder::new()
                    .schema_type(nullable(Type::String))
                    .min_length(Some(1))
                    .max_length(Some(32)),
            )
            .property(
                "duration_minutes",
                ObjectBuilder::new().schema_type(nullable(Type::Integer)).minimum(Some(1)).maximum(Some(240)),
            )
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        let tier = AnyOfBuilder::new()
            .item(named_by("tier_id", Type::String))
            .item(named_by("duration_minutes", Type::Integer));
        AllOfBuilder::new().item(fields).item(tier).title(Some(title))
    };
    let chat = ObjectBuilder::new()
        .property(
            "purpose",
            ObjectBuilder::new().schema_type(nullable(Type::String)).enum_values(Some([Some("chat"), None])),
        )
        .property("chat_session_id", null())
        .property(
            "targeted_mitra_id",
            uuid(nullable(Type::String)).description(Some(
                "a returning chat (\"Curhat lagi\") with a mitra the customer had a session with",
            )),
        );
    let extension = ObjectBuilder::new()
        .property("purpose", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["extension"])))
        .required("purpose")
        .property(
            "chat_session_id",
            uuid(SchemaType::Type(Type::String)).description(Some("the session to extend")),
        )
        .required("chat_session_id")
        .property("targeted_mitra_id", null());
    OneOfBuilder::new().item(order("chat", chat)).item(order("extension", extension)).into()
}

#[cfg(test)]
mod tests {
    use domain::auth::otp::{normalize_phone, phone_countries};

    /// Every number the phone pattern admits, `^(\+62|0)8[1-35-9][0-9]{7,10}$`, is one the
    /// server takes (libphonenumber's Indonesian mobile range), so a client that follows the
    /// schema is never refused for its number.
    #[test]
    fn every_number_the_phone_pattern_admits_is_accepted() {
        let indonesia = phone_countries(&["ID".to_owned()]).expect("ID");
        let mut checked = 0;
        for prefix in ["+62", "0"] {
            for second in ['1', '2', '3', '5', '6', '7', '8', '9'] {
                for rest in 7..=10 {
                    for fill in '0'..='9' {
                        let number = format!("{prefix}8{second}{}", fill.to_string().repeat(rest));
                        assert!(normalize_phone(&number, &indonesia).is_ok(), "{number} is refused");
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 2 * 8 * 4 * 10);
    }
}
