//! Loading [`Settings`]: defaults, then an optional TOML file, then `BESTIE__SECTION__KEY`
//! environment variables (e.g. `BESTIE__REDIS__PREFIX=staging`). The only code that reads
//! the environment.

use std::path::Path;

use anyhow::Context as _;
use domain::settings::{Mode, Settings};
use figment::Figment;
use figment::providers::{Env, Format, Toml};

/// Reads settings from `file` (when given and present) and the environment.
pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
    let mut figment = Figment::new();
    if let Some(file) = file {
        anyhow::ensure!(file.exists(), "config file {} does not exist", file.display());
        figment = figment.merge(Toml::file(file));
    }
    let settings: Settings = figment
        .merge(Env::prefixed("BESTIE__").split("__"))
        .extract()
        .context("reading settings (defaults < config file < BESTIE__SECTION__KEY variables)")?;
    check(&settings)?;
    Ok(settings)
}

/// Refuses settings that are unsafe for the chosen mode.
pub fn check(settings: &Settings) -> anyhow::Result<()> {
    if settings.mode == Mode::Production {
        let defaults = domain::settings::Settings::default();
        anyhow::ensure!(
            settings.seed.admin_password != defaults.seed.admin_password,
            "production mode refuses the default seed.admin_password: set BESTIE__SEED__ADMIN_PASSWORD"
        );
        anyhow::ensure!(
            settings.auth.jwt_secret != defaults.auth.jwt_secret,
            "production mode refuses the development JWT key: set BESTIE__AUTH__JWT_SECRET"
        );
        anyhow::ensure!(
            settings.auth.otp_secret != defaults.auth.otp_secret,
            "production mode refuses the development OTP key: set BESTIE__AUTH__OTP_SECRET"
        );
    }
    settings.auth.effective_otp_sender(settings.mode).map_err(anyhow::Error::msg)?;
    settings.payments.effective_provider(settings.mode).map_err(anyhow::Error::msg)?;
    for (name, key) in [
        ("jwt_secret", Some(&settings.auth.jwt_secret)),
        ("jwt_previous_secret", settings.auth.jwt_previous_secret.as_ref()),
    ] {
        if let Some(key) = key {
            anyhow::ensure!(key.expose().len() >= 32, "auth.{name} must be at least 32 bytes");
        }
    }
    anyhow::ensure!(
        settings.auth.jwt_previous_kid.is_some() == settings.auth.jwt_previous_secret.is_some(),
        "auth.jwt_previous_kid and auth.jwt_previous_secret go together"
    );
    anyhow::ensure!(
        settings.auth.jwt_previous_kid.as_deref() != Some(settings.auth.jwt_kid.as_str()),
        "auth.jwt_previous_kid must differ from auth.jwt_kid"
    );
    anyhow::ensure!(!settings.redis.prefix.is_empty(), "redis.prefix must not be empty");
    anyhow::ensure!(
        !settings.redis.prefix.contains(['{', '}', ' ']),
        "redis.prefix must not contain braces or spaces (braces are Redis Cluster hash tags)"
    );
    Ok(())
}
