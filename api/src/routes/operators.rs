//! Control-center accounts and the audit log (internal listener, admins), and an operator's
//! own password. Roles: docs/CONSOLE.md, "Roles".

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::accounts::{self, AuditPage, NewAccountFields, OperatorList, OperatorRow};
use domain::auth::AccountRole;
use domain::ids::OperatorId;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::caller::{Admin, Operator};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOperator {
    #[schema(schema_with = crate::schema::email)]
    email: String,
    /// 8–256 characters.
    #[schema(schema_with = crate::schema::password)]
    password: String,
    /// 1–100 characters.
    #[schema(schema_with = crate::schema::display_name)]
    display_name: String,
    /// `admin` or `operator`.
    #[schema(schema_with = operator_roles)]
    role: String,
}

fn operator_roles() -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some([AccountRole::Admin.as_str(), AccountRole::Operator.as_str()]))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password the operator signs in with now.
    #[schema(min_length = 1, max_length = 256)]
    current_password: String,
    /// 8–256 characters.
    #[schema(schema_with = crate::schema::password)]
    new_password: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this action.
    #[param(value_type = Option<domain::accounts::AuditAction>, inline)]
    action: Option<String>,
    /// Only what this operator did.
    operator_id: Option<Uuid>,
    /// 1–200, default 50.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// Default 0.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

crate::route_errors! { ListErrors: Admin, [] }

/// Every control-center account, admins first.
#[utoipa::path(
    get,
    path = "/internal/operators",
    tag = "operators",
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "every account", body = OperatorList), ListErrors)
)]
pub async fn list_operators(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<OperatorList>, ApiError> {
    Ok(Json(accounts::list_operators(&state.store).await?))
}

crate::route_errors! {
    CreateErrors: Admin, [Json];
    400 => [invalid_email, invalid_password, invalid_display_name, invalid_role];
    409 => [email_taken];
}

/// Creates a control-center account of either role (audited).
#[utoipa::path(
    post,
    path = "/internal/operators",
    tag = "operators",
    request_body = CreateOperator,
    security(("bearer" = ["admin"])),
    responses((status = 201, description = "the account", body = OperatorRow), CreateErrors)
)]
pub async fn create_operator(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiJson(body): ApiJson<CreateOperator>,
) -> Result<(StatusCode, Json<OperatorRow>), ApiError> {
    let role = body.role.parse().map_err(|_| domain::accounts::AccountError::InvalidRole)?;
    let new =
        NewAccountFields { email: &body.email, password: &body.password, display_name: &body.display_name };
    let operator = accounts::create_operator(&state.store, &admin, new, role).await?;
    Ok((StatusCode::CREATED, Json(operator)))
}

crate::route_errors! {
    DeactivateErrors: Admin, [Path];
    404 => [operator_not_found];
    409 => [cannot_deactivate_self];
}

/// Deactivates an account: sign-in refused, its tokens revoked at once. Not one's own.
#[utoipa::path(
    post,
    path = "/internal/operators/{id}/deactivate",
    tag = "operators",
    params(("id" = Uuid, Path, description = "the account")),
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "the account", body = OperatorRow), DeactivateErrors)
)]
pub async fn deactivate_operator(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<OperatorId>,
) -> Result<Json<OperatorRow>, ApiError> {
    Ok(Json(accounts::set_operator_active(&state.store, &state.auth.settings, &admin, id, false).await?))
}

crate::route_errors! {
    ReactivateErrors: Admin, [Path];
    404 => [operator_not_found];
}

/// Reactivates an account; it signs in again.
#[utoipa::path(
    post,
    path = "/internal/operators/{id}/reactivate",
    tag = "operators",
    params(("id" = Uuid, Path, description = "the account")),
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "the account", body = OperatorRow), ReactivateErrors)
)]
pub async fn reactivate_operator(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<OperatorId>,
) -> Result<Json<OperatorRow>, ApiError> {
    Ok(Json(accounts::set_operator_active(&state.store, &state.auth.settings, &admin, id, true).await?))
}

crate::route_errors! {
    AuditErrors: Admin, [Query];
    400 => [invalid_page];
}

/// The audit log, newest first: sign-ins and every change operators made.
#[utoipa::path(
    get,
    path = "/internal/audit",
    tag = "operators",
    params(AuditQuery),
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "a page of the log", body = AuditPage), AuditErrors)
)]
pub async fn audit_log(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let action = query.action.as_deref().map(str::parse).transpose().map_err(|_| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", "action: not an audit action")
    })?;
    let actor = query.operator_id.map(OperatorId);
    Ok(Json(accounts::audit_log(&state.store, action, actor, query.limit, query.offset).await?))
}

crate::route_errors! {
    PasswordErrors: Operator, [Json];
    400 => [invalid_password];
    403 => [wrong_password];
}

/// Changes the caller's own password. Every sign-in of the account ends, this one too:
/// sign in again with the new password.
#[utoipa::path(
    post,
    path = "/internal/auth/password",
    tag = "auth",
    operation_id = "operator_change_password",
    request_body = PasswordChange,
    security(("bearer" = ["cc"])),
    responses((status = 204, description = "the password is changed; sign in again"), PasswordErrors)
)]
pub async fn change_password(
    State(state): State<AppState>,
    Operator(operator): Operator,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let settings = &state.auth.settings;
    accounts::change_own_password(
        &state.store,
        settings,
        &operator,
        &body.current_password,
        &body.new_password,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
