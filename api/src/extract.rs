//! Extractors that turn bad input into [`ApiError`] bodies instead of axum's plain-text
//! rejections.

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Visitor};

use crate::MAX_BODY_BYTES;
use crate::error::ApiError;

/// `request` with its body cut off after [`MAX_BODY_BYTES`]: reading more fails as axum's own
/// limit does (413, `payload_too_large` below). The limit lives in the body extractors rather
/// than in a `DefaultBodyLimit` layer on every route, which cost every request, bodiless or
/// not, one more service and one more request extension (docs/BENCHMARKS.md, "The hot path").
fn limited(request: Request) -> Request {
    request.map(|body| Body::new(http_body_util::Limited::new(body, MAX_BODY_BYTES)))
}

/// `Json<T>` whose rejections are JSON errors: `invalid_json` (not JSON or wrong shape, an
/// array included), `unsupported_media_type` (no `application/json` content type),
/// `payload_too_large` (over [`MAX_BODY_BYTES`]).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<Object<T>>::from_request(limited(request), state).await {
            Ok(axum::Json(Object(value))) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with content-type: application/json",
        ),
        JsonRejection::JsonDataError(e) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.body_text())
        }
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.body_text())
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", other.body_text())
        }
        other => ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", other.body_text()),
    }
}

/// A body read from a JSON object only. serde also reads a struct from an array of its fields
/// in order (`["+62812..."]` for `{"phone": "+62812..."}`); every body is documented as an
/// object, and an array of values in field order is refused with `invalid_json` (found by
/// the hostile-input tests: an array reached the handlers).
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(StructsFromMaps(deserializer)).map(Self)
    }
}

/// Hands a struct's visitor a map, never a sequence; everything else passes through.
struct StructsFromMaps<D>(D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for StructsFromMaps<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// `Path<T>` whose rejections are JSON errors (`invalid_path`, e.g. an id that is not a UUID).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => {
                Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", rejection.body_text()))
            }
        }
    }
}

/// A JSON body that may be absent: an empty body or `null` is `None`, anything else must parse
/// (at most [`MAX_BODY_BYTES`]).
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(limited(request), state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", rejection.body_text())
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", rejection.body_text())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        // JSON `null` is no body too, as the OpenAPI document's optional body allows.
        serde_json::from_slice::<Option<Object<T>>>(&bytes)
            .map(|value| Self(value.map(|Object(value)| value)))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))
    }
}

/// `Query<T>` whose rejections are JSON errors (`invalid_query`: an unknown parameter, a
/// number that is not one, a NUL character: no parameter holds one, and Postgres text cannot,
/// so a search or filter with one would fail its query).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if form_urlencoded::parse(query.as_bytes())
            .any(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            let message = "a query parameter holds a NUL character";
            return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message));
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => {
                Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", rejection.body_text()))
            }
        }
    }
}

/// `#[serde(default, deserialize_with = "whole_number")]` for an optional integer field of a
/// body: JSON Schema's `integer` is any number without a fraction, so `30`, `30.0` and `3e1`
/// are the same 30 (serde alone refuses the last two). `null` or absent is `None`; a fraction
/// or a number out of the field's range is an error (`invalid_json`).
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    // Within ±2^53 every whole f64 is exact, and the range of any field here fits inside it.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    let whole = number
        .as_i64()
        .or_else(|| number.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= EXACT).map(|f| f as i64));
    whole.and_then(|n| T::try_from(n).ok()).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!("{number} is not a whole number in the field's range"))
    })
}
