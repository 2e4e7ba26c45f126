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
    /// Create the control-center admin, demo mitras and every config default (idempotent).
    Seed,
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut settings = bestie::settings::load(cli.config.as_deref())?;
    bestie::telemetry::init(&settings.log, settings.mode);
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
                let store = domain::store::Store::connect(&settings.database, &settings.redis).await?;
                bestie::migrate(&store).await?;
                println!("migrations applied");
                Ok(())
            }
            Command::Seed => {
                let store = domain::store::Store::connect(&settings.database, &settings.redis).await?;
                bestie::migrate(&store).await?;
                let report = domain::seed::run(&store, &settings.seed).await.context("seeding")?;
                println!(
                    "seeded: admin {} ({}), {} demo mitra(s) created, {} config key(s) inserted",
                    settings.seed.admin_email,
                    if report.admin_created { "created" } else { "already present" },
                    report.mitras_created,
                    report.config_keys_inserted
                );
                Ok(())
            }
            Command::Config => {
                println!("{}", serde_json::to_string_pretty(&settings)?);
                Ok(())
            }
            Command::TimersProbe { count, spread_s, start_in_s } => {
                let store = domain::store::Store::connect(&settings.database, &settings.redis).await?;
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
