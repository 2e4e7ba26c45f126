//! Who is calling: extractors that verify the access token and the caller's role before a
//! handler runs. A handler states its caller in its signature (`Customer`, `Mitra`,
//! `AppUser` = customer or mitra, `Operator` = control center), so no route can forget to
//! check. The public listener has no `Operator` routes and the internal one only those, so
//! the public listener never accepts a cc token and the internal one accepts nothing else.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use domain::auth::{AuthError, Principal, Role};
use domain::budget::OverBudget;

use crate::AppState;
use crate::error::ApiError;

/// A customer.
pub struct Customer(pub Principal);
/// A mitra.
pub struct Mitra(pub Principal);
/// A customer or a mitra: the app routes shared by both.
pub struct AppUser(pub Principal);
/// A control-center operator (either role).
pub struct Operator(pub Principal);
/// A control-center account with the `admin` role now (read from Postgres on each request).
pub struct Admin(pub Principal);

/// The bearer token of `Authorization`, if any.
pub fn bearer_token(parts: &Parts) -> Result<Option<&str>, AuthError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AuthError::InvalidToken)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(AuthError::InvalidToken),
    }
}

async fn authenticate(parts: &Parts, state: &AppState, allowed: &[Role]) -> Result<Principal, ApiError> {
    let token = bearer_token(parts)?.ok_or(AuthError::MissingToken)?;
    let principal = domain::auth::session::authenticate(&state.store, &state.auth.keys, token).await?;
    if !allowed.contains(&principal.role) {
        return Err(AuthError::WrongRole(principal.role).into());
    }
    // An app's writes spend its user's budget (shared with the socket's commands); reads
    // and operators do not. Their documents list it as `Guard::WriteBudget`.
    if principal.role != Role::Cc && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        state.services.budget.spend(principal.id).map_err(over_budget)?;
    }
    Ok(principal)
}

fn over_budget(over: OverBudget) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many requests from this account; slow down",
    )
    .with("retry_after_s", over.retry_after_s)
}

macro_rules! caller {
    ($name:ident, $($role:expr),+) => {
        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
                authenticate(parts, state, &[$($role),+]).await.map(Self)
            }
        }
    };
}

caller!(Customer, Role::Customer);
caller!(Mitra, Role::Mitra);
caller!(AppUser, Role::Customer, Role::Mitra);
caller!(Operator, Role::Cc);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let principal = authenticate(parts, state, &[Role::Cc]).await?;
        domain::accounts::require_admin(&state.store, &principal).await?;
        Ok(Self(principal))
    }
}
