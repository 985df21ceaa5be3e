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
//! [`Launch`] starts any of them the same way, without writing a command line: the
//! storage daemon or a system emulator, paused, with extra arguments, another binary
//! or release, and the monitor socket where you want it:
//!
//! ```no_run
//! # fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use qmp::local::Launch;
//!
//! // qemu-system-x86_64 -M none, its CPUs stopped (`-S`), named `vm1`.
//! let mut vm = Launch::system_none().paused().args(["-name", "vm1"]).start()?;
//! // The blocking client, for a program without async code:
//! let client = vm.connect_blocking(&qmp::Config::new())?;
//! client.execute_raw("query-status", None::<&()>)?;
//! // The storage daemon with a block node, its monitor at a path of your own.
//! let disks = Launch::storage_daemon()
//!     .args(["--blockdev", "driver=null-co,node-name=null0"])
//!     .socket("/tmp/disks.sock")
//!     .start()?;
//! # let _ = disks;
//! # Ok(()) }
//! ```
//!
//! [`LocalQemu::spawn`] runs any program (another QEMU binary, a client-mode monitor for
//! [`crate::Config::accept_unix`], extra devices): it gets the socket path to put into
//! the command line it returns.
//!
//! [`LocalQemu::system`] starts `qemu-system-x86_64` with a machine described by a
//! [`System`]: machine type, accelerator, a disk image made in the private directory, a
//! NIC, extra arguments; and which QEMU: the installed one (on the `PATH`), or an older
//! release unpacked beside it by `scripts/setup-old-qemu` ([`OldQemu`]), which runs on
//! the installed QEMU's libraries with its own module and firmware folders:
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use qmp::local::{LocalQemu, OldQemu, System};
//!
//! let old = OldQemu::open("target/old-qemu/7.2")?;
//! let machine = System::new("pc").accel("tcg").paused().disk(64 << 20).nic();
//! let mut qemu = LocalQemu::system(&machine.release(&old))?;
//! let client = qemu.connect(&qmp::Config::new()).await?;
//! client.execute_raw("query-block", None::<&()>).await?;
//! # Ok(()) }
//! ```

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::{Client, Config};

/// The storage daemon's program name, looked up on the `PATH`.
const STORAGE_DAEMON: &str = "qemu-storage-daemon";
/// The system emulator's program name, looked up on the `PATH`.
const SYSTEM: &str = "qemu-system-x86_64";

/// How long [`LocalQemu::connect`] waits for QEMU to listen.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);

/// A QEMU process with a QMP socket in a private directory (see the [module](self)).
#[derive(Debug)]
pub struct LocalQemu {
    child: Child,
    program: String,
    socket: PathBuf,
    dir: PathBuf,
    /// The socket was chosen outside `dir` ([`Launch::socket`]): removed on drop too.
    socket_outside: bool,
}

/// Whether `program` is on the `PATH` (e.g. to skip a test where QEMU is absent).
pub fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

impl LocalQemu {
    /// `qemu-storage-daemon` with a server-mode QMP monitor: [`Launch::storage_daemon`]
    /// started as it is.
    ///
    /// # Errors
    /// When the directory cannot be made or the program cannot be started.
    pub fn storage_daemon() -> io::Result<LocalQemu> {
        Launch::storage_daemon().start()
    }

    /// `qemu-system-x86_64 -M none` (no guest, no display, no default devices) with a
    /// server-mode QMP monitor; it offers the `oob` capability. [`Launch::system_none`]
    /// started as it is.
    ///
    /// # Errors
    /// As [`storage_daemon`](Self::storage_daemon).
    pub fn system_none() -> io::Result<LocalQemu> {
        Launch::system_none().start()
    }

    /// Starts `program` with the arguments `args` returns for the socket path (which
    /// does not exist yet). Its stdin and stdout are closed; stderr is inherited, so
    /// QEMU's own error messages show.
    ///
    /// # Errors
    /// When the directory cannot be made or the program cannot be started (the error
    /// names the program).
    pub fn spawn(program: &str, args: impl FnOnce(&Path) -> Vec<String>) -> io::Result<LocalQemu> {
        LocalQemu::spawn_in(Command::new(program), program, None, |socket| {
            Ok(args(socket).into_iter().map(OsString::from).collect())
        })
    }

    /// `qemu-system-x86_64` running the machine `system` describes (see [`System`]),
    /// with a server-mode QMP monitor. The disk image, if any, is made first in the
    /// private directory with the installed `qemu-img`.
    ///
    /// # Errors
    /// As [`storage_daemon`](Self::storage_daemon), and when the disk image cannot be
    /// made (the error carries `qemu-img`'s message).
    pub fn system(system: &System) -> io::Result<LocalQemu> {
        Launch::system(system.clone()).start()
    }

    /// Starts `command` (named `program` in errors) with the arguments `args` returns
    /// for the socket path (`socket`, or `qmp.sock` in a new private directory; the
    /// directory is removed again on failure).
    fn spawn_in(
        mut command: Command,
        program: &str,
        socket: Option<&Path>,
        args: impl FnOnce(&Path) -> io::Result<Vec<OsString>>,
    ) -> io::Result<LocalQemu> {
        let dir = private_dir()?;
        let chosen = match socket {
            // Absolute, as /proc/net/unix shows the path QEMU bound (see `listening`).
            Some(s) => std::path::absolute(s).map(Some),
            None => Ok(None),
        };
        let spawned = chosen.and_then(|chosen| {
            let socket_outside = chosen.is_some();
            let socket = chosen.unwrap_or_else(|| dir.join("qmp.sock"));
            let args = args(&socket)?;
            let child = command
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| spawn_error(program, e))?;
            Ok((child, socket, socket_outside))
        });
        match spawned {
            Ok((child, socket, socket_outside)) => Ok(LocalQemu {
                child,
                program: program.to_owned(),
                socket,
                dir,
                socket_outside,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
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

    /// As [`connect`](Self::connect), for a program without async code: a
    /// [`blocking::Client`](crate::blocking::Client).
    ///
    /// # Errors
    /// As [`connect`](Self::connect), and [`ErrorKind::Unsupported`] inside a tokio
    /// runtime (see [`crate::blocking`]).
    pub fn connect_blocking(&mut self, config: &Config) -> Result<crate::blocking::Client> {
        const METHOD: &str = "qmp::local::LocalQemu::connect_blocking";
        crate::blocking::check(METHOD)?;
        let start = Instant::now();
        loop {
            self.check_still_waiting(start, CONNECT_WITHIN)
                .map_err(|e| Error::io("waiting for QEMU's QMP socket", e))?;
            if listening(&self.socket) {
                match crate::blocking::Client::connect_unix(config, &self.socket) {
                    Ok(client) => return Ok(client),
                    // As in `connect`: the file exists but nobody listens yet.
                    Err(e) if e.kind() == ErrorKind::Io => {}
                    Err(e) => return Err(e),
                }
            }
            std::thread::sleep(Duration::from_millis(10));
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
                    "{} did not open its QMP socket {} within {}",
                    self.program,
                    self.socket.display(),
                    crate::Limit(timeout)
                ),
            ));
        }
        Ok(())
    }
}

/// A QEMU release unpacked (never installed) beside the installed one, as
/// `scripts/setup-old-qemu` leaves it in `target/old-qemu/<release>/`: the programs
/// under `root/usr/bin` (`root/usr/sbin` for `qemu-ga`), its loadable modules in
/// [`module_dir`](Self::module_dir) and its firmware folders, given to the system
/// emulator with `-L` in that order (its own data first, then the installed SeaBIOS and
/// iPXE ROMs it does not ship). It runs on the installed QEMU's shared libraries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OldQemu {
    root: PathBuf,
    module_dir: PathBuf,
    firmware_dirs: Vec<PathBuf>,
    version: Option<String>,
}

impl OldQemu {
    /// A release unpacked at `root` (the folder holding `usr/`) whose modules are in
    /// `module_dir` and whose firmware is looked up in `firmware_dirs`, in order.
    pub fn new(
        root: impl Into<PathBuf>,
        module_dir: impl Into<PathBuf>,
        firmware_dirs: Vec<PathBuf>,
    ) -> OldQemu {
        OldQemu {
            root: root.into(),
            module_dir: module_dir.into(),
            firmware_dirs,
            version: None,
        }
    }

    /// The release `scripts/setup-old-qemu` unpacked into `dir` (e.g.
    /// `target/old-qemu/7.2`): `dir/root`, and the module and firmware folders from the
    /// lines `QEMU_MODULE_DIR=…` and `QEMU_FIRMWARE_DIRS=a:b:c` of `dir/env`; the
    /// package version from `dir/VERSION` when that file is there.
    ///
    /// # Errors
    /// When `dir/env` cannot be read (`NotFound` when the release is not unpacked,
    /// e.g. to skip a test) or lacks one of the two lines; the error names the file.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<OldQemu> {
        let dir = std::path::absolute(dir.as_ref())?;
        let env_file = dir.join("env");
        let text = std::fs::read_to_string(&env_file)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", env_file.display())))?;
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: no line {key}=…", env_file.display()),
                    )
                })
        };
        let module_dir = PathBuf::from(value("QEMU_MODULE_DIR")?);
        let firmware_dirs = std::env::split_paths(value("QEMU_FIRMWARE_DIRS")?).collect();
        let mut old = OldQemu::new(dir.join("root"), module_dir, firmware_dirs);
        old.version = std::fs::read_to_string(dir.join("VERSION"))
            .ok()
            .map(|v| v.trim().to_owned());
        Ok(old)
    }

    /// The unpacked tree (the folder holding `usr/`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of its loadable modules (`QEMU_MODULE_DIR`): without it, the program
    /// would load the installed release's modules, which do not fit (TCG itself is a
    /// module in Debian's builds).
    pub fn module_dir(&self) -> &Path {
        &self.module_dir
    }

    /// Its firmware folders, in the order they are given with `-L`.
    pub fn firmware_dirs(&self) -> &[PathBuf] {
        &self.firmware_dirs
    }

    /// The package version from `VERSION` (e.g. `1:7.2+dfsg-7+deb12u18`), when
    /// [`open`](Self::open) found one.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The path of one of its programs: `qemu-ga` is in `usr/sbin`, the others (e.g.
    /// `qemu-system-x86_64`, `qemu-storage-daemon`) in `usr/bin`.
    pub fn program(&self, name: &str) -> PathBuf {
        let bin = if name == "qemu-ga" {
            "usr/sbin"
        } else {
            "usr/bin"
        };
        self.root.join(bin).join(name)
    }

    /// A command running its program `name` with `QEMU_MODULE_DIR` set and, for a
    /// system emulator (`qemu-system-*`), the `-L` firmware folders as its first
    /// arguments; add the rest.
    pub fn command(&self, name: &str) -> Command {
        let mut c = Command::new(self.program(name));
        c.env("QEMU_MODULE_DIR", &self.module_dir);
        if name.starts_with("qemu-system-") {
            for d in &self.firmware_dirs {
                c.arg("-L").arg(d);
            }
        }
        c
    }
}

/// A `qemu-system-x86_64` machine for [`LocalQemu::system`]: always `-nodefaults
/// -display none` and a QMP monitor; the rest is chosen with the builder methods.
///
/// ```
/// use qmp::local::System;
///
/// // QEMU 10.0's (installed) `pc` machine, TCG, paused, a 64 MiB disk and a NIC.
/// let pc = System::new("pc").accel("tcg").paused().disk(64 << 20).nic();
/// # let _ = pc;
/// ```
#[derive(Clone, Debug)]
pub struct System {
    release: Option<OldQemu>,
    machine: String,
    accel: Option<String>,
    paused: bool,
    disk: Option<u64>,
    nic: bool,
    extra: Vec<OsString>,
}

impl System {
    /// Machine type `machine` (`-M`, e.g. `pc`, `q35`, `none`) of the installed QEMU.
    pub fn new(machine: &str) -> System {
        System {
            release: None,
            machine: machine.to_owned(),
            accel: None,
            paused: false,
            disk: None,
            nic: false,
            extra: Vec::new(),
        }
    }

    /// Runs this older release's `qemu-system-x86_64` instead of the installed one.
    pub fn release(mut self, old: &OldQemu) -> System {
        self.release = Some(old.clone());
        self
    }

    /// The accelerator (`-accel`, e.g. `tcg`; QEMU's default otherwise).
    pub fn accel(mut self, accel: &str) -> System {
        self.accel = Some(accel.to_owned());
        self
    }

    /// Starts with the CPUs stopped (`-S`): the machine is complete and answers every
    /// query, and the guest uses no CPU time (there is nothing to boot anyway).
    pub fn paused(mut self) -> System {
        self.paused = true;
        self
    }

    /// A qcow2 disk of `bytes` (made with `qemu-img create` in the private directory),
    /// attached as block backend `disk0` (`-drive if=none,id=disk0`) to an IDE disk
    /// `ide-hd` with id `disk0-dev` on bus `ide.0` (which `pc` and `q35` have).
    pub fn disk(mut self, bytes: u64) -> System {
        self.disk = Some(bytes);
        self
    }

    /// An e1000 NIC (id `nic0`) on a user-mode (slirp) network backend `n0`: needs no
    /// privileges.
    pub fn nic(mut self) -> System {
        self.nic = true;
        self
    }

    /// Adds arguments after the others (more devices, `-smp`, …).
    pub fn args<I, S>(mut self, args: I) -> System
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.extra.extend(args.into_iter().map(Into::into));
        self
    }

    /// The command line for a monitor on `socket` (making the disk image beside it).
    fn command_line(&self, socket: &Path) -> io::Result<Vec<OsString>> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(s.into());
        push("-M");
        push(&self.machine);
        if let Some(accel) = &self.accel {
            push("-accel");
            push(accel);
        }
        push("-nodefaults");
        push("-display");
        push("none");
        if self.paused {
            push("-S");
        }
        if let Some(bytes) = self.disk {
            let image = socket.with_file_name("disk0.qcow2");
            make_image(&image, bytes)?;
            let mut drive = OsString::from("if=none,id=disk0,format=qcow2,file=");
            drive.push(qemu_option_value(&image)?);
            a.extend(["-drive".into(), drive]);
            a.extend(["-device", "ide-hd,drive=disk0,bus=ide.0,id=disk0-dev"].map(OsString::from));
        }
        if self.nic {
            a.extend(
                [
                    "-netdev",
                    "user,id=n0",
                    "-device",
                    "e1000,netdev=n0,id=nic0",
                ]
                .map(OsString::from),
            );
        }
        let mut chardev = OsString::from("socket,id=mon,server=on,wait=off,path=");
        chardev.push(qemu_option_value(socket)?);
        a.extend([
            "-chardev".into(),
            chardev,
            "-mon".into(),
            "chardev=mon,mode=control".into(),
        ]);
        a.extend(self.extra.iter().cloned());
        Ok(a)
    }
}

/// How to start one QEMU program with a QMP monitor, built up with its methods and
/// started with [`start`](Self::start): the storage daemon or a system emulator,
/// paused or not, with extra arguments, the binary (on the `PATH`, at a path, or an
/// [`OldQemu`] release) and the monitor socket's path. It writes the command line
/// (the program's own options, then a server-mode monitor on the socket, then the
/// extra arguments); the [`LocalQemu`] it returns kills the process on drop.
///
/// ```no_run
/// # fn f() -> std::io::Result<()> {
/// use qmp::local::{Launch, System};
///
/// // A `pc` machine under TCG, not running yet, two CPUs.
/// let pc = Launch::system(System::new("pc").accel("tcg"))
///     .paused()
///     .args(["-smp", "2"])
///     .start()?;
/// // Another build of the storage daemon.
/// let daemon = Launch::storage_daemon()
///     .binary("/opt/qemu/bin/qemu-storage-daemon")
///     .start()?;
/// # let _ = (pc, daemon);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Launch {
    kind: Kind,
    binary: Option<PathBuf>,
    release: Option<OldQemu>,
    paused: bool,
    args: Vec<OsString>,
    socket: Option<PathBuf>,
}

/// Which program a [`Launch`] starts.
#[derive(Clone, Debug)]
enum Kind {
    StorageDaemon,
    System(System),
}

impl Launch {
    fn new(kind: Kind) -> Launch {
        Launch {
            kind,
            binary: None,
            release: None,
            paused: false,
            args: Vec::new(),
            socket: None,
        }
    }

    /// `qemu-storage-daemon`: block nodes, exports and jobs without a guest
    /// (`--blockdev`, `--export`, … as [`args`](Self::args)).
    pub fn storage_daemon() -> Launch {
        Launch::new(Kind::StorageDaemon)
    }

    /// `qemu-system-x86_64 -M none -nodefaults -display none`: QEMU's monitor
    /// without a machine, the quickest system emulator to start.
    pub fn system_none() -> Launch {
        Launch::system(System::new("none"))
    }

    /// `qemu-system-x86_64` running the machine `system` describes (its release,
    /// pausing and arguments count too; this builder's come after them).
    pub fn system(system: System) -> Launch {
        Launch::new(Kind::System(system))
    }

    /// Runs the program at `path` (or found on the `PATH` under that name) instead of
    /// `qemu-storage-daemon` or `qemu-system-x86_64` from the `PATH`, e.g. another
    /// build or `qemu-system-aarch64` (with a machine it has). Replaces a
    /// [`release`](Self::release).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Launch {
        self.binary = Some(path.into());
        self.release = None;
        self
    }

    /// Runs this older release's program (with its modules and firmware, see
    /// [`OldQemu`]). Replaces a [`binary`](Self::binary).
    pub fn release(mut self, old: &OldQemu) -> Launch {
        self.release = Some(old.clone());
        self.binary = None;
        self
    }

    /// Starts a system emulator with its CPUs stopped (`-S`): `query-status` says
    /// `prelaunch` until `cont`. The storage daemon runs no guest and has nothing to
    /// pause: [`start`](Self::start) refuses it.
    pub fn paused(mut self) -> Launch {
        self.paused = true;
        self
    }

    /// Adds one argument after the others.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Launch {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments after the others (more devices, `-name`, `--blockdev`, …).
    pub fn args<I, S>(mut self, args: I) -> Launch
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Puts the QMP monitor's socket at `path` instead of `qmp.sock` in the private
    /// directory (e.g. for another program to connect to). QEMU replaces a file left
    /// there; the socket is removed when the [`LocalQemu`] is dropped.
    pub fn socket(mut self, path: impl Into<PathBuf>) -> Launch {
        self.socket = Some(path.into());
        self
    }

    /// The program's default name on the `PATH`.
    fn default_program(&self) -> &'static str {
        match self.kind {
            Kind::StorageDaemon => STORAGE_DAEMON,
            Kind::System(_) => SYSTEM,
        }
    }

    /// Starts the program; it listens on [`LocalQemu::socket`] soon after (see
    /// [`LocalQemu::connect`], [`LocalQemu::connect_blocking`]).
    ///
    /// # Errors
    /// When the program cannot be started (the error names it and, when it was
    /// looked for on the `PATH`, the `PATH`), when a storage daemon is to start
    /// [`paused`](Self::paused) (`InvalidInput`), when a path is not UTF-8, or when a
    /// system's disk image cannot be made (with `qemu-img`'s message).
    pub fn start(&self) -> io::Result<LocalQemu> {
        let name = self.default_program();
        if self.paused && matches!(self.kind, Kind::StorageDaemon) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{name} cannot start paused: it runs no guest (`Launch::paused` is for \
                     the system emulator)"
                ),
            ));
        }
        let release = match &self.kind {
            Kind::System(system) if self.binary.is_none() => {
                self.release.as_ref().or(system.release.as_ref())
            }
            _ => self.release.as_ref(),
        };
        let (command, program) = match (&self.binary, release) {
            (Some(path), _) => (Command::new(path), path.display().to_string()),
            (None, Some(old)) => (old.command(name), old.program(name).display().to_string()),
            (None, None) => (Command::new(name), name.to_owned()),
        };
        LocalQemu::spawn_in(command, &program, self.socket.as_deref(), |socket| {
            let mut args = match &self.kind {
                Kind::StorageDaemon => storage_daemon_command_line(socket)?,
                Kind::System(system) => {
                    let mut system = system.clone();
                    system.paused |= self.paused;
                    system.command_line(socket)?
                }
            };
            args.extend(self.args.iter().cloned());
            Ok(args)
        })
    }
}

/// The storage daemon's arguments for a server-mode monitor on `socket`.
fn storage_daemon_command_line(socket: &Path) -> io::Result<Vec<OsString>> {
    let mut chardev = OsString::from("socket,id=m,server=on,wait=off,path=");
    chardev.push(qemu_option_value(socket)?);
    Ok(vec![
        "--chardev".into(),
        chardev,
        "--monitor".into(),
        "chardev=m".into(),
    ])
}

/// The error of starting `program`: for one looked up on the `PATH` and not found,
/// the `PATH` searched and what to do; otherwise the system's reason.
fn spawn_error(program: &str, e: io::Error) -> io::Error {
    if e.kind() != io::ErrorKind::NotFound || program.contains('/') {
        return io::Error::new(e.kind(), format!("starting {program}: {e}"));
    }
    let searched = match std::env::var_os("PATH") {
        Some(path) => format!(
            "not found in any directory of PATH ({})",
            path.to_string_lossy()
        ),
        None => "not found: PATH is not set".to_owned(),
    };
    io::Error::new(
        e.kind(),
        format!(
            "starting {program}: {searched}; install it, or give its path with \
             `Launch::binary`"
        ),
    )
}

/// Makes a qcow2 image of `bytes` at `path` with the installed `qemu-img` (its images
/// are `compat=1.1`, which every QEMU since 1.1 reads).
fn make_image(path: &Path, bytes: u64) -> io::Result<()> {
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg(bytes.to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("starting qemu-img: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "qemu-img create {} failed ({}): {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// `path` as the value of a QEMU `key=value,…` option: a comma is doubled, QEMU's
/// escape for it.
fn qemu_option_value(path: &Path) -> io::Result<OsString> {
    let s = path.to_str().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not UTF-8: cannot pass it to QEMU", path.display()),
        )
    })?;
    Ok(s.replace(',', ",,").into())
}

impl Drop for LocalQemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.socket_outside {
            // QEMU, killed, leaves its socket behind.
            let _ = std::fs::remove_file(&self.socket);
        }
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
    fn an_old_release_is_read_from_its_env_file() {
        let dir = private_dir().unwrap();
        std::fs::write(
            dir.join("env"),
            "QEMU_MODULE_DIR=/r/usr/lib/qemu\nQEMU_FIRMWARE_DIRS=/r/usr/share/qemu:/usr/share/seabios\n",
        )
        .unwrap();
        std::fs::write(dir.join("VERSION"), "1:7.2+dfsg-7\n").unwrap();
        let old = OldQemu::open(&dir).unwrap();
        assert_eq!(old.root(), dir.join("root"));
        assert_eq!(old.module_dir(), Path::new("/r/usr/lib/qemu"));
        assert_eq!(
            old.firmware_dirs(),
            [
                PathBuf::from("/r/usr/share/qemu"),
                PathBuf::from("/usr/share/seabios")
            ]
        );
        assert_eq!(old.version(), Some("1:7.2+dfsg-7"));
        assert_eq!(old.program("qemu-ga"), dir.join("root/usr/sbin/qemu-ga"));
        let c = old.command("qemu-system-x86_64");
        let args: Vec<_> = c.get_args().collect();
        assert_eq!(
            args,
            ["-L", "/r/usr/share/qemu", "-L", "/usr/share/seabios"]
        );
        // A file without the lines names itself and the line.
        std::fs::write(dir.join("env"), "X=1\n").unwrap();
        let e = OldQemu::open(&dir).unwrap_err();
        assert!(e.to_string().contains("QEMU_MODULE_DIR"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        let e = OldQemu::open(&dir).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    }

    #[test]
    fn a_system_command_line_has_the_machine_disk_nic_and_monitor() {
        let dir = private_dir().unwrap();
        let socket = dir.join("a,b.sock");
        let pc = System::new("pc")
            .accel("tcg")
            .paused()
            .nic()
            .args(["-smp", "1"]);
        let args: Vec<String> = pc
            .command_line(&socket)
            .unwrap()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let line = args.join(" ");
        assert!(
            line.starts_with("-M pc -accel tcg -nodefaults -display none -S "),
            "{line}"
        );
        assert!(
            line.contains("-netdev user,id=n0 -device e1000,netdev=n0,id=nic0"),
            "{line}"
        );
        assert!(
            line.contains(&format!("path={}", dir.join("a,,b.sock").display())),
            "{line}"
        );
        assert!(line.ends_with("-smp 1"), "{line}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn waiting_for_a_socket_that_never_comes_times_out() {
        let mut p = LocalQemu::spawn("sleep", |_| vec!["5".into()]).expect("spawn sleep");
        let e = p.wait_for_socket(Duration::from_millis(50)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    }
}
