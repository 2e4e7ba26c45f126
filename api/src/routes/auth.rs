//! Sign-in, refresh and logout, for the apps (public listener) and the control center
//! (internal listener).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::auth::session::{self, Session};
use domain::auth::{AccountRole, Role, otp};
use domain::ids::CustomerId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::caller::{AppUser, Operator};
use crate::client_addr::ClientAddr;
use crate::error::ApiError;
use crate::extract::{ApiJson, OptionalJson};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpRequest {
    /// `+62812...` or an Indonesian local number (`0812...`).
    #[schema(schema_with = crate::schema::phone)]
    phone: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpVerify {
    #[schema(schema_with = crate::schema::phone)]
    phone: String,
    /// The 6 digits sent to the phone.
    #[schema(schema_with = crate::schema::otp_code)]
    code: String,
    /// Replaces the stored call name when given (1–50 characters).
    #[schema(schema_with = crate::schema::call_name)]
    call_name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordLogin {
    email: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// Also revokes every token of this refresh token's sign-in.
    refresh_token: Option<String>,
}

/// The token pair every sign-in and refresh answers with.
#[derive(Serialize, ToSchema)]
pub struct Tokens {
    /// A JWT for `Authorization: Bearer`, valid `expires_in_s`.
    access_token: String,
    /// Spent by its one use (`/api/auth/refresh`, `/internal/auth/refresh`); a second use
    /// revokes the whole sign-in.
    refresh_token: String,
    #[schema(pattern = "^Bearer$", example = "Bearer")]
    token_type: &'static str,
    /// The access token's life, in seconds.
    #[schema(minimum = 1)]
    expires_in_s: i64,
}

impl From<Session> for Tokens {
    fn from(session: Session) -> Self {
        Self {
            access_token: session.access_token,
            refresh_token: session.refresh_token,
            token_type: "Bearer",
            expires_in_s: session.expires_in_s,
        }
    }
}

/// A code was sent.
#[derive(Serialize, ToSchema)]
pub struct OtpSent {
    /// How long the code stays valid, in seconds.
    #[schema(minimum = 1)]
    expires_in_s: u64,
    /// The code itself, only with the `dev` sender (never in production).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schema::otp_code)]
    dev_code: Option<String>,
}

/// A customer signed in.
#[derive(Serialize, ToSchema)]
pub struct CustomerSession {
    #[serde(flatten)]
    tokens: Tokens,
    user: CustomerUser,
}

#[derive(Serialize, ToSchema)]
pub struct CustomerUser {
    id: CustomerId,
    #[schema(min_length = 1, max_length = 50)]
    call_name: String,
}

/// A mitra signed in.
#[derive(Serialize, ToSchema)]
pub struct MitraSession {
    #[serde(flatten)]
    tokens: Tokens,
    mitra: MitraUser,
}

#[derive(Serialize, ToSchema)]
pub struct MitraUser {
    id: Uuid,
    display_name: String,
}

/// An operator signed in.
#[derive(Serialize, ToSchema)]
pub struct OperatorSession {
    #[serde(flatten)]
    tokens: Tokens,
    user: OperatorUser,
}

#[derive(Serialize, ToSchema)]
pub struct OperatorUser {
    id: Uuid,
    email: String,
    display_name: String,
    role: AccountRole,
}

crate::route_errors! {
    RequestOtpErrors: Anyone, [Json, SignInLimit, Store];
    400 => [invalid_phone, phone_country_not_supported];
    403 => [account_deactivated];
    429 => [otp_resend_too_soon, otp_rate_limited];
    503 => [otp_delivery_failed];
}

/// Sends a one-time code to the customer's phone.
#[utoipa::path(
    post,
    path = "/api/auth/customer/otp",
    tag = "auth",
    request_body = OtpRequest,
    responses(
        (status = 202, body = OtpSent, description = "the code was sent"),
        RequestOtpErrors,
    )
)]
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
    let answer = OtpSent { expires_in_s: sent.expires_in_s, dev_code: sent.dev_code };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

crate::route_errors! {
    VerifyOtpErrors: Anyone, [Json, SignInLimit, Store];
    400 => [invalid_phone, phone_country_not_supported, otp_malformed, invalid_call_name];
    401 => [otp_invalid, otp_incorrect, otp_locked];
    403 => [account_deactivated];
}

/// Signs the customer in with the code; creates the account on first sign-in.
#[utoipa::path(
    post,
    path = "/api/auth/customer/verify",
    tag = "auth",
    request_body = OtpVerify,
    responses(
        (status = 200, description = "signed in", body = CustomerSession),
        VerifyOtpErrors,
    )
)]
pub async fn verify_otp(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<OtpVerify>,
) -> Result<Json<CustomerSession>, ApiError> {
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
    let user = CustomerUser { id: customer.id, call_name: customer.call_name };
    Ok(Json(CustomerSession { tokens: session.into(), user }))
}

crate::route_errors! {
    PasswordLoginErrors: Anyone, [Json, SignInLimit, Store];
    401 => [invalid_credentials];
    403 => [account_deactivated];
    429 => [sign_in_locked];
}

/// Signs a mitra in with email and password.
#[utoipa::path(
    post,
    path = "/api/auth/mitra/login",
    tag = "auth",
    request_body = PasswordLogin,
    responses(
        (status = 200, description = "signed in", body = MitraSession),
        PasswordLoginErrors,
    )
)]
pub async fn mitra_login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PasswordLogin>,
) -> Result<Json<MitraSession>, ApiError> {
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
    let mitra = MitraUser { id: mitra.id, display_name: mitra.display_name };
    Ok(Json(MitraSession { tokens: session.into(), mitra }))
}

/// Signs an operator in with email and password.
#[utoipa::path(
    post,
    path = "/internal/auth/login",
    tag = "auth",
    request_body = PasswordLogin,
    responses(
        (status = 200, description = "signed in", body = OperatorSession),
        PasswordLoginErrors,
    )
)]
pub async fn operator_login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PasswordLogin>,
) -> Result<Json<OperatorSession>, ApiError> {
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
    let user =
        OperatorUser { id: user.id, email: user.email, display_name: user.display_name, role: user.role };
    Ok(Json(OperatorSession { tokens: session.into(), user }))
}

crate::route_errors! {
    RefreshErrors: Anyone, [Json, SignInLimit, Store];
    401 => [invalid_refresh_token, refresh_token_reused];
}

/// Exchanges a customer's or mitra's refresh token for a new session; the old one is spent.
#[utoipa::path(
    post,
    path = "/api/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses((status = 200, description = "a new token pair", body = Tokens), RefreshErrors)
)]
pub async fn app_refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<Tokens>, ApiError> {
    refresh(&state, &body.refresh_token, &[Role::Customer, Role::Mitra]).await
}

/// Exchanges an operator's refresh token for a new session; the old one is spent.
#[utoipa::path(
    post,
    path = "/internal/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses((status = 200, description = "a new token pair", body = Tokens), RefreshErrors)
)]
pub async fn operator_refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<Tokens>, ApiError> {
    refresh(&state, &body.refresh_token, &[Role::Cc]).await
}

async fn refresh(state: &AppState, token: &str, allowed: &[Role]) -> Result<Json<Tokens>, ApiError> {
    let auth = &state.auth;
    let session = session::refresh(&state.store, &auth.keys, &auth.settings, token, allowed).await?;
    Ok(Json(session.into()))
}

crate::route_errors! {
    AppLogoutErrors: AppUser, [OptionalJson, WriteBudget];
    404 => [refresh_token_not_found];
}

/// Revokes this access token and, when given, the sign-in of `refresh_token`.
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "auth",
    request_body(content = Option<LogoutRequest>, description = "optional: an empty body is fine"),
    security(("bearer" = ["customer", "mitra"])),
    responses((status = 204, description = "signed out"), AppLogoutErrors)
)]
pub async fn app_logout(
    State(state): State<AppState>,
    AppUser(caller): AppUser,
    OptionalJson(body): OptionalJson<LogoutRequest>,
) -> Result<StatusCode, ApiError> {
    let refresh_token = body.and_then(|b| b.refresh_token);
    session::logout(&state.store, &caller, refresh_token.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

crate::route_errors! {
    OperatorLogoutErrors: Operator, [OptionalJson];
    404 => [refresh_token_not_found];
}

/// Revokes this access token and, when given, the sign-in of `refresh_token`.
#[utoipa::path(
    post,
    path = "/internal/auth/logout",
    tag = "auth",
    request_body(content = Option<LogoutRequest>, description = "optional: an empty body is fine"),
    security(("bearer" = ["cc"])),
    responses((status = 204, description = "signed out"), OperatorLogoutErrors)
)]
pub async fn operator_logout(
    State(state): State<AppState>,
    Operator(caller): Operator,
    OptionalJson(body): OptionalJson<LogoutRequest>,
) -> Result<StatusCode, ApiError> {
    let refresh_token = body.and_then(|b| b.refresh_token);
    session::logout(&state.store, &caller, refresh_token.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
