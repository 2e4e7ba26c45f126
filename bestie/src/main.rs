//! `bestie`: serve, migrate, seed, print the effective configuration.

use std::path::PathBuf;

use anyhow::Context as _;
use bestie::{Application, ServiceRole};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "bestie",
    version,
    about = "Bestie Hub: the realtime backend of a peer-support chat marketplace"
)]
struct Cli {
    /// A TOML file of settings; `BESTIE__SECTION__KEY` variables override it.
    #[arg(long, global = true, env = "BESTIE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: every role in one process, or the one `--role` names.
    Serve {
        #[arg(long, value_enum)]
        role: Option<ServiceRole>,
        /// Do not apply pending migrations at start.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Create the database if missing and apply pending migrations.
    Migrate,
    /// Create the control-center admin, demo mitras and every config default (idempotent);
    /// with `--load-customers` / `--load-mitras`, also numbered accounts for load tests and
    /// an access token for each, written to `--tokens` (development mode only).
    Seed {
        /// Load-test customers `c0`, `c1`, ... (phones +62899000000000, +62899000000001, ...).
        #[arg(long, default_value_t = 0)]
        load_customers: u32,
        /// Load-test mitras `m0`, `m1`, ... (load-mitra-0@bestie.load, ...; password
        /// `seed.demo_mitra_password`).
        #[arg(long, default_value_t = 0)]
        load_mitras: u32,
        /// Where to write the load-test accounts and their tokens, as JSON
        /// (`{customers: [{id, name, token}], mitras: [...], expires_at_s}`).
        #[arg(long)]
        tokens: Option<PathBuf>,
        /// Lifetime of those tokens (default `auth.access_token_ttl_s`); a socket closes when
        /// its token expires, so a load run wants tokens that outlive it.
        #[arg(long)]
        token_ttl_s: Option<u64>,
        /// When the admin of `seed.admin_email` exists with another password, set it to
        /// `seed.admin_password` (its refresh tokens are revoked). Without it, the password is
        /// kept and the output says so.
        #[arg(long)]
        reset_admin_password: bool,
    },
    /// Print the effective settings as JSON, secrets redacted.
    Config,
    /// Check the timer service: schedule probe timers, wait for them, report their lateness.
    TimersProbe {
        /// Probes to schedule.
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// Spread their due times evenly over this many seconds ...
        #[arg(long, default_value_t = 10)]
        spread_s: u64,
        /// ... starting this many seconds from now.
        #[arg(long, default_value_t = 3)]
        start_in_s: u64,
    },
}

/// Runs the command; a failure is printed as one message with its causes (`bestie: reading
/// settings: unknown field ...`) and exit status 1, never with a backtrace, whatever
/// `RUST_BACKTRACE` says: what went wrong is an operator's to fix, not a bug's to trace.
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bestie: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = bestie::settings::load(cli.config.as_deref())?;
    let _log = bestie::telemetry::init(&settings.log, settings.mode);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve { role, no_migrate } => {
                if no_migrate {
                    settings.database.migrate_on_start = false;
                }
                let roles = role.map_or_else(ServiceRole::all, |role| [role].into());
                let app = Application::build(settings, roles).await?;
                let shutdown = CancellationToken::new();
                let trigger = shutdown.clone();
                tokio::spawn(async move {
                    bestie::shutdown_signal().await;
                    tracing::info!("shutdown signal received; draining");
                    trigger.cancel();
                });
                app.run_until_stopped(shutdown).await?;
                tracing::info!("stopped");
                Ok(())
            }
            Command::Migrate => {
                let store = domain::Store::connect(&settings.database, &settings.redis).await?;
                bestie::migrate(&store).await?;
                println!("migrations applied");
                Ok(())
            }
            Command::Seed { load_customers, load_mitras, tokens, token_ttl_s, reset_admin_password } => {
                let load = load_customers > 0 || load_mitras > 0;
                anyhow::ensure!(
                    !load || settings.mode != domain::settings::Mode::Production,
                    "load-test accounts are refused in production mode"
                );
                anyhow::ensure!(
                    load == tokens.is_some(),
                    "--tokens FILE goes with --load-customers or --load-mitras, and they with it"
                );
                let store = domain::Store::connect(&settings.database, &settings.redis).await?;
                bestie::migrate(&store).await?;
                let report = domain::seed::run_with(&store, &settings.seed, reset_admin_password)
                    .await
                    .context("seeding")?;
                use domain::seed::AdminSeed;
                println!(
                    "seeded: admin {} ({}), {} demo mitra(s) created, {} config key(s) inserted",
                    settings.seed.admin_email,
                    match report.admin {
                        AdminSeed::Created => "created with seed.admin_password",
                        AdminSeed::Unchanged => "already present; seed.admin_password signs it in",
                        AdminSeed::PasswordKept => {
                            "already present with ANOTHER password, which was kept: seed.admin_password \
                             does not sign it in; run `bestie seed --reset-admin-password` to set it"
                        }
                        AdminSeed::PasswordReset =>
                            "already present; its password was set to seed.admin_password",
                    },
                    report.mitras_created,
                    report.config_keys_inserted
                );
                if let Some(file) = tokens {
                    let load = domain::seed::LoadSeed {
                        customers: load_customers,
                        mitras: load_mitras,
                        token_ttl_s: token_ttl_s.unwrap_or(settings.auth.access_token_ttl_s),
                    };
                    let accounts = domain::seed::load_accounts(&store, &settings.seed, &settings.auth, load)
                        .await
                        .context("seeding load-test accounts")?;
                    let json = serde_json::to_vec(&accounts)?;
                    std::fs::write(&file, json).with_context(|| format!("writing {}", file.display()))?;
                    println!(
                        "load-test accounts: {} customer(s), {} mitra(s); tokens in {} (valid {} s)",
                        accounts.customers.len(),
                        accounts.mitras.len(),
                        file.display(),
                        load.token_ttl_s
                    );
                }
                Ok(())
            }
            Command::Config => {
                println!("{}", serde_json::to_string_pretty(&settings.effective())?);
                Ok(())
            }
            Command::TimersProbe { count, spread_s, start_in_s } => {
                let store = domain::Store::connect(&settings.database, &settings.redis).await?;
                bestie::migrate(&store).await?;
                let report = bestie::probe_timers(&store, count, spread_s, start_in_s).await?;
                println!("{}", serde_json::to_string_pretty(&report)?);
                anyhow::ensure!(
                    report["early"] == 0 && report["repeated"] == 0,
                    "a probe fired early or twice"
                );
                Ok(())
            }
        }
    })
}
