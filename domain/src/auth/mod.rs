//! Identity and access: who the caller is (customer, mitra or control-center operator) and
//! the tokens that say so.
//!
//! Customers sign in with phone + one-time code (`otp`), mitras and operators with email +
//! password (`session`). Both get a short-lived access token (JWT, `tokens`) and a refresh
//! token that rotates on every use; presenting a used refresh token revokes its family.

pub mod otp;
pub mod session;
pub mod store;
pub mod tokens;

use serde_json::json;

use crate::error::{DomainError, ErrorKind};
use crate::store::StoreError;

/// What signing in and checking tokens need, built once per process.
pub struct AuthContext {
    pub keys: tokens::TokenKeys,
    pub otp_sender: Box<dyn otp::OtpSender>,
    pub settings: crate::settings::AuthSettings,
}

impl AuthContext {
    /// Fails when the settings name no usable code sender for `mode`. Code deliveries are
    /// counted in `metrics`.
    pub fn new(
        settings: &crate::settings::AuthSettings,
        mode: crate::settings::Mode,
        metrics: &crate::metrics::Metrics,
    ) -> Result<Self, String> {
        Ok(Self {
            keys: tokens::TokenKeys::new(settings),
            otp_sender: otp::sender(settings, mode, metrics)?,
            settings: settings.clone(),
        })
    }
}

crate::text_enum::text_enum! {
    /// The three kinds of caller. A token carries exactly one.
    pub enum Role {
        Customer = "customer",
        Mitra = "mitra",
        /// A control-center operator.
        Cc = "cc",
    }
}

crate::text_enum::text_enum! {
    /// What a password account is, as sign-in answers it: a mitra, or a control-center user
    /// with the role `cc_users.role` holds (`admin` or `operator`; both sign in as [`Role::Cc`]).
    pub enum AccountRole {
        Mitra = "mitra",
        Admin = "admin",
        Operator = "operator",
    }
}

/// An authenticated caller, from a verified and unrevoked access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Principal {
    pub id: crate::ids::UserId,
    pub role: Role,
    /// The access token's id, for revoking it at logout.
    pub token_id: crate::ids::TokenId,
    /// The sign-in that issued the token (its refresh-token family): revoking the sign-in
    /// (a stolen refresh token replayed, a password reset, a deactivation) revokes the token.
    pub sign_in: crate::ids::SignInId,
    /// When the access token was issued (unix milliseconds), against the account's
    /// "not valid before".
    pub issued_at_ms: i64,
    /// When the access token expires (unix seconds).
    pub expires_at_s: i64,
}

impl Principal {
    /// The caller as a customer (the edge checked the role).
    pub fn customer_id(&self) -> crate::ids::CustomerId {
        crate::ids::CustomerId(self.id.0)
    }

    /// The caller as a mitra (the edge checked the role).
    pub fn mitra_id(&self) -> crate::ids::MitraId {
        crate::ids::MitraId(self.id.0)
    }

    /// The caller as an operator (the edge checked the role).
    pub fn operator_id(&self) -> crate::ids::OperatorId {
        crate::ids::OperatorId(self.id.0)
    }
}

/// Everything that can go wrong signing in or presenting a token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no access token: send Authorization: Bearer <token>")]
    MissingToken,
    #[error("the access token is malformed or its signature does not verify")]
    InvalidToken,
    #[error("the access token has expired; refresh it")]
    TokenExpired,
    #[error("the access token was revoked; sign in again")]
    TokenRevoked,
    #[error("this route is not for a {0} account")]
    WrongRole(Role),
    #[error("phone must be a mobile number such as +6281234567890 (or 081234567890)")]
    InvalidPhone,
    #[error("phone numbers of this country are not served")]
    PhoneCountryNotSupported,
    #[error("call_name must be 1 to 50 characters")]
    InvalidCallName,
    #[error("wait {retry_after_s} s before asking for another code")]
    OtpResendTooSoon { retry_after_s: u64 },
    #[error("too many codes requested; try again in {retry_after_s} s")]
    OtpRateLimited { retry_after_s: u64 },
    #[error("the code must be 6 digits")]
    OtpMalformed,
    #[error("no valid code for this phone; request a new one")]
    OtpInvalid,
    #[error("the code is incorrect")]
    OtpIncorrect { attempts_left: u32 },
    #[error("too many wrong codes; request a new one")]
    OtpLocked,
    #[error("the code could not be delivered; try again")]
    OtpDelivery(String),
    #[error("email or password is incorrect")]
    InvalidCredentials,
    #[error("too many sign-in attempts for this account; try again in {retry_after_s} s")]
    SignInLocked { retry_after_s: u64 },
    #[error("this account is deactivated")]
    AccountDeactivated,
    #[error("the refresh token is unknown, expired or revoked; sign in again")]
    InvalidRefreshToken,
    #[error("the refresh token was already used; every session of this sign-in is revoked")]
    RefreshTokenReused,
    #[error("no such refresh token for this account")]
    RefreshTokenNotFound,
    #[error("a cryptographic operation failed: {0}")]
    Crypto(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError for AuthError {
    fn code(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::TokenRevoked => "token_revoked",
            Self::WrongRole(_) => "wrong_role",
            Self::InvalidPhone => "invalid_phone",
            Self::PhoneCountryNotSupported => "phone_country_not_supported",
            Self::InvalidCallName => "invalid_call_name",
            Self::OtpResendTooSoon { .. } => "otp_resend_too_soon",
            Self::OtpRateLimited { .. } => "otp_rate_limited",
            Self::OtpMalformed => "otp_malformed",
            Self::OtpInvalid => "otp_invalid",
            Self::OtpIncorrect { .. } => "otp_incorrect",
            Self::OtpLocked => "otp_locked",
            Self::OtpDelivery(_) => "otp_delivery_failed",
            Self::InvalidCredentials => "invalid_credentials",
            Self::SignInLocked { .. } => "sign_in_locked",
            Self::AccountDeactivated => "account_deactivated",
            Self::InvalidRefreshToken => "invalid_refresh_token",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::RefreshTokenNotFound => "refresh_token_not_found",
            Self::Crypto(_) => "internal_error",
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::MissingToken
            | Self::InvalidToken
            | Self::TokenExpired
            | Self::TokenRevoked
            | Self::OtpInvalid
            | Self::OtpIncorrect { .. }
            | Self::OtpLocked
            | Self::InvalidCredentials
            | Self::InvalidRefreshToken
            | Self::RefreshTokenReused => ErrorKind::Unauthenticated,
            Self::WrongRole(_) | Self::AccountDeactivated => ErrorKind::Forbidden,
            Self::InvalidPhone
            | Self::PhoneCountryNotSupported
            | Self::InvalidCallName
            | Self::OtpMalformed => ErrorKind::Invalid,
            Self::OtpResendTooSoon { .. } | Self::OtpRateLimited { .. } | Self::SignInLocked { .. } => {
                ErrorKind::RateLimited
            }
            Self::RefreshTokenNotFound => ErrorKind::NotFound,
            Self::OtpDelivery(_) => ErrorKind::Unavailable,
            Self::Crypto(_) => ErrorKind::Internal,
            Self::Store(e) => e.kind(),
        }
    }

    fn details(&self) -> Vec<(&'static str, serde_json::Value)> {
        match self {
            Self::OtpResendTooSoon { retry_after_s }
            | Self::OtpRateLimited { retry_after_s }
            | Self::SignInLocked { retry_after_s } => {
                vec![("retry_after_s", json!(retry_after_s))]
            }
            Self::OtpIncorrect { attempts_left } => vec![("attempts_left", json!(attempts_left))],
            _ => Vec::new(),
        }
    }
}

/// `N` random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Crypto(format!("OS random source: {e}")))?;
    Ok(bytes)
}
