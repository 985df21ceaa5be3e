//! The real `qemu-ga`, run on the host for a test: `-m unix-listen` on a socket in a
//! private directory, with its state directory and pid file there too; killed and
//! reaped on drop. Included with `#[path]` by the tests that talk to it, in the
//! bindings crate and in `qmp` (hence `qmp::` paths, which both can name).
//!
//! Never send it `guest-fsfreeze-freeze*`, `guest-shutdown`, `guest-suspend-*` or
//! `guest-set-*`: on the host they act on this machine.
#![allow(dead_code)] // each test uses a part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use qmp::ga;

/// Bounds every wait of these tests, so that a hang fails instead of blocking the
/// suite (not a timing assertion: nothing should take more than a second).
pub const HANG: Duration = Duration::from_secs(60);

/// The installed `qemu-ga`, on `PATH` or where Debian puts it.
pub fn program() -> Option<PathBuf> {
    if qmp::local::installed("qemu-ga") {
        return Some("qemu-ga".into());
    }
    ["/usr/sbin/qemu-ga", "/usr/bin/qemu-ga"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A `qemu-ga -m unix-listen` in a private directory; killed and reaped on drop.
pub struct Agent {
    program: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Agent {
    /// Starts the agent (its socket appears shortly after: connect with
    /// [`config`]'s wait).
    pub fn start(program: PathBuf) -> Agent {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir(dir.path().join("state")).expect("the state directory");
        let mut agent = Agent {
            program,
            dir,
            child: None,
        };
        agent.restart();
        agent
    }

    /// The agent's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("qga.sock")
    }

    /// The private directory (for files the test has the agent read or write).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// (Re)starts the agent on the same socket.
    pub fn restart(&mut self) {
        self.kill();
        let dir: &Path = self.dir.path();
        let child = Command::new(&self.program)
            .arg("-m")
            .arg("unix-listen")
            .arg("-p")
            .arg(self.socket())
            .arg("-t")
            .arg(dir.join("state"))
            .arg("-f")
            .arg(dir.join("qga.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting qemu-ga");
        self.child = Some(child);
    }

    /// Kills the agent (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Connects with [`config`].
    pub async fn connect(&self) -> ga::Client {
        config()
            .connect_unix(self.socket())
            .await
            .expect("connecting to qemu-ga")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The client configuration of these tests: it waits for the agent's socket.
pub fn config() -> ga::Config {
    let mut c = ga::Config::new();
    // The agent needs a moment to create its socket.
    c.wait_for_agent(Some(Duration::from_secs(30)));
    c
}

/// `f`, or a panic naming `what` if it takes longer than [`HANG`].
pub async fn guard<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG, f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}
