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
        anyhow::ensure!(
            file.exists(),
            "config file {} does not exist",
            file.display()
        );
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
        let defaults = domain::settings::SeedSettings::default();
        anyhow::ensure!(
            settings.seed.admin_password != defaults.admin_password,
            "production mode refuses the default seed.admin_password: set BESTIE__SEED__ADMIN_PASSWORD"
        );
    }
    anyhow::ensure!(
        !settings.redis.prefix.is_empty(),
        "redis.prefix must not be empty"
    );
    anyhow::ensure!(
        !settings.redis.prefix.contains(['{', '}', ' ']),
        "redis.prefix must not contain braces or spaces (braces are Redis Cluster hash tags)"
    );
    Ok(())
}
