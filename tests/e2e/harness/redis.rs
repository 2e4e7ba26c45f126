//! Redis servers of a test's own, for the tests that break Redis: [`RedisServer`], one
//! `redis-server`; [`PrivateCluster`], a 6-node cluster from `scripts/redis-cluster`;
//! [`PrivateRedis`], whichever of the two the suite runs against (`BESTIE_TEST_REDIS`); and
//! [`PrivateSentinel`], a master, its replica and a sentinel watching them.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::{free_port, test_redis_url};

/// The private clusters' node timeout: a silent master is failed over after about this long.
pub const NODE_TIMEOUT_MS: u64 = 2_000;

/// A Redis a test can kill -9 and start again empty, of the kind the suite runs against: a
/// single `redis-server` on a free port, or, when `BESTIE_TEST_REDIS` is a cluster's
/// `redis-cluster://` URL (`scripts/test-cluster`), a 6-node cluster on ports
/// `cluster_base..cluster_base + 6` whose nodes all die and restart together.
pub enum PrivateRedis {
    Single(RedisServer),
    Cluster(PrivateCluster),
}

impl PrivateRedis {
    pub async fn start(cluster_base: u16) -> Self {
        if test_redis_url().starts_with("redis-cluster://") {
            Self::Cluster(PrivateCluster::start(cluster_base))
        } else {
            Self::Single(RedisServer::start(free_port().port()).await)
        }
    }

    pub fn url(&self) -> String {
        match self {
            Self::Single(server) => server.url(),
            Self::Cluster(cluster) => cluster.url.clone(),
        }
    }

    /// kill -9: everything it held is gone.
    pub fn kill(&mut self) {
        match self {
            Self::Single(server) => server.kill(),
            Self::Cluster(cluster) => cluster.kill_all(),
        }
    }

    /// Starts it again, empty, where it was; returns once it serves.
    pub async fn start_again(&mut self) {
        match self {
            Self::Single(server) => server.start_again().await,
            Self::Cluster(cluster) => cluster.start_again(),
        }
    }
}

/// A `redis-server` of a test's own, keeping nothing on disk, as production runs it.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (scripts/deps installs it)");
        let redis = Self { port, child: Some(child) };
        redis.wait_answering().await;
        redis
    }

    async fn wait_answering(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                let mut reply = [0_u8; 7];
                if stream.write_all(b"PING\r\n").await.is_ok()
                    && stream.read_exact(&mut reply).await.is_ok()
                    && &reply == b"+PONG\r\n"
                {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not answer on port {}", self.port);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A new empty one on the same port, after [`kill`](Self::kill).
    pub async fn start_again(&mut self) {
        *self = Self::start(self.port).await;
    }

    /// kill -9: everything it held is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9 redis-server");
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A 6-node cluster of this test's own, stopped and removed when dropped.
pub struct PrivateCluster {
    base: u16,
    dir: PathBuf,
    pub url: String,
}

fn script() -> Command {
    Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/redis-cluster"))
}

impl PrivateCluster {
    pub fn start(base: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("bestie-test-cluster-{base}"));
        let mut cluster = Self { base, dir, url: String::new() };
        // A run that died before its drop may have left nodes in any state: start clean.
        cluster.run(&["stop"]);
        let started = cluster.run(&[]);
        assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
        cluster.url = String::from_utf8(started.stdout).expect("utf-8").trim().to_owned();
        cluster
    }

    pub fn cli(port: u16, args: &[&str]) -> String {
        let out =
            Command::new("redis-cli").arg("-p").arg(port.to_string()).args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn ports(&self) -> impl Iterator<Item = u16> + '_ {
        self.base..self.base + 6
    }

    /// The port of the master serving `hash_tag`'s slot, as node `via` sees the cluster.
    pub fn master_of(&self, via: u16, hash_tag: &str) -> Option<u16> {
        let slot: u16 = Self::cli(via, &["cluster", "keyslot", hash_tag]).trim().parse().ok()?;
        Self::cli(via, &["cluster", "nodes"]).lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            if !flags.contains("master") || flags.contains("fail") {
                return None;
            }
            let serves = fields.iter().skip(8).any(|range| {
                let (low, high) = range.split_once('-').unwrap_or((range, range));
                matches!((low.parse::<u16>(), high.parse::<u16>()), (Ok(low), Ok(high)) if (low..=high).contains(&slot))
            });
            let port = fields.get(1)?.split(['@', ':']).nth(1)?.parse().ok()?;
            serves.then_some(port)
        })
    }

    /// Whether `victim`'s slots are served again by another master, as node `via` sees it:
    /// `victim` serves no slot and every slot is served by a node in good standing.
    pub fn failed_over(via: u16, victim: u16) -> bool {
        let serves = Self::cli(via, &["cluster", "nodes"]).lines().any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1).is_some_and(|address| address.starts_with(&format!("127.0.0.1:{victim}@")))
                && fields.get(2).is_some_and(|flags| flags.contains("master"))
                && fields.len() > 8
        });
        let info = Self::cli(via, &["cluster", "info"]);
        !serves && info.lines().any(|line| line.trim() == "cluster_slots_ok:16384")
    }

    /// The masters holding any key of `pattern` (SCAN on each master).
    pub fn masters_with_keys(&self, pattern: &str) -> BTreeSet<u16> {
        self.ports()
            .filter(|port| Self::cli(*port, &["role"]).starts_with("master"))
            .filter(|port| !Self::cli(*port, &["--scan", "--pattern", pattern]).trim().is_empty())
            .collect()
    }

    /// The process id of the node on `port` (asked before it is stopped: a stopped node
    /// answers nothing).
    pub fn pid(port: u16) -> String {
        let info = Self::cli(port, &["info", "server"]);
        info.lines()
            .find_map(|line| line.trim().strip_prefix("process_id:"))
            .expect("the node answers INFO")
            .to_owned()
    }

    pub fn signal(pid: &str, signal: &str) {
        let sent = Command::new("kill").args([signal, pid]).status().expect("kill");
        assert!(sent.success(), "kill {signal} {pid}");
    }

    /// kill -9 every node: everything the cluster held is gone. The nodes' `nodes.conf`
    /// stays, so [`start_again`](Self::start_again) brings back the same topology, empty.
    pub fn kill_all(&self) {
        let pids: Vec<String> = self.ports().map(Self::pid).collect();
        for pid in &pids {
            Self::signal(pid, "-KILL");
        }
        for port in self.ports() {
            let gone = (0..200).any(|_| {
                let answered = Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "ping"])
                    .stderr(Stdio::null())
                    .output()
                    .is_ok_and(|out| out.stdout.starts_with(b"PONG"));
                if answered {
                    std::thread::sleep(Duration::from_millis(10));
                }
                !answered
            });
            assert!(gone, "node {port} still answers after kill -9");
        }
    }

    /// Starts the killed nodes again (empty) and waits until every slot is served.
    pub fn start_again(&self) {
        let started = self.run(&[]);
        assert!(started.status.success(), "{}", String::from_utf8_lossy(&started.stderr));
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        script()
            .args(args)
            .env("BASE", self.base.to_string())
            .env("DIR", &self.dir)
            .env("NODE_TIMEOUT_MS", NODE_TIMEOUT_MS.to_string())
            .output()
            .expect("scripts/redis-cluster runs")
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        // A stopped node must run again to be shut down.
        for port in self.ports() {
            let _ = Command::new("pkill")
                .args(["-CONT", "-f", &format!("redis-server 127.0.0.1:{port}")])
                .status();
        }
        let _ = self.run(&["stop"]);
    }
}

/// A master (`base`), its replica (`base + 1`) and one sentinel (`base + 10000`, quorum 1,
/// a master silent for 1 s is down) on loopback, all keeping nothing on disk; stopped when
/// dropped.
pub struct PrivateSentinel {
    base: u16,
    dir: PathBuf,
}

/// The name the sentinel knows the master by.
pub const SENTINEL_SERVICE: &str = "bestie";

impl PrivateSentinel {
    pub async fn start(base: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("bestie-test-sentinel-{base}"));
        let this = Self { base, dir };
        this.stop_all();
        std::fs::create_dir_all(&this.dir).expect("sentinel dir");
        for (port, replica_of) in [(base, None), (base + 1, Some(base))] {
            let mut command = Command::new("redis-server");
            command
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(["--daemonize", "yes", "--logfile"])
                .arg(this.dir.join(format!("{port}.log")))
                .arg("--dir")
                .arg(&this.dir);
            if let Some(master) = replica_of {
                command.args(["--replicaof", "127.0.0.1", &master.to_string()]);
            }
            assert!(command.status().expect("redis-server starts").success(), "redis-server on {port}");
        }
        let config = this.dir.join("sentinel.conf");
        let text = format!(
            "port {sentinel}\nbind 127.0.0.1\ndaemonize yes\ndir {dir}\nlogfile {dir}/sentinel.log\n\
             sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {base} 1\n\
             sentinel down-after-milliseconds {SENTINEL_SERVICE} 1000\n\
             sentinel failover-timeout {SENTINEL_SERVICE} 5000\n",
            sentinel = this.sentinel_port(),
            dir = this.dir.display(),
        );
        std::fs::write(&config, text).expect("sentinel.conf");
        let started = Command::new("redis-server").arg(&config).arg("--sentinel").status().expect("sentinel");
        assert!(started.success(), "the sentinel starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while this.master() != Some(base) {
            assert!(Instant::now() < deadline, "the sentinel did not name the master");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        this
    }

    fn sentinel_port(&self) -> u16 {
        self.base + 10_000
    }

    /// `BESTIE__REDIS__URL` for it.
    pub fn url(&self) -> String {
        format!(
            "redis-sentinel://127.0.0.1:{}/0?sentinelServiceName={SENTINEL_SERVICE}",
            self.sentinel_port()
        )
    }

    /// The port of the master the sentinel names now.
    pub fn master(&self) -> Option<u16> {
        let out = PrivateCluster::cli(
            self.sentinel_port(),
            &["sentinel", "get-master-addr-by-name", SENTINEL_SERVICE],
        );
        out.lines().nth(1)?.trim().parse().ok()
    }

    /// Asks the sentinel to fail the master over to the replica (the old master becomes its
    /// replica: writes sent there are refused `READONLY`); returns once the sentinel names
    /// the new master and the old one reports itself a replica.
    pub async fn fail_over(&self) -> u16 {
        let old = self.master().expect("a master");
        let answer = PrivateCluster::cli(self.sentinel_port(), &["sentinel", "failover", SENTINEL_SERVICE]);
        assert!(answer.trim() == "OK", "sentinel failover: {answer}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let new = self.master();
            if new.is_some_and(|new| new != old) && PrivateCluster::cli(old, &["role"]).starts_with("slave") {
                return new.expect("checked");
            }
            assert!(Instant::now() < deadline, "the failover did not finish");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop_all(&self) {
        for port in [self.sentinel_port(), self.base, self.base + 1] {
            let _ = Command::new("redis-cli")
                .args(["-p", &port.to_string(), "shutdown", "nosave"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for PrivateSentinel {
    fn drop(&mut self) {
        self.stop_all();
    }
}
