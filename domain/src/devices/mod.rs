//! Push device tokens: one row per token, owned by whoever registered it last.

pub mod store;

use crate::auth::{Principal, Role};
use crate::error::{DomainError, ErrorKind};
use crate::store::{Store, StoreError};

crate::text_enum::text_enum! {
    /// The platform of an app that registers a push token.
    pub enum Platform {
        Android = "android",
        Ios = "ios",
        Web = "web",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("fcm_token must be 1 to 4096 visible ASCII characters")]
    InvalidFcmToken,
    #[error("platform must be android, ios or web")]
    InvalidPlatform,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError for DeviceError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidFcmToken => "invalid_fcm_token",
            Self::InvalidPlatform => "invalid_platform",
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidFcmToken | Self::InvalidPlatform => ErrorKind::Invalid,
            Self::Store(e) => e.kind(),
        }
    }
}

/// Registers (or moves to the caller) a push token. Customers and mitras only.
#[tracing::instrument(skip_all)]
pub async fn register(
    store: &Store,
    owner: &Principal,
    fcm_token: &str,
    platform: &str,
) -> Result<(), DeviceError> {
    let fcm_token = valid_token(fcm_token)?;
    let platform = platform.parse::<Platform>().map_err(|_| DeviceError::InvalidPlatform)?.as_str();
    debug_assert!(matches!(owner.role, Role::Customer | Role::Mitra));
    store.upsert_device(fcm_token, platform, owner.role, owner.id, Some(owner.sign_in)).await?;
    Ok(())
}

/// `DELETE /api/shared/devices`: unregisters the caller's push token `fcm_token` (a token
/// of another account, or one not registered, changes nothing). Returns whether one was.
#[tracing::instrument(skip_all)]
pub async fn unregister(store: &Store, owner: &Principal, fcm_token: &str) -> Result<bool, DeviceError> {
    let fcm_token = valid_token(fcm_token)?;
    Ok(store.delete_devices_of(owner.id, None, Some(fcm_token)).await? > 0)
}

/// 1–4,096 characters as sent; white space around the token is dropped, and what is left is
/// visible ASCII.
fn valid_token(raw: &str) -> Result<&str, DeviceError> {
    let fcm_token = raw.trim();
    if fcm_token.is_empty() || raw.chars().count() > 4096 || !fcm_token.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(DeviceError::InvalidFcmToken);
    }
    Ok(fcm_token)
}
