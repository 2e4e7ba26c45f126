//! The auth area's SQL and Redis: one-time codes, refresh tokens, revocations, sign-in attempts.

pub mod otp;
pub mod refresh_tokens;
pub mod revocation;
pub mod sign_in_attempts;
