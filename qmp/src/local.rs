//! QEMU processes started for a test, a benchmark or a tool, each with its QMP monitor
//! on a Unix socket in a private directory; killed, reaped and cleaned up when dropped.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use qmp::local::LocalQemu;
//!
//! let mut qemu = LocalQemu::storage_daemon()?;
//! let client = qemu.connect(&qmp::Config::new()).await?;
//! client.execute_raw("query-version", None::<&()>).await?;
//! # Ok(()) }
//! ```
//!
//! [`LocalQemu::spawn`] runs any program (another QEMU binary, a client-mode monitor for
//! [`crate::Config::accept_unix`], extra devices): it gets the socket path to put into
//! the command line it returns.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::{Client, Config};

/// How long [`LocalQemu::connect`] waits for QEMU to listen.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);

/// A QEMU process with a QMP socket in a private directory (see the [module](self)).
#[derive(Debug)]
pub struct LocalQemu {
    child: Child,
    program: String,
    socket: PathBuf,
    dir: PathBuf,
}

/// Whether `program` is on the `PATH` (e.g. to skip a test where QEMU is absent).
pub fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

impl LocalQemu {
    /// `qemu-storage-daemon` with a server-mode QMP monitor.
    ///
    /// # Errors
    /// When the directory cannot be made or the program cannot be started.
    pub fn storage_daemon() -> io::Result<LocalQemu> {
        LocalQemu::spawn("qemu-storage-daemon", |socket| {
            vec![
                "--chardev".into(),
                format!("socket,id=m,path={},server=on,wait=off", socket.display()),
                "--monitor".into(),
                "chardev=m".into(),
            ]
        })
    }

    /// `qemu-system-x86_64 -M none` (no guest, no display, no default devices) with a
    /// server-mode QMP monitor; it offers the `oob` capability.
    ///
    /// # Errors
    /// As [`storage_daemon`](Self::storage_daemon).
    pub fn system_none() -> io::Result<LocalQemu> {
        LocalQemu::spawn("qemu-system-x86_64", |socket| {
            [
                "-M",
                "none",
                "-nodefaults",
                "-display",
                "none",
                "-chardev",
                &format!("socket,id=mon,path={},server=on,wait=off", socket.display()),
                "-mon",
                "chardev=mon,mode=control",
            ]
            .map(String::from)
            .to_vec()
        })
    }

    /// Starts `program` with the arguments `args` returns for the socket path (which
    /// does not exist yet). Its stdin and stdout are closed; stderr is inherited, so
    /// QEMU's own error messages show.
    ///
    /// # Errors
    /// When the directory cannot be made or the program cannot be started (the error
    /// names the program).
    pub fn spawn(program: &str, args: impl FnOnce(&Path) -> Vec<String>) -> io::Result<LocalQemu> {
        let dir = private_dir()?;
        let socket = dir.join("qmp.sock");
        let spawned = Command::new(program)
            .args(args(&socket))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn();
        match spawned {
            Ok(child) => Ok(LocalQemu {
                child,
                program: program.to_owned(),
                socket,
                dir,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(io::Error::new(e.kind(), format!("starting {program}: {e}")))
            }
        }
    }

    /// The QMP socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The private directory (for images, fd-passing files and the like); removed
    /// when this is dropped.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process, e.g. to kill it early to test a peer that dies.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Blocks until QEMU listens on the socket, at most `timeout`. It does not connect
    /// to find out (a probe connection would take QEMU's one monitor session, and the
    /// next client would wait for QEMU to notice it closed): on Linux it looks for the
    /// socket among the listening ones in `/proc/net/unix`; elsewhere it waits for the
    /// file, which QEMU creates just before it listens.
    ///
    /// # Errors
    /// When the process exits first, or the time runs out.
    pub fn wait_for_socket(&mut self, timeout: Duration) -> io::Result<()> {
        let start = Instant::now();
        loop {
            self.check_still_waiting(start, timeout)?;
            if listening(&self.socket) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Connects a client with `config`, waiting (up to 10 s) for QEMU to listen on its
    /// socket, found as [`wait_for_socket`](Self::wait_for_socket) finds it.
    ///
    /// # Errors
    /// The connection's error when it is not about QEMU not listening yet; an I/O error
    /// when the process exits first or does not listen in time.
    pub async fn connect(&mut self, config: &Config) -> Result<Client> {
        let start = Instant::now();
        loop {
            self.check_still_waiting(start, CONNECT_WITHIN)
                .map_err(|e| Error::io("waiting for QEMU's QMP socket", e))?;
            if listening(&self.socket) {
                match config.connect_unix(&self.socket).await {
                    Ok(client) => return Ok(client),
                    // Where `listening` can only see that the file exists: created
                    // but not listening yet.
                    Err(e) if e.kind() == ErrorKind::Io => {}
                    Err(e) => return Err(e),
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// An error if the process has exited or `timeout` has passed since `start`.
    fn check_still_waiting(&mut self, start: Instant, timeout: Duration) -> io::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            return Err(io::Error::other(format!(
                "{} exited ({status}) before its QMP socket was ready",
                self.program
            )));
        }
        if start.elapsed() > timeout {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{} did not open its QMP socket {} within {timeout:?}",
                    self.program,
                    self.socket.display()
                ),
            ));
        }
        Ok(())
    }
}

impl Drop for LocalQemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a socket bound to `path` is listening: on Linux, a line of `/proc/net/unix`
/// for that path with the `__SO_ACCEPTCON` flag (`00010000`); where that table cannot
/// be read, whether the file exists.
fn listening(path: &Path) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else {
        return path.exists();
    };
    let Some(path) = path.to_str() else {
        return path.exists();
    };
    // "Num RefCount Protocol Flags Type St Inode Path": the inode is padded with
    // spaces and the path may hold some, so the path is matched as the line's end.
    table.lines().skip(1).any(|line| {
        line.split_whitespace().nth(3) == Some("00010000")
            && line
                .strip_suffix(path)
                .is_some_and(|head| head.ends_with(' '))
    })
}

/// A new directory only this user can enter, under the system's temporary directory.
fn private_dir() -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Absolute, as /proc/net/unix shows the path QEMU bound (see `listening`).
        let dir = std::path::absolute(std::env::temp_dir())?
            .join(format!("qmp-local-{}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            // Left by an earlier process with the same id: take the next name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_that_is_missing_is_named_and_leaves_nothing_behind() {
        let e = LocalQemu::spawn("qmp-no-such-program", |_| Vec::new()).unwrap_err();
        assert!(e.to_string().contains("qmp-no-such-program"), "{e}");
    }

    #[test]
    fn a_process_that_exits_early_is_reported_and_the_directory_removed() {
        let mut p = LocalQemu::spawn("true", |_| Vec::new()).expect("spawn true");
        let dir = p.dir().to_owned();
        assert!(dir.is_dir());
        let e = p.wait_for_socket(Duration::from_secs(5)).unwrap_err();
        assert!(e.to_string().contains("exited"), "{e}");
        drop(p);
        assert!(!dir.exists());
    }

    #[test]
    fn a_listening_socket_is_told_from_a_bound_one() {
        let dir = private_dir().unwrap();
        let bound = dir.join("bound.sock");
        let listening_path = dir.join("listening.sock");
        let socket = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            nix::sys::socket::SockFlag::empty(),
            None,
        )
        .unwrap();
        let addr = nix::sys::socket::UnixAddr::new(&bound).unwrap();
        nix::sys::socket::bind(std::os::fd::AsRawFd::as_raw_fd(&socket), &addr).unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(&listening_path).unwrap();
        assert!(listening(&listening_path));
        if std::path::Path::new("/proc/net/unix").exists() {
            assert!(!listening(&bound), "bound but not listening");
        }
        assert!(!listening(&dir.join("absent.sock")));
        drop(socket);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn waiting_for_a_socket_that_never_comes_times_out() {
        let mut p = LocalQemu::spawn("sleep", |_| vec!["5".into()]).expect("spawn sleep");
        let e = p.wait_for_socket(Duration::from_millis(50)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    }
}
