//! Per-client-address rate limits on the sign-in routes (tower_governor, in memory per
//! process): `auth.rate_limit_burst` requests at once, then `auth.rate_limit_per_minute`.
//! Over the limit: 429 `rate_limited` with `retry_after_s` and a `Retry-After` header.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use domain::settings::AuthSettings;
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;

use crate::client_addr::ClientKey;
use crate::error::ApiError;
use crate::openapi::Routes;

/// Wraps `routes` in the sign-in rate limit, keyed on the client's address as
/// [`crate::client_addr`] reads it. Their OpenAPI errors name it (`Guard::SignInLimit`).
pub fn sign_in_limit(routes: Routes, settings: &AuthSettings) -> Routes {
    let per_minute = u64::from(settings.rate_limit_per_minute.max(1));
    let config = GovernorConfigBuilder::default()
        .key_extractor(ClientKey(settings.client_ip_source))
        .period(Duration::from_millis(60_000 / per_minute))
        .burst_size(settings.rate_limit_burst.max(1))
        .finish();
    let Some(config) = config else {
        // Only a zero period or burst makes `finish` fail, and both are clamped above.
        return routes;
    };
    let config = Arc::new(config);
    // Drop the state of clients that went quiet, every minute, until the limiter is gone.
    let limiter = Arc::downgrade(config.limiter());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            let Some(limiter) = limiter.upgrade() else {
                return;
            };
            limiter.retain_recent();
        }
    });
    routes.layer(GovernorLayer::new(config).error_handler(too_many))
}

fn too_many(error: GovernorError) -> Response<Body> {
    match error {
        GovernorError::TooManyRequests { wait_time, .. } => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; slow down")
                .with("retry_after_s", wait_time.max(1))
                .into_response()
        }
        GovernorError::UnableToExtractKey => crate::client_addr::unknown().into_response(),
        GovernorError::Other { code, msg, .. } => {
            ApiError::new(code, "rate_limited", msg.unwrap_or_else(|| "request refused".into()))
                .into_response()
        }
    }
}
