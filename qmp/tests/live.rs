//! Live tests against the installed QEMU 10.0 (`qemu-storage-daemon`,
//! `qemu-system-x86_64 -M none` and a `pc` machine) and, for the `pc` machine, QEMU 7.2
//! when `scripts/setup-old-qemu` unpacked it, started and killed by the tests themselves.
//!
//! Each QEMU runs in its own directory (`qmp::local::LocalQemu`), killed and removed on
//! drop, so nothing is left behind even when a test fails. When the QEMU binaries
//! are missing, each test prints one line and returns.

#[path = "support/skip.rs"]
mod skip;

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Duration;

use qmp::local::{installed, LocalQemu};
use qmp::{Client, Command, Config, Event};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

fn have(binary: &str) -> bool {
    let found = installed(binary);
    if !found {
        skip::skipping(&format!("{binary} is not installed (scripts/setup-qemu)"));
    }
    found
}

fn system() -> LocalQemu {
    LocalQemu::system_none().expect("qemu-system-x86_64")
}

fn storage_daemon() -> LocalQemu {
    LocalQemu::storage_daemon().expect("qemu-storage-daemon")
}

async fn connect(qemu: &mut LocalQemu) -> Client {
    qemu.connect(&Config::new()).await.expect("connecting")
}

// Small typed commands, as the generated bindings would define them.

#[derive(Serialize)]
struct QueryVersion {}
#[derive(Deserialize, Debug)]
struct VersionInfo {
    qemu: VersionTriple,
    #[allow(dead_code)]
    package: String,
}
#[derive(Deserialize, Debug)]
struct VersionTriple {
    major: u32,
    minor: u32,
    #[allow(dead_code)]
    micro: u32,
}
impl Command for QueryVersion {
    const NAME: &'static str = "query-version";
    type Reply = VersionInfo;
}

#[derive(Serialize)]
struct QueryStatus {}
#[derive(Deserialize, Debug)]
struct StatusInfo {
    running: bool,
    status: String,
}
impl Command for QueryStatus {
    const NAME: &'static str = "query-status";
    type Reply = StatusInfo;
}

#[derive(Serialize)]
struct QomList<'a> {
    path: &'a str,
}
#[derive(Deserialize, Debug)]
struct ObjectPropertyInfo {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}
impl Command for QomList<'_> {
    const NAME: &'static str = "qom-list";
    type Reply = Vec<ObjectPropertyInfo>;
}

#[derive(Serialize)]
struct Stop {}
impl Command for Stop {
    const NAME: &'static str = "stop";
    type Reply = qmp::Empty;
}
#[derive(Serialize)]
struct Cont {}
impl Command for Cont {
    const NAME: &'static str = "cont";
    type Reply = qmp::Empty;
}
#[derive(Deserialize, Debug)]
struct StopEvent {}
impl Event for StopEvent {
    const NAME: &'static str = "STOP";
}
#[derive(Deserialize, Debug)]
struct ResumeEvent {}
impl Event for ResumeEvent {
    const NAME: &'static str = "RESUME";
}

#[derive(Serialize)]
struct BlockdevAddNull<'a> {
    driver: &'a str,
    #[serde(rename = "node-name")]
    node_name: &'a str,
}
impl Command for BlockdevAddNull<'_> {
    const NAME: &'static str = "blockdev-add";
    type Reply = qmp::Empty;
}
#[derive(Serialize)]
struct BlockdevDel<'a> {
    #[serde(rename = "node-name")]
    node_name: &'a str,
}
impl Command for BlockdevDel<'_> {
    const NAME: &'static str = "blockdev-del";
    type Reply = qmp::Empty;
}
#[derive(Serialize)]
struct QueryNamedBlockNodes {
    flat: bool,
}
#[derive(Deserialize, Debug)]
struct BlockDeviceInfo {
    #[serde(rename = "node-name")]
    node_name: String,
    drv: String,
}
impl Command for QueryNamedBlockNodes {
    const NAME: &'static str = "query-named-block-nodes";
    type Reply = Vec<BlockDeviceInfo>;
}

#[derive(Serialize)]
struct BlockdevCreate {
    #[serde(rename = "job-id")]
    job_id: String,
    options: Value,
}
impl Command for BlockdevCreate {
    const NAME: &'static str = "blockdev-create";
    type Reply = qmp::Empty;
}
#[derive(Deserialize, Debug)]
struct JobStatusChange {
    id: String,
    status: String,
}
impl Event for JobStatusChange {
    const NAME: &'static str = "JOB_STATUS_CHANGE";
}
#[derive(Serialize)]
struct JobDismiss<'a> {
    id: &'a str,
}
impl Command for JobDismiss<'_> {
    const NAME: &'static str = "job-dismiss";
    type Reply = qmp::Empty;
}

#[derive(Serialize)]
struct MigratePause {}
impl Command for MigratePause {
    const NAME: &'static str = "migrate-pause";
    type Reply = qmp::Empty;
    const ALLOW_OOB: bool = true;
}

mod basics {
    use super::*;

    #[tokio::test]
    async fn query_version_status_and_qom_list() {
        if !have("qemu-system-x86_64") {
            return;
        }
        let mut qemu = system();
        let client = connect(&mut qemu).await;
        assert!(client.oob_enabled(), "QEMU offers oob on a socket chardev");
        let v = client.execute(&QueryVersion {}).await.unwrap();
        assert_eq!((v.qemu.major, v.qemu.minor), (10, 0));
        assert_eq!(client.greeting().qmp.version.qemu.major, 10);
        let s = client.execute(&QueryStatus {}).await.unwrap();
        assert!(s.running);
        assert_eq!(s.status, "running");
        let props = client.execute(&QomList { path: "/" }).await.unwrap();
        assert!(
            props
                .iter()
                .any(|p| p.name == "machine" && p.ty.starts_with("child<")),
            "{props:?}"
        );
        // A QMP error is typed.
        let e = client
            .execute(&QomList { path: "/no/such" })
            .await
            .unwrap_err();
        assert!(e.is_qmp_error());
        assert_eq!(e.qmp_error().unwrap().class, "DeviceNotFound");
        client.close().await;
    }

    #[tokio::test]
    async fn blockdev_add_and_del_null_co() {
        if !have("qemu-storage-daemon") {
            return;
        }
        let mut qemu = storage_daemon();
        let client = connect(&mut qemu).await;
        client
            .execute(&BlockdevAddNull {
                driver: "null-co",
                node_name: "null0",
            })
            .await
            .unwrap();
        let nodes = client
            .execute(&QueryNamedBlockNodes { flat: true })
            .await
            .unwrap();
        assert!(nodes
            .iter()
            .any(|n| n.node_name == "null0" && n.drv == "null-co"));
        client
            .execute(&BlockdevDel { node_name: "null0" })
            .await
            .unwrap();
        let nodes = client
            .execute(&QueryNamedBlockNodes { flat: true })
            .await
            .unwrap();
        assert!(!nodes.iter().any(|n| n.node_name == "null0"));
        let e = client
            .execute(&BlockdevDel { node_name: "null0" })
            .await
            .unwrap_err();
        assert!(e.is_qmp_error(), "{e}");
    }

    #[tokio::test]
    async fn thousand_concurrent_calls_on_one_connection() {
        if !have("qemu-system-x86_64") {
            return;
        }
        let mut qemu = system();
        let client = connect(&mut qemu).await;
        let mut tasks = Vec::new();
        for i in 0..1000usize {
            let c = client.clone();
            tasks.push(tokio::spawn(async move {
                match i % 3 {
                    0 => {
                        let v = c.execute(&QueryVersion {}).await.unwrap();
                        assert_eq!(v.qemu.major, 10);
                    }
                    1 => {
                        let s = c.execute(&QueryStatus {}).await.unwrap();
                        assert_eq!(s.status, "running");
                    }
                    _ => {
                        let v = c.execute_raw("query-name", None::<&()>).await.unwrap();
                        assert!(v.is_object() && v.get("qemu").is_none(), "{v}");
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }

    #[tokio::test]
    async fn accept_when_qemu_connects_to_us() {
        if !have("qemu-system-x86_64") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("listen.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let qemu = LocalQemu::spawn("qemu-system-x86_64", |_| {
            vec![
                "-M".into(),
                "none".into(),
                "-nodefaults".into(),
                "-display".into(),
                "none".into(),
                "-chardev".into(),
                format!("socket,id=mon,path={},server=off", path.display()),
                "-mon".into(),
                "chardev=mon,mode=control".into(),
            ]
        })
        .expect("qemu-system-x86_64");
        let mut config = Config::new();
        config.connect_timeout(Some(Duration::from_secs(20)));
        let client = config.accept_unix(&listener).await.unwrap();
        let v = client.execute(&QueryVersion {}).await.unwrap();
        assert_eq!(v.qemu.major, 10);
        drop(qemu);
    }

    #[tokio::test]
    async fn tcp_connection() {
        if !have("qemu-storage-daemon") {
            return;
        }
        // A free loopback port (QEMU cannot report the one it picks for port 0).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let _qemu = LocalQemu::spawn("qemu-storage-daemon", |_| {
            vec![
                "--chardev".into(),
                format!("socket,id=m,host=127.0.0.1,port={port},server=on,wait=off"),
                "--monitor".into(),
                "chardev=m".into(),
            ]
        })
        .expect("qemu-storage-daemon");
        let mut client = None;
        for _ in 0..200 {
            match Config::new().connect_tcp(("127.0.0.1", port)).await {
                Ok(c) => {
                    client = Some(c);
                    break;
                }
                Err(e) if e.kind() == qmp::ErrorKind::Io => {
                    tokio::time::sleep(Duration::from_millis(25)).await
                }
                Err(e) => panic!("{e}"),
            }
        }
        let client = client.expect("QEMU listens on TCP");
        assert!(!client.fd_passing());
        let v = client.execute(&QueryVersion {}).await.unwrap();
        assert_eq!(v.qemu.major, 10);
    }

    #[test]
    fn blocking_wrapper() {
        if !have("qemu-system-x86_64") {
            return;
        }
        let mut qemu = system();
        qemu.wait_for_socket(Duration::from_secs(10)).unwrap();
        let client = qmp::blocking::Client::connect_unix(&Config::new(), qemu.socket()).unwrap();
        let v = client.execute(&QueryVersion {}).unwrap();
        assert_eq!(v.qemu.major, 10);
        let mut stops = client.subscribe::<StopEvent>().unwrap();
        client.execute(&Stop {}).unwrap();
        stops
            .recv_timeout(Duration::from_secs(10))
            .expect("stream open")
            .expect("STOP event");
        let (_, _resume) = client
            .execute_and_wait(&Cont {}, |_: &ResumeEvent| true)
            .unwrap();
        assert!(client.execute(&QueryStatus {}).unwrap().running);
        client.close().unwrap();
    }
}

mod events {
    use super::*;

    #[tokio::test]
    async fn stop_and_cont_with_events() {
        if !have("qemu-system-x86_64") {
            return;
        }
        let mut qemu = system();
        let client = connect(&mut qemu).await;
        let mut all = client.subscribe_raw();
        // STOP may arrive before or after the reply: subscribing first catches it either way.
        let (_, _stop) = client
            .execute_and_wait(&Stop {}, |_: &StopEvent| true)
            .await
            .unwrap();
        let s = client.execute(&QueryStatus {}).await.unwrap();
        assert!(!s.running);
        assert_eq!(s.status, "paused");
        let (_, _resume) = client
            .execute_and_wait(&Cont {}, |_: &ResumeEvent| true)
            .await
            .unwrap();
        assert!(client.execute(&QueryStatus {}).await.unwrap().running);
        let first = all.next().await.unwrap().unwrap();
        assert_eq!(first.name(), "STOP");
        assert!(first.timestamp().seconds > 0);
        let second = all.next().await.unwrap().unwrap();
        assert_eq!(second.name(), "RESUME");
    }

    #[tokio::test]
    async fn block_job_followed_to_completion() {
        if !have("qemu-storage-daemon") {
            return;
        }
        let mut qemu = storage_daemon();
        let image = qemu.dir().join("disk.qcow2");
        std::fs::File::create(&image).unwrap();
        let client = connect(&mut qemu).await;
        client
            .execute_raw(
                "blockdev-add",
                Some(&json!({"driver": "file", "node-name": "file0",
                             "filename": image.to_str().unwrap()})),
            )
            .await
            .unwrap();
        let create = BlockdevCreate {
            job_id: "create0".into(),
            options: json!({"driver": "qcow2", "file": "file0", "size": 1_048_576}),
        };
        let (_, concluded) = tokio::time::timeout(
            Duration::from_secs(30),
            client.execute_and_wait(&create, |e: &JobStatusChange| {
                e.id == "create0" && e.status == "concluded"
            }),
        )
        .await
        .expect("job concludes")
        .unwrap();
        assert_eq!(concluded.status, "concluded");
        let (_, gone) = client
            .execute_and_wait(&JobDismiss { id: "create0" }, |e: &JobStatusChange| {
                e.id == "create0" && e.status == "null"
            })
            .await
            .unwrap();
        assert_eq!(gone.status, "null");
        // The image now is a qcow2 file.
        let mut magic = [0u8; 4];
        std::io::Read::read_exact(&mut std::fs::File::open(&image).unwrap(), &mut magic).unwrap();
        assert_eq!(&magic, b"QFI\xfb");
    }
}

/// Makes QEMU's main loop block in `blockdev-add` (blkdebug opening its config file, a
/// FIFO nobody writes yet), as QEMU's own qmp-test does, until [`Blocker::release`].
struct Blocker {
    fifo: PathBuf,
}

impl Blocker {
    fn new(dir: &Path) -> Blocker {
        let fifo = dir.join("block.fifo");
        let status = Process::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(status.success());
        Blocker { fifo }
    }

    fn args(&self, node: &str) -> Value {
        json!({"driver": "blkdebug", "node-name": node,
               "config": self.fifo.to_str().unwrap(),
               "image": {"driver": "null-co"}})
    }

    /// Opens the FIFO for writing and closes it: the blocked open returns, reads EOF.
    async fn release(&self) {
        let fifo = self.fifo.clone();
        tokio::task::spawn_blocking(move || {
            drop(std::fs::OpenOptions::new().write(true).open(fifo))
        })
        .await
        .unwrap();
    }
}

mod oob {
    use super::*;

    #[tokio::test]
    async fn exec_oob_overtakes_a_blocked_in_band_command() {
        if !have("qemu-system-x86_64") {
            return;
        }
        let mut qemu = system();
        let client = connect(&mut qemu).await;
        assert!(client.oob_enabled());
        let blocker = Blocker::new(qemu.dir());
        let blocked = {
            let c = client.clone();
            let args = blocker.args("blocked0");
            tokio::spawn(async move { c.execute_raw("blockdev-add", Some(&args)).await })
        };
        // Give the in-band command time to reach QEMU and block its main loop.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!blocked.is_finished());
        // Not migrating, so migrate-pause fails, but it is answered at once, out of band.
        let oob = tokio::time::timeout(
            Duration::from_secs(10),
            client.execute_oob(&MigratePause {}),
        )
        .await
        .expect("the oob command is answered while the in-band one blocks");
        let e = oob.unwrap_err();
        assert!(e.is_qmp_error(), "{e}");
        assert!(
            !blocked.is_finished(),
            "the in-band command is still blocked"
        );
        blocker.release().await;
        let r = tokio::time::timeout(Duration::from_secs(10), blocked)
            .await
            .expect("in-band command completes")
            .unwrap();
        r.unwrap();
    }

    #[tokio::test]
    async fn qemu_killed_during_calls() {
        if !have("qemu-system-x86_64") {
            return;
        }
        let mut qemu = system();
        let client = connect(&mut qemu).await;
        let blocker = Blocker::new(qemu.dir());
        let mut pending = Vec::new();
        {
            let c = client.clone();
            let args = blocker.args("blocked1");
            pending.push(tokio::spawn(async move {
                c.execute_raw("blockdev-add", Some(&args)).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        for _ in 0..20 {
            let c = client.clone();
            pending.push(tokio::spawn(async move {
                c.execute_raw("query-status", None::<&()>).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(pending.iter().all(|t| !t.is_finished()));
        qemu.child().kill().unwrap();
        let mut first_kind = None;
        for t in pending {
            let r = tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("no caller hangs")
                .unwrap();
            let e = r.unwrap_err();
            assert!(e.is_closed(), "{e}");
            // Everyone sees the same (first) error, named after its own command (the
            // text goes on with whether that call was sent: it differs per caller).
            let cmd = e.command().expect("the error names the caller's command");
            let text = e.to_string();
            assert!(text.starts_with(&format!("`{cmd}` was ")), "{text}");
            let cause = (e.kind(), e.is_peer_gone(), e.as_io().map(|io| io.kind()));
            match first_kind {
                None => first_kind = Some(cause),
                Some(ref k) => assert_eq!(k, &cause, "{text}"),
            }
        }
        assert!(client
            .execute(&QueryVersion {})
            .await
            .unwrap_err()
            .is_closed());
        drop(qemu);
        // A new connection (to a new QEMU) works.
        let mut qemu2 = system();
        let client2 = connect(&mut qemu2).await;
        assert_eq!(
            client2.execute(&QueryVersion {}).await.unwrap().qemu.major,
            10
        );
    }
}

mod fds {
    use super::*;

    #[derive(Serialize)]
    struct GetFd<'a> {
        fdname: &'a str,
    }
    impl Command for GetFd<'_> {
        const NAME: &'static str = "getfd";
        type Reply = qmp::Empty;
    }

    #[tokio::test]
    async fn getfd_and_add_fd_then_query_fdsets() {
        if !have("qemu-system-x86_64") {
            return;
        }
        let mut qemu = system();
        let client = connect(&mut qemu).await;
        assert!(client.fd_passing());
        let file = std::fs::File::create(qemu.dir().join("passed")).unwrap();
        client
            .execute_with_fds(&GetFd { fdname: "fd0" }, vec![file.into()])
            .await
            .unwrap();
        // The name exists now: closing it works, closing it again fails.
        client
            .execute_raw("closefd", Some(&json!({"fdname": "fd0"})))
            .await
            .unwrap();
        assert!(client
            .execute_raw("closefd", Some(&json!({"fdname": "fd0"})))
            .await
            .unwrap_err()
            .is_qmp_error());
        // getfd without an fd is refused by QEMU.
        assert!(client
            .execute(&GetFd { fdname: "nofd" })
            .await
            .unwrap_err()
            .is_qmp_error());

        let f1 = std::fs::File::open("/dev/null").unwrap();
        let info = client
            .execute_raw_with_fds(
                "add-fd",
                Some(&json!({"fdset-id": 3, "opaque": "ours"})),
                vec![f1.into()],
            )
            .await
            .unwrap();
        assert_eq!(info["fdset-id"], 3);
        let sets = client
            .execute_raw("query-fdsets", None::<&()>)
            .await
            .unwrap();
        let set = sets
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["fdset-id"] == 3)
            .expect("fdset 3 exists");
        assert_eq!(set["fds"][0]["opaque"], "ours");
        assert_eq!(set["fds"][0]["fd"], info["fd"]);
    }
}

/// `LocalQemu::system`: a `pc` machine (TCG, paused) with the disk and NIC `System`
/// adds, and the same machine from QEMU 7.2 when `scripts/setup-old-qemu` unpacked it.
#[tokio::test]
async fn a_pc_machine_has_its_disk_and_nic() {
    if !have("qemu-system-x86_64") || !have("qemu-img") {
        return;
    }
    let pc = qmp::local::System::new("pc")
        .accel("tcg")
        .paused()
        .disk(16 << 20)
        .nic();
    let old_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/old-qemu/7.2");
    let mut machines = vec![("10.0", pc.clone())];
    match qmp::local::OldQemu::open(&old_dir) {
        Ok(old) => machines.push(("7.2", pc.release(&old))),
        Err(e) => println!("QEMU 7.2 not tried (scripts/setup-old-qemu): {e}"),
    }
    for (release, machine) in machines {
        let mut qemu = LocalQemu::system(&machine).expect("qemu-system-x86_64");
        let client = connect(&mut qemu).await;
        let version = &client.greeting().qmp.version.qemu;
        assert_eq!(format!("{}.{}", version.major, version.minor), release);
        let status = client
            .execute_raw("query-status", None::<&()>)
            .await
            .unwrap();
        assert_eq!(status["status"], "prelaunch", "{release}: -S");
        let block = client
            .execute_raw("query-block", None::<&()>)
            .await
            .unwrap();
        let disk = &block.as_array().unwrap()[0];
        assert_eq!(disk["device"], "disk0", "{release}: {block}");
        assert_eq!(disk["inserted"]["drv"], "qcow2", "{release}: {block}");
        let pci = client.execute_raw("query-pci", None::<&()>).await.unwrap();
        assert!(
            pci.to_string().contains("\"qdev_id\":\"nic0\""),
            "{release}: no e1000 nic0 in {pci}"
        );
        client.close().await;
    }
}
