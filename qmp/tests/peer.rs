//! Knowing the peer (`qmp::peer`): libvirt's schema probes against QEMU 10.0 and 7.2,
//! and the client's one shared fetch of `query-qmp-schema`.
//!
//! * [`PROBES`]: probes from libvirt's `virQEMUCapsQMPSchemaQueries` table
//!   (`src/qemu/qemu_capabilities.c`, libvirt 11.3) and its own tests
//!   (`tests/qemumonitorjsontest.c`), plus commands, events and features that differ
//!   between the two releases, each with the answer for each release and the schema
//!   fact behind it (checked by hand in QEMU 7.2's sources,
//!   `target/old-schemas/7.2/qapi/`, and 10.0's, `../shared/qemu-10.0/qapi/`; for
//!   an x86_64 build, which is what the captures and the live QEMUs are).
//! * Offline, the table is checked against the captures in `schema/introspect/`;
//!   live, against `qemu-system-x86_64 -M none` of the installed QEMU 10.0 and of QEMU
//!   7.2 unpacked by `scripts/setup-old-qemu` (each skipped with a printed line when
//!   absent), through the async and the blocking client.
//! * Against the test server (`qmp::server`): concurrent first calls share one
//!   fetch, a failed fetch reaches every waiting caller and a later call retries, a
//!   cancelled fetching caller hands over, nothing is fetched unless asked, and
//!   calls the peer lacks are refused with no request reaching it.
#![cfg(feature = "server")]

#[path = "support/skip.rs"]
mod skip;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qmp::local::{installed, LocalQemu, OldQemu, System};
use qmp::server::{QmpError, Server};
use qmp::traffic::{Direction, TrafficHook};
use qmp::{Client, Command, Config, ErrorKind, Event, PeerSchema};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `(query, QEMU 10.0, QEMU 7.2, why)`.
const PROBES: &[(&str, bool, bool, &str)] = &[
    // libvirt's virQEMUCapsQMPSchemaQueries, in its order.
    ("blockdev-add/arg-type/+file/drop-cache", true, true,
     "BlockdevOptionsFile has '*drop-cache' (if CONFIG_LINUX) in both"),
    ("blockdev-add/arg-type/+nvme", true, true,
     "BlockdevOptions has branch 'nvme' (2.12) in both"),
    ("blockdev-add/arg-type/+file/aio/^io_uring", true, true,
     "BlockdevAioOptions lists 'io_uring' (5.0, if CONFIG_LINUX_IO_URING, which Debian builds) in both"),
    ("blockdev-add/arg-type/+rbd/encrypt", true, true,
     "BlockdevOptionsRbd has '*encrypt' (6.1) in both"),
    ("blockdev-add/arg-type/+rbd/encrypt/parent", true, false,
     "RbdEncryptionOptions' base gains '*parent' in 8.0; 7.2's base is only 'format'"),
    ("blockdev-add/arg-type/+rbd/encrypt/format/^luks-any", true, false,
     "RbdImageEncryptionFormat gains 'luks-any' in 8.0; 7.2 has luks, luks2"),
    ("blockdev-add/arg-type/+nbd/tls-hostname", true, true,
     "BlockdevOptionsNbd has '*tls-hostname' in both"),
    ("blockdev-add/arg-type/+qcow2/discard-no-unref", true, false,
     "BlockdevOptionsQcow2 gains '*discard-no-unref' in 8.1"),
    ("blockdev-add/arg-type/+virtio-blk-vhost-vdpa/$fdset", false, false,
     "branch 'virtio-blk-vhost-vdpa' is 'if': 'CONFIG_BLKIO' (7.2 and 10.0); Debian builds without libblkio, so the branch is absent"),
    ("calc-dirty-rate/arg-type/mode", true, true,
     "calc-dirty-rate has '*mode' (6.2) in both"),
    ("chardev-add/arg-type/backend/+socket/data/reconnect", true, true,
     "ChardevSocket has '*reconnect' in both (deprecated in 10.0, still listed)"),
    ("chardev-add/arg-type/backend/+socket/data/reconnect-ms", true, false,
     "ChardevSocket gains '*reconnect-ms' in 9.2"),
    ("chardev-add/arg-type/backend/+qemu-vdagent", true, true,
     "ChardevBackend has branch 'qemu-vdagent' (6.1, if CONFIG_SPICE_PROTOCOL) in both"),
    ("device_add/$json-cli-hotplug", true, true,
     "device_add has feature 'json-cli-hotplug' in both"),
    ("nbd-server-start/arg-type/tls-creds", true, true,
     "nbd-server-start has '*tls-creds' (2.6) in both"),
    ("netdev_add/arg-type/+stream", true, true,
     "Netdev has branch 'stream' (new in 7.2) in both"),
    ("netdev_add/arg-type/+stream/reconnect", true, false,
     "NetdevStreamOptions gains '*reconnect' in 8.0"),
    ("netdev_add/arg-type/+vhost-vdpa", true, true,
     "Netdev has branch 'vhost-vdpa' (5.1, if CONFIG_VHOST_VDPA) in both"),
    ("netdev_add/arg-type/type/^dgram", true, true,
     "NetClientDriver lists 'dgram' (new in 7.2) in both"),
    ("netdev_add/arg-type/+user", true, true,
     "Netdev has branch 'user' (if CONFIG_SLIRP) in both"),
    ("netdev_add/arg-type/+stream/reconnect-ms", true, false,
     "NetdevStreamOptions gains '*reconnect-ms' in 9.2"),
    ("object-add/arg-type/+sev-guest/kernel-hashes", true, true,
     "SevGuestProperties has '*kernel-hashes' (documented since 6.2; 7.0's sources have it) in both"),
    ("object-add/arg-type/+iothread/thread-pool-max", true, true,
     "EventLoopBaseProperties (IothreadProperties' base) has '*thread-pool-max' (7.1) in both"),
    ("query-display-options/ret-type/+egl-headless/rendernode", true, true,
     "DisplayEGLHeadless has '*rendernode' in both"),
    ("query-display-options/ret-type/+sdl", true, true,
     "DisplayOptions has branch 'sdl' (if CONFIG_SDL) in both"),
    ("query-display-options/ret-type/+egl-headless", true, true,
     "DisplayOptions has branch 'egl-headless' (if CONFIG_OPENGL) in both"),
    ("query-display-options/ret-type/+dbus", true, true,
     "DisplayOptions has branch 'dbus' (7.0, if CONFIG_DBUS_DISPLAY) in both"),
    ("query-hotpluggable-cpus/ret-type/props/die-id", true, true,
     "CpuInstanceProperties has '*die-id' in both; ret-type is an array, looked through"),
    ("query-hotpluggable-cpus/ret-type/props/cluster-id", true, true,
     "CpuInstanceProperties has '*cluster-id' in both"),
    ("query-migrate/ret-type/blocked-reasons", true, true,
     "MigrationInfo has '*blocked-reasons' (6.0) in both"),
    ("screendump/arg-type/device", true, true,
     "screendump has '*device' in both"),
    ("screendump/arg-type/format/^png", true, true,
     "ImageFormat lists 'png' in both"),
    ("set-numa-node/arg-type/+hmat-lb", true, true,
     "NumaOptions has branch 'hmat-lb' (5.0) in both"),
    ("query-cpu-model-expansion/ret-type/deprecated-props", false, false,
     "CpuModelExpansionInfo's 'deprecated-props' (9.1) is 'if': 'TARGET_S390X'; absent from x86_64 builds, and from 7.2"),
    ("migrate-incoming/arg-type/exit-on-error", true, false,
     "migrate-incoming gains '*exit-on-error' in 9.1"),
    // libvirt's own test cases (DO_TEST_QAPI_QUERY), on the real schemas.
    ("blockdev-add", true, true, "command blockdev-add (2.9)"),
    ("RTC_CHANGE", true, true, "event RTC_CHANGE"),
    ("block-commit/arg-type/*top", true, true, "block-commit's '*top' is optional"),
    ("block-commit/arg-type/*device", false, false,
     "block-commit's 'device' is required, so '*device' is false"),
    ("query-status/ret-type/status/^debug", true, true, "RunState lists 'debug'"),
    ("query-status/ret-type/status/^nonexistentdebug", false, false, "RunState has no such value"),
    ("query-qmp-schema/ret-type/name/!string", true, true,
     "SchemaInfo's 'name' is 'str' (array ret-type looked through)"),
    ("query-qmp-schema/ret-type/name/!number", false, false, "'name' is a string"),
    ("blockdev-add/arg-type/+qcow2/backing/!null", true, true,
     "BlockdevRefOrNull is an alternate with a 'null' alternative"),
    ("blockdev-add/arg-type/+qcow2/backing/+file/filename", true, true,
     "BlockdevRefOrNull's BlockdevOptions alternative, branch 'file', member 'filename'"),
    ("nonexistent", false, false, "no such entry"),
    ("screendump/arg-type/nonexistent", false, false, "no such member"),
    ("blockdev-add/arg-type/+nonexistent", false, false, "no such branch"),
    // Commands, events and features that differ between the releases.
    ("blockdev-set-active", true, false, "command blockdev-set-active is new in 10.0"),
    ("NETDEV_VHOST_USER_CONNECTED", true, false, "event new in 10.0"),
    ("query-migrationthreads/$deprecated", true, false,
     "query-migrationthreads is deprecated in 10.0; it first appears in 8.0's sources (its docs say 7.2, but 7.2 lacks it)"),
    ("blockdev-add/arg-type/driver/^gluster/$deprecated", true, false,
     "BlockdevDriver's 'gluster' has feature 'deprecated' in 10.0 (not yet in 9.1); a value feature (QEMU 6.2's members form)"),
    ("blockdev-add/arg-type/+file/$dynamic-auto-read-only", true, true,
     "BlockdevOptionsFile has type feature 'dynamic-auto-read-only' (if CONFIG_POSIX) in both"),
    ("blockdev-add/arg-type/+file/aio-max-batch", true, true,
     "BlockdevOptionsFile has '*aio-max-batch' in both"),
    ("x-query-virtio/$unstable", true, true, "x-query-virtio has feature 'unstable' in both"),
    ("query-cpus-fast/ret-type/arch/^x86", false, false,
     "CpuInfoFast lost 'arch' in 6.0 (it has 'target' instead)"),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn capture(release: &str) -> String {
    let path = repo().join(format!(
        "schema/introspect/qemu-system-x86_64-{release}.json"
    ));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every row, against one release's schema; all mismatches reported together.
fn check_table(release: &str, ask: impl Fn(&str) -> qmp::Result<bool>) {
    let mut wrong = Vec::new();
    for &(query, new, old, why) in PROBES {
        let want = if release == "10.0" { new } else { old };
        match ask(query) {
            Ok(got) if got == want => {}
            other => wrong.push(format!(
                "{release}: {query}: {other:?}, expected {want} ({why})"
            )),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn probe_table_has_at_least_25_rows_mixing_answers() {
    assert!(PROBES.len() >= 25);
    let differ = PROBES.iter().filter(|p| p.1 != p.2).count();
    let absent = PROBES.iter().filter(|p| !p.1 && !p.2).count();
    assert!(
        differ >= 8 && absent >= 5,
        "{differ} differ, {absent} absent from both"
    );
}

#[test]
fn probe_table_against_the_captures() {
    for release in ["10.0", "7.2"] {
        let schema = PeerSchema::from_json_str(&capture(release)).unwrap();
        check_table(release, |q| Ok(schema.probe(q).unwrap()));
    }
}

fn old_qemu() -> Option<OldQemu> {
    match OldQemu::open(repo().join("target/old-qemu/7.2")) {
        Ok(old) => Some(old),
        Err(e) => {
            skip::skipping(&format!("QEMU 7.2 (run scripts/setup-old-qemu): {e}"));
            None
        }
    }
}

/// `-M none` of each release there is, with its version string.
fn machines() -> Vec<(&'static str, System)> {
    let mut machines = Vec::new();
    if installed("qemu-system-x86_64") {
        machines.push(("10.0", System::new("none")));
    } else {
        skip::skipping("QEMU 10.0: qemu-system-x86_64 is not installed (scripts/setup-qemu)");
    }
    if let Some(old) = old_qemu() {
        machines.push(("7.2", System::new("none").release(&old)));
    }
    machines
}

#[derive(Serialize, Deserialize)]
struct QueryStatus {}
#[derive(Deserialize)]
struct StatusInfo {
    status: String,
}
impl Command for QueryStatus {
    const NAME: &'static str = "query-status";
    type Reply = StatusInfo;
}

#[derive(Serialize, Deserialize)]
struct BlockdevSetActive {
    active: bool,
}
impl Command for BlockdevSetActive {
    const NAME: &'static str = "blockdev-set-active";
    type Reply = qmp::Empty;
}

#[derive(Deserialize)]
struct NetdevVhostUserConnected {}
impl Event for NetdevVhostUserConnected {
    const NAME: &'static str = "NETDEV_VHOST_USER_CONNECTED";
}

#[derive(Deserialize)]
struct RtcChange {}
impl Event for RtcChange {
    const NAME: &'static str = "RTC_CHANGE";
}

#[tokio::test]
async fn probe_table_against_live_qemu() {
    for (release, machine) in machines() {
        let mut qemu = LocalQemu::system(&machine).expect("starting QEMU");
        let client = qemu.connect(&Config::new()).await.expect("connecting");
        let v = &client.greeting().qmp.version.qemu;
        assert_eq!(format!("{}.{}", v.major, v.minor), release);
        assert!(
            client.peer_schema_if_known().is_none(),
            "not fetched unasked"
        );
        // First question: fetches; then every row from memory.
        assert!(client.supports::<QueryStatus>().await.unwrap());
        let schema = client.peer_schema_if_known().expect("kept after supports");
        let table: Vec<bool> = {
            let mut answers = Vec::new();
            for &(query, ..) in PROBES {
                answers.push(client.supports_probe(query).await.unwrap());
            }
            answers
        };
        check_table(release, |q| {
            let i = PROBES.iter().position(|p| p.0 == q).unwrap();
            Ok(table[i])
        });
        // The same answers as the capture made from the same release.
        let captured = PeerSchema::from_json_str(&capture(release)).unwrap();
        for &(query, ..) in PROBES {
            assert_eq!(
                schema.probe(query),
                captured.probe(query),
                "{release}: {query}"
            );
        }
        let newer = release == "10.0";
        assert_eq!(client.supports::<BlockdevSetActive>().await.unwrap(), newer);
        assert_eq!(
            client
                .supports_event::<NetdevVhostUserConnected>()
                .await
                .unwrap(),
            newer
        );
        assert!(client.supports_event::<RtcChange>().await.unwrap());
        assert_eq!(
            client
                .supports_member::<BlockdevSetActive>("active")
                .await
                .unwrap(),
            newer
        );
        assert!(client
            .supports_member::<QueryStatus>("nonexistent")
            .await
            .map(|b| !b)
            .unwrap());
        let e = client
            .supports_probe("query-status/$a/b")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Probe);
        assert_eq!(e.probe_error().unwrap().index, 1);
        // A typed call the peer has is sent and answered.
        assert!(!client
            .execute(&QueryStatus {})
            .await
            .unwrap()
            .status
            .is_empty());
        client.close().await;
    }
}

#[test]
fn probe_table_through_the_blocking_client() {
    for (release, machine) in machines() {
        let mut qemu = LocalQemu::system(&machine).expect("starting QEMU");
        qemu.wait_for_socket(Duration::from_secs(10))
            .expect("QEMU listening");
        let client =
            qmp::blocking::Client::connect_unix(&Config::new(), qemu.socket()).expect("connecting");
        assert!(client.peer_schema_if_known().is_none());
        check_table(release, |q| client.supports_probe(q));
        let newer = release == "10.0";
        assert_eq!(client.supports::<BlockdevSetActive>().unwrap(), newer);
        assert_eq!(
            client.supports_event::<NetdevVhostUserConnected>().unwrap(),
            newer
        );
        assert!(!client
            .supports_value::<QueryStatus>("nonexistent", "x")
            .unwrap());
        let e = client.execute(&BlockdevSetActive { active: true });
        match release {
            "7.2" => {
                let e = e.unwrap_err();
                assert!(e.is_unsupported(), "{e}");
                assert_eq!(e.unsupported_by_peer(), Some("the command"));
            }
            // -M none has no block node: QEMU's own answer, sent and refused there.
            _ => assert!(e.is_ok() || e.unwrap_err().is_qmp_error()),
        }
        client.close().unwrap();
    }
}

// Against the test server.

/// Every request line the server read, by command name.
#[derive(Default)]
struct Requests(Mutex<Vec<String>>);

impl TrafficHook for Requests {
    fn message(&self, dir: Direction, line: &str) {
        if dir == Direction::ToServer {
            let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
            let name = v["execute"]
                .as_str()
                .or(v["exec-oob"].as_str())
                .unwrap_or("?");
            self.0.lock().unwrap().push(name.to_owned());
        }
    }
}

impl Requests {
    fn count(&self, name: &str) -> usize {
        self.0.lock().unwrap().iter().filter(|n| *n == name).count()
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A server with QEMU 7.2's schema (served, and checked like QEMU would), answering
/// `query-qmp-schema` after `delay`; failing it while `failures` lasts.
fn server_72(requests: Arc<Requests>, delay: Duration, failures: Arc<AtomicUsize>) -> Server {
    let text = capture("7.2");
    let reply: Value = serde_json::from_str(&text).unwrap();
    let schema = qmp::schema_check::Schema::from_json_str(&text).unwrap();
    Server::builder()
        .version(7, 2, 22)
        .package("Debian 1:7.2+dfsg-7+deb12u18")
        .schema(schema)
        .traffic_hook(requests)
        .handle_raw("query-qmp-schema", false, move |_ctx, _args| {
            let reply = reply.clone();
            let failures = failures.clone();
            async move {
                tokio::time::sleep(delay).await;
                let fail = failures
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if fail {
                    return Err(QmpError::generic("not now"));
                }
                Ok(reply)
            }
        })
        .handle_raw("query-status", false, |_ctx, _args| async move {
            Ok(json!({"status": "running", "running": true}))
        })
        .handle_raw(
            "blockdev-add",
            false,
            |_ctx, _args| async move { Ok(json!({})) },
        )
        .build()
}

async fn connect(server: &Server, config: &Config) -> Client {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let server = server.clone();
    tokio::spawn(async move { server.serve_stream(theirs).await });
    config.connect_stream(ours).await.expect("connecting")
}

#[tokio::test]
async fn nothing_is_fetched_unless_asked() {
    let requests = Arc::new(Requests::default());
    let server = server_72(requests.clone(), Duration::ZERO, Default::default());
    let client = connect(&server, &Config::new()).await;
    for _ in 0..3 {
        client.execute(&QueryStatus {}).await.unwrap();
    }
    // A command 7.2 lacks is sent (nothing known to refuse it with), QEMU refuses.
    let e = client
        .execute(&BlockdevSetActive { active: true })
        .await
        .unwrap_err();
    assert_eq!(e.qmp_error().unwrap().class, "CommandNotFound");
    assert!(client.peer_schema_if_known().is_none());
    assert_eq!(
        requests.count("query-qmp-schema"),
        0,
        "{:?}",
        requests.all()
    );
}

#[tokio::test]
async fn concurrent_first_calls_share_one_fetch() {
    let requests = Arc::new(Requests::default());
    let server = server_72(
        requests.clone(),
        Duration::from_millis(100),
        Default::default(),
    );
    let client = connect(&server, &Config::new()).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let c = client.clone();
            tokio::spawn(async move {
                match i % 4 {
                    0 => c.supports::<QueryStatus>().await,
                    1 => c.supports_event::<RtcChange>().await,
                    2 => c.supports_probe("blockdev-add/arg-type/+nvme").await,
                    _ => c.peer_schema().await.map(|s| s.has_command("query-status")),
                }
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().unwrap());
    }
    assert_eq!(requests.count("query-qmp-schema"), 1);
    // Later questions are answered from memory; handles share the schema.
    assert!(!client.supports::<BlockdevSetActive>().await.unwrap());
    let a = client.peer_schema().await.unwrap();
    let b = client.clone().peer_schema_if_known().unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(requests.count("query-qmp-schema"), 1);
    // Another connection to an identical peer shares the parsed schema.
    let other = connect(&server, &Config::new()).await;
    let c = other.peer_schema().await.unwrap();
    assert!(Arc::ptr_eq(&a, &c));
    assert_eq!(
        requests.count("query-qmp-schema"),
        2,
        "fetched once per connection"
    );
}

#[tokio::test]
async fn a_failed_fetch_reaches_every_waiter_and_a_later_call_retries() {
    let requests = Arc::new(Requests::default());
    let failures = Arc::new(AtomicUsize::new(1));
    let server = server_72(requests.clone(), Duration::from_millis(100), failures);
    let client = connect(&server, &Config::new()).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.supports::<QueryStatus>().await })
        })
        .collect();
    for t in tasks {
        let e = t.await.unwrap().unwrap_err();
        assert_eq!(e.qmp_error().unwrap().desc, "not now", "{e}");
        assert_eq!(e.command(), Some("query-qmp-schema"));
    }
    assert_eq!(requests.count("query-qmp-schema"), 1);
    assert!(client.peer_schema_if_known().is_none());
    assert!(client.supports::<QueryStatus>().await.unwrap());
    assert_eq!(requests.count("query-qmp-schema"), 2);
}

#[tokio::test]
async fn a_cancelled_fetch_hands_over_to_a_waiting_caller() {
    let requests = Arc::new(Requests::default());
    let server = server_72(
        requests.clone(),
        Duration::from_millis(200),
        Default::default(),
    );
    let client = connect(&server, &Config::new()).await;
    // The first caller sends the request, then gives up (its future dropped) while
    // another caller waits for it: the waiting caller fetches anew.
    let leader = {
        let c = client.clone();
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_millis(50), c.peer_schema()).await
        })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(requests.count("query-qmp-schema"), 1, "the leader sent it");
    let waiter = {
        let c = client.clone();
        tokio::spawn(async move { c.supports::<QueryStatus>().await })
    };
    assert!(leader.await.unwrap().is_err(), "the leader timed out");
    assert!(waiter.await.unwrap().unwrap());
    assert!(client.peer_schema_if_known().is_some());
    assert_eq!(requests.count("query-qmp-schema"), 2);
}

#[tokio::test]
async fn the_schema_fetched_at_connect_refuses_from_the_first_call() {
    let requests = Arc::new(Requests::default());
    let server = server_72(requests.clone(), Duration::ZERO, Default::default());
    let client = connect(&server, Config::new().fetch_peer_schema(true)).await;
    assert!(client.peer_schema_if_known().is_some());
    let e = client
        .execute(&BlockdevSetActive { active: true })
        .await
        .unwrap_err();
    assert!(e.is_unsupported());
    assert_eq!(
        e.to_string(),
        "unsupported: the peer (QEMU 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)) has no \
         command 'blockdev-set-active'; not sent"
    );
    assert_eq!(requests.all(), ["qmp_capabilities", "query-qmp-schema"]);
}

#[derive(Serialize)]
struct BlockdevAdd(Value);
impl Command for BlockdevAdd {
    const NAME: &'static str = "blockdev-add";
    type Reply = qmp::Empty;
}

#[tokio::test]
async fn what_the_peer_lacks_is_refused_before_sending() {
    let requests = Arc::new(Requests::default());
    let server = server_72(requests.clone(), Duration::ZERO, Default::default());
    let client = connect(&server, &Config::new()).await;
    assert!(client.supports::<QueryStatus>().await.unwrap());
    let before = requests.all();
    let refused = [
        (
            json!({"driver": "file", "node-name": "n", "filename": "/x"}),
            None,
        ),
        (
            json!({"driver": "qcow2", "node-name": "n", "file": "f", "discard-no-unref": true}),
            Some("member 'discard-no-unref'"),
        ),
        (
            json!({"driver": "foo", "node-name": "n"}),
            Some("member 'driver' value 'foo'"),
        ),
        (
            json!({"driver": "rbd", "node-name": "n", "pool": "p", "image": "i",
                   "encrypt": {"format": "luks-any", "key-secret": "s"}}),
            Some("member 'encrypt.format' value 'luks-any'"),
        ),
    ];
    for (args, absent) in refused {
        let r = client.execute(&BlockdevAdd(args.clone())).await;
        match absent {
            None => {
                r.unwrap();
            }
            Some(absent) => {
                let e = r.unwrap_err();
                assert!(e.is_unsupported(), "{args}: {e}");
                assert_eq!(e.unsupported_by_peer(), Some(absent));
                assert_eq!(e.command(), Some("blockdev-add"));
                assert!(e.to_string().contains("QEMU 7.2.22"), "{e}");
            }
        }
    }
    // Only the one 7.2 accepts reached it.
    assert_eq!(requests.all()[before.len()..], ["blockdev-add"]);
    // Not absence (a wrong type): sent, and QEMU's checks answer.
    let e = client
        .execute(&BlockdevAdd(
            json!({"driver": "file", "node-name": 5, "filename": "/x"}),
        ))
        .await
        .unwrap_err();
    assert!(e.is_qmp_error(), "{e}");
    // Switched off per handle: sent, and QEMU refuses it.
    let e = client
        .with_refusal(false)
        .execute(&BlockdevSetActive { active: true })
        .await
        .unwrap_err();
    assert_eq!(e.qmp_error().unwrap().class, "CommandNotFound");
    assert!(client.refuses_unsupported() && !client.with_refusal(false).refuses_unsupported());
    // Raw calls are never refused.
    let e = client
        .execute_raw("blockdev-set-active", Some(&json!({"active": true})))
        .await
        .unwrap_err();
    assert!(e.is_qmp_error());
    assert_eq!(requests.count("blockdev-set-active"), 2);
    // Off for the connection.
    let off = connect(&server, Config::new().refuse_unsupported(false)).await;
    off.peer_schema().await.unwrap();
    let e = off
        .execute(&BlockdevSetActive { active: true })
        .await
        .unwrap_err();
    assert!(e.is_qmp_error());
    assert_eq!(requests.count("blockdev-set-active"), 3);
}
