//! Push device tokens: one row per token, owned by whoever registered it last.

use crate::auth::{Principal, Role};
use crate::error::{DomainError, ErrorKind};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("fcm_token must be 1 to 4096 visible characters")]
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
    let fcm_token = fcm_token.trim();
    if fcm_token.is_empty()
        || fcm_token.len() > 4096
        || fcm_token.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(DeviceError::InvalidFcmToken);
    }
    if !matches!(platform, "android" | "ios" | "web") {
        return Err(DeviceError::InvalidPlatform);
    }
    debug_assert!(matches!(owner.role, Role::Customer | Role::Mitra));
    store.upsert_device(fcm_token, platform, owner.role, owner.id).await?;
    Ok(())
}
