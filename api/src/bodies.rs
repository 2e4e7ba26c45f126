//! Every JSON request body the api accepts, by the name of its type (the name the OpenAPI
//! documents give its schema), decoded exactly as its handler's extractor decodes it (body
//! limit included), without a database: the entry of the `request_bodies` fuzz
//! target (`fuzz/`), and the list the hostile-input tests hold against the documents.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, header};

use crate::error::ApiError;
use crate::extract::{ApiJson, OptionalJson};
use crate::routes::{
    accounts, auth, chat, config, devices, extensions, failures, operations, operators, pairing, payments,
    presence,
};

/// Declares [`REQUEST_BODIES`] and [`decode_request_body`] from one list of
/// `extractor<body type>`, so the two cannot drift apart.
macro_rules! request_bodies {
    ($($extractor:ident<$module:ident::$body:ident>),* $(,)?) => {
        /// The schema name of every request body, as the OpenAPI documents name it.
        pub const REQUEST_BODIES: &[&str] = &[$(stringify!($body)),*];

        /// Decodes `body`, sent with `content_type`, as the handlers taking the body named
        /// `name` (one of [`REQUEST_BODIES`]) decode it: `Ok` when a handler would run with
        /// it, else the error the client gets. `None` for a name that is not a body.
        ///
        /// A `content_type` that cannot be a header value is left out, as no client can
        /// send it.
        pub async fn decode_request_body(
            name: &str,
            content_type: Option<&str>,
            body: Vec<u8>,
        ) -> Option<Result<(), ApiError>> {
            let mut request = Request::new(Body::from(body));
            if let Some(value) = content_type.and_then(|value| HeaderValue::from_str(value).ok()) {
                request.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            match name {
                $(stringify!($body) => Some(decode::<$extractor<$module::$body>>(request).await),)*
                _ => None,
            }
        }
    };
}

request_bodies! {
    ApiJson<accounts::CreateMitra>,
    ApiJson<auth::OtpRequest>,
    ApiJson<auth::OtpVerify>,
    ApiJson<auth::PasswordLogin>,
    ApiJson<auth::RefreshRequest>,
    OptionalJson<auth::LogoutRequest>,
    ApiJson<chat::NewMessage>,
    ApiJson<chat::Receipts>,
    ApiJson<chat::EndEarly>,
    ApiJson<chat::ClosingMessage>,
    ApiJson<extensions::ExtensionAsk>,
    ApiJson<config::NewValue>,
    ApiJson<devices::DeviceRegistration>,
    ApiJson<devices::DeviceToken>,
    ApiJson<failures::Action>,
    ApiJson<operations::NewPassword>,
    ApiJson<operators::CreateOperator>,
    ApiJson<operators::PasswordChange>,
    ApiJson<pairing::PaymentRef>,
    ApiJson<pairing::Returning>,
    ApiJson<payments::CreatePayment>,
    ApiJson<presence::StatusChange>,
}

/// Runs the extractor `E` on `request`, body limit included (the extractors apply it).
async fn decode<E: FromRequest<(), Rejection = ApiError>>(request: Request) -> Result<(), ApiError> {
    E::from_request(request, &()).await.map(drop)
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    async fn decoded(
        name: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(), (StatusCode, String)> {
        let result = decode_request_body(name, content_type, body.to_vec()).await.expect("a body name");
        result.map_err(|error| (error.status, error.code.to_owned()))
    }

    #[tokio::test]
    async fn a_body_decodes_as_its_extractor_decodes_it() {
        let json = Some("application/json");
        assert_eq!(decoded("OtpRequest", json, br#"{"phone":"+6281234567890"}"#).await, Ok(()));
        let invalid = Err((StatusCode::BAD_REQUEST, "invalid_json".to_owned()));
        assert_eq!(decoded("OtpRequest", json, br#"{"phone":1}"#).await, invalid);
        assert_eq!(decoded("OtpRequest", json, br#"{"phone":"1","x":1}"#).await, invalid);
        assert_eq!(decoded("OtpRequest", json, b"{").await, invalid);
        // serde reads a struct from an array of its fields in order; a body is an object.
        assert_eq!(decoded("OtpRequest", json, br#"["+6281234567890"]"#).await, invalid);
        let unsupported = Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type".to_owned()));
        assert_eq!(decoded("OtpRequest", Some("text/plain"), br#"{"phone":"1"}"#).await, unsupported);
        assert_eq!(decoded("OtpRequest", None, br#"{"phone":"1"}"#).await, unsupported);
        let huge = format!(r#"{{"phone":"{}"}}"#, "1".repeat(crate::MAX_BODY_BYTES));
        let too_large = Err((StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large".to_owned()));
        assert_eq!(decoded("OtpRequest", json, huge.as_bytes()).await, too_large);
    }

    #[tokio::test]
    async fn an_optional_body_may_be_empty_and_needs_no_content_type() {
        assert_eq!(decoded("LogoutRequest", None, b"").await, Ok(()));
        assert_eq!(decoded("LogoutRequest", None, br#"{"refresh_token":"r"}"#).await, Ok(()));
        let invalid = Err((StatusCode::BAD_REQUEST, "invalid_json".to_owned()));
        assert_eq!(decoded("LogoutRequest", None, b"[").await, invalid);
        assert_eq!(decoded("LogoutRequest", None, br#"["r"]"#).await, invalid);
    }

    #[tokio::test]
    async fn a_name_that_is_no_body_is_none() {
        assert!(decode_request_body("Nothing", None, Vec::new()).await.is_none());
        assert_eq!(REQUEST_BODIES.len(), 22);
    }
}
