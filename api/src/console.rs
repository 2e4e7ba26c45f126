//! The web console (`console/src/`, docs/CONSOLE.md), served from the internal listener at
//! `/console/`. Its files are compiled into the binary, so operators need nothing beside
//! `bestie`; a debug build reads them from disk instead, so an edit shows on reload.
//!
//! Each file is sent with a strict Content-Security-Policy (only this origin's scripts,
//! styles and API), an `ETag` of its contents and `Cache-Control: no-cache`: a browser asks
//! again each time and gets `304` until the binary changes.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::error::ApiError;

#[derive(rust_embed::Embed)]
#[folder = "../console/src/"]
struct Files;

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The paths the console is served at: pages and files for a browser, not API routes, so
/// no OpenAPI document lists them (`tests/e2e/openapi.rs` knows them from here).
pub const PATHS: [&str; 4] = ["/", "/console", "/console/", "/console/{*path}"];

/// `/console/...` and a redirect from `/` and `/console` to it.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(PATHS[0], get(|| async { Redirect::to(PATHS[2]) }))
        .route(PATHS[1], get(|| async { Redirect::to(PATHS[2]) }))
        .route(PATHS[2], get(|headers: HeaderMap| async move { file("index.html", &headers) }))
        .route(
            PATHS[3],
            get(|Path(path): Path<String>, headers: HeaderMap| async move { file(&path, &headers) }),
        )
}

fn file(path: &str, request: &HeaderMap) -> Response {
    let Some(file) = Files::get(path) else {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such console file").into_response();
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..12]));
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    let unchanged = request.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes());
    if unchanged {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, file.data.into_owned()).into_response()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        // The API types the console is checked against (`api-types.d.ts`).
        Some("ts") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::{Files, content_type};

    #[test]
    fn every_console_file_has_a_known_type() {
        let names: Vec<_> = Files::iter().collect();
        assert!(names.iter().any(|name| name == "index.html"), "{names:?}");
        for name in names {
            assert_ne!(content_type(&name), "application/octet-stream", "{name}");
        }
    }
}
