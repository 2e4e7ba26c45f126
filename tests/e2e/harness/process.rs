//! `BestieProcess`: the real executable, started with `BESTIE__...` variables.

use super::*;

/// The real `bestie` executable, started with `BESTIE__...` variables on ports it picks
/// itself (port 0), so no other process can take them between a test choosing a port and
/// the server binding it.
pub struct BestieProcess {
    pub child: Child,
    /// The public listener's address; `127.0.0.1:0` for a process without one (a worker).
    pub public: SocketAddr,
    pub internal: SocketAddr,
    pub settings: Settings,
    /// What the process wrote on stdout: its log lines (JSON when the test asked for it).
    pub log: PathBuf,
    stderr: PathBuf,
}

impl BestieProcess {
    /// Starts `bestie serve` with `args` and waits until `/readyz` answers 200 on the
    /// internal listener.
    pub async fn serve(args: &[&str]) -> Self {
        Self::serve_with(isolated_settings(), args).await
    }

    /// Like [`serve`](Self::serve) with the database and Redis prefix of `settings`, so
    /// several processes can share them.
    pub async fn serve_with(settings: Settings, args: &[&str]) -> Self {
        Self::serve_with_env(settings, args, &[]).await
    }

    /// Like [`serve_with`](Self::serve_with), with more `BESTIE__...` variables.
    pub async fn serve_with_env(settings: Settings, args: &[&str], env: &[(&str, String)]) -> Self {
        let mut command = Self::command(&settings);
        command
            .args(args)
            .env("BESTIE__LOG__FORMAT", "json")
            .envs(env.iter().map(|(key, value)| (key, value)));
        Self::start(command, settings).await
    }

    /// `bestie serve` on the database and Redis prefix of `settings`; add arguments and
    /// variables, then [`start`](Self::start) it.
    pub fn command(settings: &Settings) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bestie"));
        command
            .arg("serve")
            .env("BESTIE__DATABASE__URL", settings.database.url.expose())
            .env("BESTIE__REDIS__URL", settings.redis.url.expose())
            .env("BESTIE__REDIS__PREFIX", &settings.redis.prefix);
        command
    }

    /// Spawns `command` on port 0 with its output in files, reads the addresses it bound
    /// from its `serving` line (so its log must be JSON, at info or below), and waits until
    /// it is ready. A process that exits or never gets ready fails the test with what it
    /// printed.
    pub async fn start(mut command: Command, settings: Settings) -> Self {
        let name = format!("bestie-{}", uuid::Uuid::new_v4().simple());
        let (log, stderr) = (
            std::env::temp_dir().join(format!("{name}.jsonl")),
            std::env::temp_dir().join(format!("{name}.err")),
        );
        let child = command
            .env("BESTIE__API__PUBLIC_ADDR", "127.0.0.1:0")
            .env("BESTIE__API__INTERNAL_ADDR", "127.0.0.1:0")
            .stdout(Stdio::from(std::fs::File::create(&log).expect("log file")))
            .stderr(Stdio::from(std::fs::File::create(&stderr).expect("stderr file")))
            .spawn()
            .expect("bestie starts");
        let unbound = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut process = Self { child, public: unbound, internal: unbound, settings, log, stderr };
        let serving = process.wait_for_serving_line().await;
        let addr = |field: &str| serving[field].as_str().map(|addr| addr.parse().expect("an address"));
        process.internal = addr("internal").unwrap_or_else(|| panic!("no internal address in {serving}"));
        process.public = addr("public").unwrap_or(unbound);
        process.wait_ready().await;
        process
    }

    /// The `serving` line, written once the listeners are bound.
    async fn wait_for_serving_line(&mut self) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let serving = log
                .lines()
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                .find(|line| line["message"] == "serving");
            if let Some(serving) = serving {
                return serving;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("bestie exited ({status}) before serving\n{}", self.output());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "bestie did not serve within 30 s\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The end of what the process printed, for a failure message.
    pub fn output(&self) -> String {
        let tail = |path: &Path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!("--- stdout (last 40 lines) ---\n{}\n--- stderr ---\n{}", tail(&self.log), tail(&self.stderr))
    }

    /// Waits until `/readyz` answers 200 on the internal listener (30 s at most).
    pub async fn wait_ready(&mut self) {
        let url = format!("http://{}/readyz", self.internal);
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = client.get(&url).send().await
                && response.status() == 200
            {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("bestie exited ({status}) before it was ready\n{}", self.output());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "bestie did not become ready within 30 s\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status =
            Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit, up to `limit`; returns its exit code.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for BestieProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
        let _ = std::fs::remove_file(&self.stderr);
        drop_isolated(&self.settings);
    }
}
