//! Sign-in, refresh and logout, for the apps (public listener) and the control center
//! (internal listener).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::auth::session::{self, Session};
use domain::auth::{Role, otp};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::caller::{AppUser, Operator};
use crate::client_addr::ClientAddr;
use crate::error::ApiError;
use crate::extract::{ApiJson, OptionalJson};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtpRequest {
    phone: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtpVerify {
    phone: String,
    code: String,
    call_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordLogin {
    email: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    refresh_token: Option<String>,
}

/// The token part every sign-in and refresh answers with; `who` adds the account.
fn session_body(session: Session, who: Option<(&str, Value)>) -> Json<Value> {
    let mut body = json!({
        "access_token": session.access_token,
        "refresh_token": session.refresh_token,
        "token_type": "Bearer",
        "expires_in_s": session.expires_in_s,
    });
    if let (Some((field, account)), Some(object)) = (who, body.as_object_mut()) {
        object.insert(field.to_owned(), account);
    }
    Json(body)
}

/// # `POST /api/auth/customer/otp`
pub async fn request_otp(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<OtpRequest>,
) -> Result<Response, ApiError> {
    let auth = &state.auth;
    let sent = otp::request_code(
        &state.store,
        auth.otp_sender.as_ref(),
        &auth.settings,
        &body.phone,
        &addr.to_string(),
    )
    .await?;
    let mut answer = json!({ "expires_in_s": sent.expires_in_s });
    if let (Some(code), Some(object)) = (sent.dev_code, answer.as_object_mut()) {
        object.insert("dev_code".into(), json!(code));
    }
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// # `POST /api/auth/customer/verify`
pub async fn verify_otp(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<OtpVerify>,
) -> Result<Json<Value>, ApiError> {
    let auth = &state.auth;
    let (session, customer) = otp::verify_code(
        &state.store,
        &auth.keys,
        &auth.settings,
        &body.phone,
        &body.code,
        body.call_name.as_deref(),
    )
    .await?;
    Ok(session_body(session, Some(("user", json!({"id": customer.id, "call_name": customer.call_name})))))
}

/// # `POST /api/auth/mitra/login`
pub async fn mitra_login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PasswordLogin>,
) -> Result<Json<Value>, ApiError> {
    let auth = &state.auth;
    let (session, mitra) = session::password_login(
        &state.store,
        &auth.keys,
        &auth.settings,
        Role::Mitra,
        &body.email,
        &body.password,
    )
    .await?;
    Ok(session_body(session, Some(("mitra", json!({"id": mitra.id, "display_name": mitra.display_name})))))
}

/// # `POST /internal/auth/login`
pub async fn operator_login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PasswordLogin>,
) -> Result<Json<Value>, ApiError> {
    let auth = &state.auth;
    let (session, user) = session::password_login(
        &state.store,
        &auth.keys,
        &auth.settings,
        Role::Cc,
        &body.email,
        &body.password,
    )
    .await?;
    let account =
        json!({"id": user.id, "email": user.email, "display_name": user.display_name, "role": user.role});
    Ok(session_body(session, Some(("user", account))))
}

/// # `POST /api/auth/refresh`
pub async fn app_refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<Value>, ApiError> {
    refresh(&state, &body.refresh_token, &[Role::Customer, Role::Mitra]).await
}

/// # `POST /internal/auth/refresh`
pub async fn operator_refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<Value>, ApiError> {
    refresh(&state, &body.refresh_token, &[Role::Cc]).await
}

async fn refresh(state: &AppState, token: &str, allowed: &[Role]) -> Result<Json<Value>, ApiError> {
    let auth = &state.auth;
    let session = session::refresh(&state.store, &auth.keys, &auth.settings, token, allowed).await?;
    Ok(session_body(session, None))
}

/// # `POST /api/auth/logout`
pub async fn app_logout(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    OptionalJson(body): OptionalJson<LogoutRequest>,
) -> Result<StatusCode, ApiError> {
    let refresh_token = body.and_then(|b| b.refresh_token);
    session::logout(&state.store, &caller, refresh_token.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// # `POST /internal/auth/logout`
pub async fn operator_logout(
    State(state): State<AppState>,
    Operator(caller): Operator,
    OptionalJson(body): OptionalJson<LogoutRequest>,
) -> Result<StatusCode, ApiError> {
    let refresh_token = body.and_then(|b| b.refresh_token);
    session::logout(&state.store, &caller, refresh_token.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
