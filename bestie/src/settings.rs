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
    let mut settings: Settings = figment
        .merge(Env::prefixed("BESTIE__").split("__"))
        .extract()
        .context("reading settings (defaults < config file < BESTIE__SECTION__KEY variables)")?;
    check(&settings)?;
    if settings.mode == Mode::Production {
        settings.seed.demo_mitras.get_or_insert(0);
    }
    Ok(settings)
}

/// Refuses settings that are unsafe for the chosen mode, naming every problem at once.
pub fn check(settings: &Settings) -> anyhow::Result<()> {
    let found = problems(settings);
    if found.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = found.iter().map(|problem| format!("  - {problem}")).collect();
    anyhow::bail!("{} setting(s) to fix:\n{}", found.len(), list.join("\n"))
}

/// Shortest admin password production accepts.
const MIN_ADMIN_PASSWORD: usize = 12;
/// Shortest key production accepts for signing tokens and hashing one-time codes.
const MIN_KEY_BYTES: usize = 32;

/// Every unsafe or inconsistent setting, each as a sentence naming its variable.
fn problems(settings: &Settings) -> Vec<String> {
    let mut found = Vec::new();
    let mut require = |ok: bool, problem: &str| {
        if !ok {
            found.push(problem.to_owned());
        }
    };
    let auth = &settings.auth;
    if settings.mode == Mode::Production {
        let defaults = domain::settings::Settings::default();
        let admin_password = settings.seed.admin_password.expose();
        require(
            settings.seed.admin_password != defaults.seed.admin_password,
            "production mode refuses the default seed.admin_password: set BESTIE__SEED__ADMIN_PASSWORD",
        );
        require(
            admin_password.chars().count() >= MIN_ADMIN_PASSWORD,
            &format!(
                "production mode needs BESTIE__SEED__ADMIN_PASSWORD of at least {MIN_ADMIN_PASSWORD} characters"
            ),
        );
        require(
            settings.seed.demo_mitras.unwrap_or(0) == 0,
            "production mode refuses demo mitras (they sign in with a documented password): unset BESTIE__SEED__DEMO_MITRAS or set it to 0",
        );
        require(
            auth.jwt_secret != defaults.auth.jwt_secret,
            "production mode refuses the development JWT key: set BESTIE__AUTH__JWT_SECRET",
        );
        require(
            auth.jwt_previous_secret.as_ref() != Some(&defaults.auth.jwt_secret),
            "production mode refuses the development JWT key as the previous key: unset BESTIE__AUTH__JWT_PREVIOUS_SECRET",
        );
        require(
            auth.otp_secret != defaults.auth.otp_secret,
            "production mode refuses the development OTP key: set BESTIE__AUTH__OTP_SECRET",
        );
    }
    match domain::auth::otp::phone_countries(&auth.phone_countries) {
        Ok(countries) if countries.is_empty() => {
            found.push("BESTIE__AUTH__PHONE_COUNTRIES must name at least one country (e.g. ID)".to_owned());
        }
        Ok(_) => {}
        Err(code) => found.push(format!(
            "BESTIE__AUTH__PHONE_COUNTRIES: {code:?} is not an ISO 3166 country code (e.g. ID, MY, SG)"
        )),
    }
    if let Err(problem) = auth.effective_otp_sender(settings.mode) {
        found.push(problem);
    }
    if let Err(problem) = settings.payments.effective_provider(settings.mode) {
        found.push(problem);
    }
    let mut require = |ok: bool, problem: &str| {
        if !ok {
            found.push(problem.to_owned());
        }
    };
    for (name, key) in [
        ("JWT_SECRET", Some(&auth.jwt_secret)),
        ("JWT_PREVIOUS_SECRET", auth.jwt_previous_secret.as_ref()),
        ("OTP_SECRET", Some(&auth.otp_secret)),
    ] {
        if let Some(key) = key {
            require(
                key.expose().len() >= MIN_KEY_BYTES,
                &format!("BESTIE__AUTH__{name} must be at least {MIN_KEY_BYTES} bytes"),
            );
        }
    }
    require(
        auth.jwt_previous_kid.is_some() == auth.jwt_previous_secret.is_some(),
        "BESTIE__AUTH__JWT_PREVIOUS_KID and BESTIE__AUTH__JWT_PREVIOUS_SECRET go together",
    );
    require(
        auth.jwt_previous_kid.as_deref() != Some(auth.jwt_kid.as_str()),
        "BESTIE__AUTH__JWT_PREVIOUS_KID must differ from BESTIE__AUTH__JWT_KID",
    );
    require(!settings.redis.prefix.is_empty(), "BESTIE__REDIS__PREFIX must not be empty");
    require(
        !settings.redis.prefix.contains(['{', '}', ' ']),
        "BESTIE__REDIS__PREFIX must not contain braces or spaces (braces are Redis Cluster hash tags)",
    );
    found
}
