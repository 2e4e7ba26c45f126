//! The client's address, for the sign-in limits and the code throttle: one resolver for
//! every limiter. By `auth.client_ip_source`: the TCP peer, or a header our proxy writes,
//! read by the `client-ip` crate. Never the leftmost `X-Forwarded-For` hop, which the client
//! writes itself. docs/CONFIGURATION.md, "Behind a proxy".

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, StatusCode};
use domain::settings::ClientIpSource;

use crate::AppState;
use crate::error::ApiError;

/// The client's address, as [`resolve`] reads it. A request without it (a header source
/// with the header missing or malformed: it did not come through the proxy) is refused
/// with 400 `client_address_unknown`.
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        resolve(state.auth.settings.client_ip_source, &parts.headers, &parts.extensions)
            .map(Self)
            .ok_or_else(unknown)
    }
}

/// The client's address by `source`, or `None` when it cannot be read.
pub fn resolve(source: ClientIpSource, headers: &HeaderMap, extensions: &Extensions) -> Option<IpAddr> {
    match source {
        ClientIpSource::Peer => extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip()),
        ClientIpSource::RightmostXForwardedFor => client_ip::rightmost_x_forwarded_for(headers).ok(),
        ClientIpSource::XRealIp => client_ip::x_real_ip(headers).ok(),
        ClientIpSource::CfConnectingIp => client_ip::cf_connecting_ip(headers).ok(),
    }
}

/// The answer when [`resolve`] finds no address.
pub fn unknown() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "client_address_unknown",
        "the client address could not be read (the request did not come through the configured proxy)",
    )
}

/// The same address as the key of the sign-in rate limit.
#[derive(Clone, Copy)]
pub struct ClientKey(pub ClientIpSource);

impl tower_governor::key_extractor::KeyExtractor for ClientKey {
    type Key = IpAddr;

    fn extract<T>(&self, request: &axum::http::Request<T>) -> Result<IpAddr, tower_governor::GovernorError> {
        resolve(self.0, request.headers(), request.extensions())
            .ok_or(tower_governor::GovernorError::UnableToExtractKey)
    }
}
