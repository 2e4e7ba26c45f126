//! The real `bestie` executable: signals, exit codes, and roles split across processes that
//! share one Redis and one Postgres.

use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use domain::auth::Role;

use crate::harness::{BestieProcess, isolated_settings, token_for, ws_url_with_token};
use crate::shutdown::close_code;

#[tokio::test]
async fn sigterm_closes_sockets_with_1012_and_exits_0_within_10_seconds() {
    let mut bestie = BestieProcess::serve(&[]).await;
    let token = token_for(&bestie.settings, uuid::Uuid::new_v4(), Role::Mitra);
    let (mut socket, _) =
        tokio_tungstenite::connect_async(ws_url_with_token(bestie.public, &token)).await.expect("socket");

    bestie.terminate();
    assert_eq!(close_code(&mut socket).await, Some(CloseCode::Restart));
    assert_eq!(bestie.wait_exit(Duration::from_secs(10)).await, Some(0));
}

#[tokio::test]
async fn roles_run_as_separate_processes_sharing_the_stores() {
    let shared = isolated_settings();
    let api = BestieProcess::serve_with(shared.clone(), &["--role", "api"]).await;
    let hub = BestieProcess::serve_with(shared.clone(), &["--role", "hub"]).await;
    let worker = BestieProcess::serve_with(shared, &["--role", "worker"]).await;
    let http = reqwest::Client::new();

    // Every process reports ready on its internal listener (checked by serve_with) and
    // exports its metrics there.
    for process in [&api, &hub, &worker] {
        let metrics = http.get(format!("http://{}/metrics", process.internal)).send().await.expect("metrics");
        assert_eq!(metrics.status(), 200);
    }
    // Only the hub upgrades sockets; the api process does not serve /ws.
    let token = token_for(&hub.settings, uuid::Uuid::new_v4(), Role::Customer);
    assert!(tokio_tungstenite::connect_async(ws_url_with_token(hub.public, &token)).await.is_ok());
    let on_api = http.get(format!("http://{}/ws", api.public)).send().await.expect("api /ws");
    assert_eq!(on_api.status(), 404);
    // The worker serves no public listener at all.
    assert!(http.get(format!("http://{}/healthz", worker.public)).send().await.is_err());
}

#[tokio::test]
async fn production_mode_refuses_the_default_admin_password() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bestie"))
        .arg("config")
        .env("BESTIE__MODE", "production")
        .output()
        .expect("bestie runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("BESTIE__SEED__ADMIN_PASSWORD"), "{stderr}");
}

#[tokio::test]
async fn config_prints_settings_with_secrets_redacted() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bestie"))
        .arg("config")
        .env("BESTIE__DATABASE__URL", "postgres://app:s3cr3t-pw@db.internal/bestie")
        .env("BESTIE__REDIS__URL", "redis://:r3d1s-pw@cache.internal:6379")
        .env("BESTIE__REDIS__PREFIX", "staging")
        .output()
        .expect("bestie runs");
    assert!(output.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(printed["redis"]["prefix"], "staging");
    // The host and user stay readable; only the password is hidden.
    assert_eq!(printed["database"]["url"], "postgres://app:[redacted]@db.internal/bestie");
    assert_eq!(printed["redis"]["url"], "redis://:[redacted]@cache.internal:6379");
    assert_eq!(printed["seed"]["admin_password"], "[redacted]");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("s3cr3t-pw") && !stdout.contains("r3d1s-pw"), "{stdout}");
}

/// `bestie config` shows what is in force, not `null`, for every choice left to the mode.
#[tokio::test]
async fn config_prints_the_effective_choices_of_the_mode() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bestie"))
        .arg("config")
        .env_remove("BESTIE__AUTH__OTP_SENDER")
        .env_remove("BESTIE__PAYMENTS__PROVIDER")
        .env_remove("BESTIE__LOG__FORMAT")
        .env_remove("BESTIE__PUSH__FCM_BASE_URL")
        .env_remove("BESTIE__SEED__DEMO_MITRAS")
        .output()
        .expect("bestie runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(printed["auth"]["otp_sender"], "dev");
    assert_eq!(printed["payments"]["provider"], "mock");
    assert_eq!(printed["log"]["format"], "pretty");
    assert_eq!(printed["push"]["fcm_base_url"], "https://fcm.googleapis.com");
    assert_eq!(printed["seed"]["demo_mitras"], 3);
}

/// `bestie ARGS` with `env`, as an operator runs it with `RUST_BACKTRACE=1` set: it must fail,
/// and what it printed on stderr is returned, checked to hold no backtrace.
/// The repair sweep's period was `payment_sweep_interval_s` before it was named for what it
/// does: an operator's old variable still sets it, and the new one does too.
#[tokio::test]
async fn the_repair_period_is_read_under_its_new_and_its_old_name() {
    for variable in ["BESTIE__WORKER__REPAIR_INTERVAL_S", "BESTIE__WORKER__PAYMENT_SWEEP_INTERVAL_S"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_bestie"))
            .arg("config")
            .env(variable, "17")
            .output()
            .expect("bestie runs");
        assert!(output.status.success(), "{variable}: {}", String::from_utf8_lossy(&output.stderr));
        let printed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
        assert_eq!(printed["worker"]["repair_interval_s"], 17, "{variable}");
    }
}

fn fails_with(args: &[&str], env: &[(&str, &str)]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bestie"))
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("bestie runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("bestie: "), "{stderr}");
    assert!(!stderr.contains("backtrace") && !stderr.contains("Caused by"), "{stderr}");
    stderr
}

#[tokio::test]
async fn unknown_settings_are_refused_rather_than_ignored() {
    let stderr = fails_with(&["config"], &[("BESTIE__REDIS__PREFX", "typo")]);
    assert!(stderr.contains("prefx") && stderr.contains("REDIS.PREFX"), "{stderr}");
}

/// A store that cannot be reached is named with its host and the setting, its password hidden,
/// in one line without a debug struct.
#[tokio::test]
async fn a_store_that_cannot_be_reached_is_named_with_its_address_and_setting() {
    let closed = crate::harness::free_port().port();
    let redis = format!("redis://:r3d1s-pw@127.0.0.1:{closed}");
    // Postgres answers (its own maintenance database, which exists), Redis does not.
    let env = [
        ("BESTIE__DATABASE__URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        ("BESTIE__REDIS__URL", &redis),
    ];
    let stderr = fails_with(&["migrate"], &env);
    let address = format!("127.0.0.1:{closed}");
    assert!(stderr.contains("cannot connect to Redis") && stderr.contains("BESTIE__REDIS__URL"), "{stderr}");
    assert!(stderr.contains(&format!("{address}: Connection refused")), "{stderr}");
    assert!(!stderr.contains("r3d1s-pw") && !stderr.contains("Os {"), "{stderr}");

    let postgres = format!("postgres://app:pg-pw@127.0.0.1:{closed}/bestie");
    let stderr = fails_with(&["migrate"], &[("BESTIE__DATABASE__URL", &postgres)]);
    assert!(
        stderr.contains("cannot connect to PostgreSQL") && stderr.contains("BESTIE__DATABASE__URL"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("postgres://app:[redacted]@{address}/bestie")), "{stderr}");
    assert!(!stderr.contains("pg-pw"), "{stderr}");
}

/// A port already taken is named with the setting that chose it.
#[tokio::test]
async fn a_port_in_use_names_its_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("addr").to_string();
    let settings = isolated_settings();
    let internal = crate::harness::free_port().to_string();
    let env = [
        ("BESTIE__DATABASE__URL", settings.database.url.expose()),
        ("BESTIE__REDIS__PREFIX", settings.redis.prefix.as_str()),
        ("BESTIE__API__PUBLIC_ADDR", address.as_str()),
        ("BESTIE__API__INTERNAL_ADDR", internal.as_str()),
    ];
    let stderr = fails_with(&["serve", "--role", "api"], &env);
    crate::harness::drop_isolated(&settings);
    assert!(stderr.contains(&address) && stderr.contains("BESTIE__API__PUBLIC_ADDR"), "{stderr}");
    assert!(stderr.contains("Address already in use"), "{stderr}");
}

#[tokio::test]
async fn production_mode_refuses_development_keys_and_code_senders() {
    let production = |extra: &[(&str, &str)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_bestie"));
        command
            .arg("config")
            .env("BESTIE__MODE", "production")
            .env("BESTIE__SEED__ADMIN_PASSWORD", "a-real-admin-password");
        for (key, value) in extra {
            command.env(key, value);
        }
        let output = command.output().expect("bestie runs");
        (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let keys = [
        ("BESTIE__AUTH__JWT_SECRET", "a-production-jwt-key-of-enough-length-0001"),
        ("BESTIE__AUTH__OTP_SECRET", "a-production-otp-key-of-enough-length-0001"),
    ];
    let (ok, stderr) = production(&[]);
    assert!(!ok && stderr.contains("BESTIE__AUTH__JWT_SECRET"), "{stderr}");
    let (ok, stderr) = production(&keys);
    assert!(!ok && stderr.contains("BESTIE__AUTH__OTP_SENDER"), "{stderr}");
    let (ok, stderr) = production(&[keys[0], keys[1], ("BESTIE__AUTH__OTP_SENDER", "dev")]);
    assert!(!ok && stderr.contains("refuses"), "{stderr}");
    let webhook = [
        keys[0],
        keys[1],
        ("BESTIE__AUTH__OTP_SENDER", "webhook"),
        ("BESTIE__AUTH__OTP_WEBHOOK_URL", "https://sms.example/send"),
    ];
    let (ok, stderr) = production(&webhook);
    assert!(!ok && stderr.contains("BESTIE__PAYMENTS__PROVIDER"), "{stderr}");
    let with = |extra: &[(&'static str, &'static str)]| [&webhook[..], extra].concat();
    let (ok, stderr) = production(&with(&[("BESTIE__PAYMENTS__PROVIDER", "mock")]));
    assert!(!ok && stderr.contains("refuses BESTIE__PAYMENTS__PROVIDER=mock"), "{stderr}");
    let (ok, stderr) = production(&with(&[("BESTIE__PAYMENTS__PROVIDER", "http")]));
    assert!(!ok && stderr.contains("BESTIE__PAYMENTS__URL"), "{stderr}");
    let http = [("BESTIE__PAYMENTS__PROVIDER", "http"), ("BESTIE__PAYMENTS__URL", "https://pay.example")];
    let (ok, stderr) = production(&with(&http));
    assert!(!ok && stderr.contains("BESTIE__PAYMENTS__API_KEY"), "{stderr}");
    let (ok, stderr) = production(&with(&[http[0], http[1], ("BESTIE__PAYMENTS__API_KEY", "sk_live_1")]));
    assert!(ok, "{stderr}");
}

/// Production names every problem in one run: a weak admin password, demo mitras (their
/// password is documented), the public development key kept as the previous key, a short
/// OTP key, and whatever else is missing.
#[tokio::test]
async fn production_reports_every_unsafe_setting_at_once() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bestie"))
        .arg("config")
        .env("BESTIE__MODE", "production")
        .env("BESTIE__SEED__ADMIN_PASSWORD", "x")
        .env("BESTIE__SEED__DEMO_MITRAS", "3")
        .env("BESTIE__AUTH__JWT_SECRET", "a-production-jwt-key-of-enough-length-0001")
        .env("BESTIE__AUTH__JWT_PREVIOUS_KID", "dev-1")
        .env("BESTIE__AUTH__JWT_PREVIOUS_SECRET", domain::settings::DEV_JWT_SECRET)
        .env("BESTIE__AUTH__JWT_KID", "prod-1")
        .env("BESTIE__AUTH__OTP_SECRET", "k")
        .output()
        .expect("bestie runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for named in [
        "BESTIE__SEED__ADMIN_PASSWORD of at least 12",
        "BESTIE__SEED__DEMO_MITRAS",
        "unset BESTIE__AUTH__JWT_PREVIOUS_SECRET",
        "BESTIE__AUTH__OTP_SECRET must be at least 32 bytes",
        "BESTIE__AUTH__OTP_SENDER",
        "BESTIE__PAYMENTS__PROVIDER",
    ] {
        assert!(stderr.contains(named), "{named} not reported: {stderr}");
    }
    assert!(stderr.contains("6 setting(s) to fix"), "{stderr}");
}

#[tokio::test]
async fn config_redacts_the_payment_providers_api_key_and_refuses_unknown_payment_keys() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bestie"))
        .arg("config")
        .env("BESTIE__PAYMENTS__PROVIDER", "http")
        .env("BESTIE__PAYMENTS__URL", "https://pay.example")
        .env("BESTIE__PAYMENTS__API_KEY", "sk_live_s3cr3t")
        .output()
        .expect("bestie runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(
        printed["payments"],
        serde_json::json!({"provider": "http", "url": "https://pay.example", "api_key": "[redacted]", "timeout_ms": 5000})
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("sk_live_s3cr3t"));

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bestie"))
        .arg("config")
        .env("BESTIE__PAYMENTS__APIKEY", "typo")
        .output()
        .expect("bestie runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("apikey"));
}

/// Runs `bestie seed` with `args` against the database and Redis prefix of `settings`.
fn seed(settings: &domain::settings::Settings, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_bestie"))
        .arg("seed")
        .args(args)
        .env("BESTIE__DATABASE__URL", settings.database.url.expose())
        .env("BESTIE__REDIS__PREFIX", &settings.redis.prefix)
        .env("BESTIE__SEED__DEMO_MITRAS", "0")
        .output()
        .expect("bestie runs")
}

#[tokio::test]
async fn seed_creates_load_accounts_whose_tokens_the_server_takes_and_a_rerun_keeps_them() {
    let bestie = BestieProcess::serve(&[]).await;
    let file = std::env::temp_dir().join(format!("bestie-load-{}.json", uuid::Uuid::new_v4().simple()));
    let path = file.to_str().expect("utf-8 temp path");
    let args = ["--load-customers", "3", "--load-mitras", "2", "--tokens", path, "--token-ttl-s", "7200"];
    let read = || -> serde_json::Value {
        let output = seed(&bestie.settings, &args);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let json = serde_json::from_slice(&std::fs::read(&file).expect("tokens file")).expect("JSON");
        std::fs::remove_file(&file).expect("remove tokens file");
        json
    };
    let first = read();
    let names = |kind: &str| -> Vec<String> {
        first[kind]
            .as_array()
            .expect(kind)
            .iter()
            .map(|a| a["name"].as_str().expect("name").to_owned())
            .collect()
    };
    assert_eq!(names("customers"), ["c0", "c1", "c2"]);
    assert_eq!(names("mitras"), ["m0", "m1"]);
    let now = chrono::Utc::now().timestamp();
    let expires = first["expires_at_s"].as_i64().expect("expires_at_s");
    assert!((now + 7100..=now + 7300).contains(&expires), "{expires} vs {now}");

    // The tokens are the server's own: a customer polls and pays (the account is in
    // Postgres: a first payment is the free trial), a mitra goes online over a socket.
    let http = reqwest::Client::new();
    let customer = first["customers"][1]["token"].as_str().expect("token");
    let url = |path: &str| format!("http://{}{path}", bestie.public);
    let poll =
        http.get(url("/api/client/mitra-availability")).bearer_auth(customer).send().await.expect("poll");
    assert_eq!(poll.status(), 200);
    let payment = http
        .post(url("/api/client/payment-sessions"))
        .bearer_auth(customer)
        .json(&serde_json::json!({"tier_id": "15m"}))
        .send()
        .await
        .expect("payment");
    assert_eq!(payment.status(), 201);
    let payment: serde_json::Value = payment.json().await.expect("payment JSON");
    assert_eq!(payment["is_free_trial"], true);

    let mitra = first["mitras"][0]["token"].as_str().expect("token");
    let mut socket =
        crate::harness::WsClient::connect_welcomed(&ws_url_with_token(bestie.public, mitra)).await;
    let status = http
        .post(url("/api/mitra/status"))
        .bearer_auth(mitra)
        .json(&serde_json::json!({"online": true}))
        .send()
        .await
        .expect("status");
    assert_eq!(status.status(), 200);
    let status: serde_json::Value = status.json().await.expect("status JSON");
    assert_eq!(status["online"], true, "{status}");
    let ping = serde_json::json!({"type": "ping", "ref": 1});
    socket.send_json(ping).await;
    assert_eq!(socket.next_json().await["type"], "pong");
    // The mitra can also sign in with the demo mitra password.
    let login = serde_json::json!({
        "email": domain::seed::load_mitra_email(0),
        "password": bestie.settings.seed.demo_mitra_password.expose(),
    });
    let session = http.post(url("/api/auth/mitra/login")).json(&login).send().await.expect("login");
    assert_eq!(session.status(), 200);
    let session: serde_json::Value = session.json().await.expect("login JSON");
    assert_eq!(session["mitra"]["id"], first["mitras"][0]["id"]);

    // Seeding again reuses every account.
    let second = read();
    for kind in ["customers", "mitras"] {
        let ids = |run: &serde_json::Value| -> Vec<serde_json::Value> {
            run[kind].as_array().expect(kind).iter().map(|a| a["id"].clone()).collect()
        };
        assert_eq!(ids(&first), ids(&second), "{kind}");
    }
}

#[tokio::test]
async fn seed_refuses_load_accounts_in_production_and_without_a_tokens_file() {
    let settings = crate::harness::isolated_settings();
    let output = seed(&settings, &["--load-customers", "1"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--tokens"));

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bestie"))
        .args(["seed", "--load-mitras", "1", "--tokens", "/nonexistent/never-written.json"])
        .env("BESTIE__MODE", "production")
        .env("BESTIE__SEED__ADMIN_PASSWORD", "a-real-admin-password")
        .env("BESTIE__AUTH__JWT_SECRET", "a-production-jwt-key-of-enough-length-0001")
        .env("BESTIE__AUTH__OTP_SECRET", "a-production-otp-key-of-enough-length-0001")
        .env("BESTIE__AUTH__OTP_SENDER", "webhook")
        .env("BESTIE__AUTH__OTP_WEBHOOK_URL", "https://sms.example/send")
        .env("BESTIE__PAYMENTS__PROVIDER", "http")
        .env("BESTIE__PAYMENTS__URL", "https://pay.example")
        .env("BESTIE__PAYMENTS__API_KEY", "sk_live_1")
        .env("BESTIE__DATABASE__URL", settings.database.url.expose())
        .output()
        .expect("bestie runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refused in production"), "{stderr}");
}
