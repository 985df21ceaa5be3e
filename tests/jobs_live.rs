//! `qemu_qapi::jobs::run` against a real `qemu-storage-daemon` (QEMU 10.0), each test
//! with its own daemon in a private directory: a `blockdev-create` that succeeds and
//! one into a missing directory (QEMU's text in full, the job dismissed either way),
//! commands QEMU refuses up front (a missing node, a job id in use), block jobs QEMU
//! dismisses itself (a backup that succeeds, one that fails on a read error), one
//! started with `auto-finalize: false` (finalized by the helper), a mirror (completed
//! when ready), a cancelled backup, and the daemon killed while a job runs.
//! Skipped (with a line) where the daemon is not installed.
#![cfg(feature = "cli")]

#[path = "support/skip.rs"]
mod skip;

use std::time::Duration;

use qemu_qapi::commands::{BlockdevBackup, BlockdevCreate, BlockdevMirror, QueryVersion};
use qemu_qapi::jobs::{self, Error, JobOutcome};
use qemu_qapi::qmp::{self, local::LocalQemu, Client};
use qemu_qapi::types::{
    self, BlockdevCreateOptions, BlockdevCreateOptionsBranch, BlockdevCreateOptionsFile,
    MirrorSyncMode,
};
use serde_json::{json, Value};

/// How long one job may take here (they take milliseconds).
const WITHIN: Duration = Duration::from_secs(30);

async fn daemon() -> Option<(LocalQemu, Client)> {
    if !qmp::local::installed("qemu-storage-daemon") {
        skip::skipping("qemu-storage-daemon is not installed (scripts/setup-qemu)");
        return None;
    }
    let mut qsd = LocalQemu::storage_daemon().expect("starting qemu-storage-daemon");
    let client = qsd
        .connect(qmp::Config::new().call_timeout(Some(WITHIN)))
        .await
        .expect("connecting to qemu-storage-daemon");
    Some((qsd, client))
}

fn create_file(job_id: &str, path: &str, size: u64) -> BlockdevCreate {
    let file = BlockdevCreateOptionsFile::new(path.to_owned(), size);
    BlockdevCreate::new(
        job_id.to_owned(),
        BlockdevCreateOptions::new(BlockdevCreateOptionsBranch::File(file)),
    )
}

/// A full backup of `device` to `target`, as job `id`.
fn backup(id: &str, device: &str, target: &str) -> types::BlockdevBackup {
    types::BlockdevBackup::new(device.to_owned(), MirrorSyncMode::Full, target.to_owned())
        .with_job_id(id.to_owned())
}

/// Asserts what a successful job's outcome says.
#[track_caller]
fn assert_outcome(done: &JobOutcome, id: &str, job_type: &str, auto_dismissed: bool) {
    assert_eq!(
        (
            done.id.as_str(),
            done.job_type.as_str(),
            done.auto_dismissed
        ),
        (id, job_type, auto_dismissed),
        "{done:?}"
    );
}

async fn run<C: qmp::Command>(client: &Client, cmd: &C, id: &str) -> Result<JobOutcome, Error> {
    tokio::time::timeout(WITHIN, jobs::run(client, cmd, id))
        .await
        .expect("the job ends in time")
}

async fn raw(client: &Client, name: &str, args: Value) -> Value {
    client
        .execute_raw(name, Some(&args))
        .await
        .unwrap_or_else(|e| panic!("{name} {args}: {e}"))
}

/// The ids `query-jobs` lists.
async fn job_ids(client: &Client) -> Vec<String> {
    raw(client, "query-jobs", json!({}))
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A node reading zeroes, `size` bytes.
async fn null_node(client: &Client, name: &str, size: u64) {
    raw(
        client,
        "blockdev-add",
        json!({"driver": "null-co", "node-name": name, "size": size, "read-zeroes": true}),
    )
    .await;
}

#[tokio::test]
async fn a_created_file_succeeds_and_the_job_is_dismissed() {
    let Some((qsd, client)) = daemon().await else {
        return;
    };
    let path = qsd.dir().join("disk.raw");
    let cmd = create_file("create0", path.to_str().unwrap(), 1 << 20);
    let done = run(&client, &cmd, "create0")
        .await
        .expect("the job succeeds");
    assert_eq!(done.id, "create0");
    assert_eq!(done.job_type, "create");
    assert!(
        !done.auto_dismissed,
        "blockdev-create's job is dismissed by hand"
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 20);
    assert!(job_ids(&client).await.is_empty(), "the job was dismissed");
}

#[tokio::test]
async fn a_file_in_a_missing_directory_fails_with_qemus_text() {
    let Some((qsd, client)) = daemon().await else {
        return;
    };
    let path = qsd.dir().join("missing").join("x.img");
    let path = path.to_str().unwrap();
    let err = run(&client, &create_file("create1", path, 1 << 20), "create1")
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "job `create1` (create) failed: Could not create '{path}': No such file or directory"
        )
    );
    assert_eq!(
        err.job_error(),
        Some(format!("Could not create '{path}': No such file or directory").as_str())
    );
    assert!(
        job_ids(&client).await.is_empty(),
        "the failed job was dismissed"
    );
}

#[tokio::test]
async fn a_command_refused_up_front_returns_qemus_error() {
    let Some((_qsd, client)) = daemon().await else {
        return;
    };
    null_node(&client, "target0", 1 << 20).await;
    let cmd = BlockdevBackup::new(backup("backup0", "nosuch", "target0"));
    let err = run(&client, &cmd, "backup0").await.unwrap_err();
    let Error::Start {
        command,
        id,
        source,
    } = &err
    else {
        panic!("not a start error: {err:?}");
    };
    assert_eq!(
        (command.as_str(), id.as_str()),
        ("blockdev-backup", "backup0")
    );
    let qmp_error = source.qmp_error().expect("QEMU's error reply");
    assert_eq!(qmp_error.class, "GenericError");
    assert_eq!(
        qmp_error.desc,
        "Cannot find device='nosuch' nor node-name='nosuch'"
    );
    assert_eq!(
        err.to_string(),
        "could not start job `backup0`: QMP error from `blockdev-backup`: GenericError: \
         Cannot find device='nosuch' nor node-name='nosuch'"
    );
    assert!(job_ids(&client).await.is_empty());
}

#[tokio::test]
async fn a_job_id_in_use_is_refused_and_the_other_job_left_alone() {
    let Some((qsd, client)) = daemon().await else {
        return;
    };
    // A job that concluded and waits to be dismissed, as execute_and_wait leaves it.
    let first = qsd.dir().join("first.raw");
    let first = create_file("dup0", first.to_str().unwrap(), 4096);
    let mut events = client.subscribe_raw();
    client.execute(&first).await.unwrap();
    tokio::time::timeout(WITHIN, async {
        while let Some(ev) = events.next().await {
            let ev = ev.unwrap().to_value();
            if ev["event"] == "JOB_STATUS_CHANGE" && ev["data"]["status"] == "concluded" {
                return;
            }
        }
        panic!("the connection closed");
    })
    .await
    .expect("the first job concludes");
    let second = qsd.dir().join("second.raw");
    let err = run(
        &client,
        &create_file("dup0", second.to_str().unwrap(), 4096),
        "dup0",
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "could not start job `dup0`: QMP error from `blockdev-create`: GenericError: \
         Job ID 'dup0' already in use"
    );
    assert_eq!(
        job_ids(&client).await,
        ["dup0"],
        "the first job is still there"
    );
    assert!(!second.exists());
    raw(&client, "job-dismiss", json!({"id": "dup0"})).await;
}

#[tokio::test]
async fn a_job_id_other_than_the_commands_is_refused_before_sending() {
    let Some((qsd, client)) = daemon().await else {
        return;
    };
    let path = qsd.dir().join("never.raw");
    let err = run(
        &client,
        &create_file("create2", path.to_str().unwrap(), 4096),
        "other",
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`blockdev-create` names its job `create2`, but the job to follow was given as \
         `other`: pass the command's job-id"
    );
    assert!(!path.exists(), "nothing was sent");
}

#[tokio::test]
async fn a_command_that_starts_no_job_is_an_error() {
    let Some((_qsd, client)) = daemon().await else {
        return;
    };
    let err = run(&client, &QueryVersion, "job0").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "`query-version` started no job `job0` (QEMU sent no JOB_STATUS_CHANGE for it and \
         query-jobs does not list it): pass the id the command gives its job"
    );
}

#[tokio::test]
async fn a_backup_qemu_dismisses_itself_succeeds() {
    let Some((_qsd, client)) = daemon().await else {
        return;
    };
    null_node(&client, "src0", 1 << 20).await;
    null_node(&client, "dst0", 1 << 20).await;
    let cmd = BlockdevBackup::new(backup("backup1", "src0", "dst0"));
    let done = run(&client, &cmd, "backup1")
        .await
        .expect("the backup succeeds");
    // auto-dismiss is the default of block jobs.
    assert_outcome(&done, "backup1", "backup", true);
    assert!(job_ids(&client).await.is_empty());
}

#[tokio::test]
async fn a_backup_failing_on_a_read_error_reports_it() {
    let Some((_qsd, client)) = daemon().await else {
        return;
    };
    raw(
        &client,
        "blockdev-add",
        // A raw node over blkdebug: raw's reads fire blkdebug's `read_aio` event.
        // Not reading zeroes, so the backup cannot skip the reads as known zeroes.
        json!({"driver": "raw", "node-name": "bad0", "file": {
            "driver": "blkdebug",
            "inject-error": [{"event": "read_aio", "errno": 5}],
            "image": {"driver": "null-co", "size": 1 << 20}}}),
    )
    .await;
    null_node(&client, "dst1", 1 << 20).await;
    for (id, auto_dismiss) in [("backup2", true), ("backup3", false)] {
        let cmd = BlockdevBackup::new(backup(id, "bad0", "dst1").with_auto_dismiss(auto_dismiss));
        let err = run(&client, &cmd, id).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("job `{id}` (backup) failed: Input/output error"),
            "auto-dismiss {auto_dismiss}"
        );
        assert!(job_ids(&client).await.is_empty(), "{id} is gone");
    }
}

#[tokio::test]
async fn a_job_that_waits_to_be_finalized_is_finalized() {
    let Some((_qsd, client)) = daemon().await else {
        return;
    };
    null_node(&client, "src1", 1 << 20).await;
    null_node(&client, "dst2", 1 << 20).await;
    let cmd = BlockdevBackup::new(
        backup("backup4", "src1", "dst2")
            .with_auto_finalize(false)
            .with_auto_dismiss(false),
    );
    let done = run(&client, &cmd, "backup4")
        .await
        .expect("finalized, succeeds");
    assert_outcome(&done, "backup4", "backup", false);
    assert!(job_ids(&client).await.is_empty());
}

#[tokio::test]
async fn a_mirror_is_completed_when_ready() {
    let Some((_qsd, client)) = daemon().await else {
        return;
    };
    null_node(&client, "src2", 1 << 20).await;
    null_node(&client, "dst3", 1 << 20).await;
    let mirror = BlockdevMirror::new("src2".to_owned(), "dst3".to_owned(), MirrorSyncMode::Full)
        .with_job_id("mirror0".to_owned());
    let done = run(&client, &mirror, "mirror0")
        .await
        .expect("the mirror completes");
    assert_outcome(&done, "mirror0", "mirror", true);
}

/// A backup at one byte a second, which runs until stopped.
fn slow_backup(id: &str, target: &str) -> BlockdevBackup {
    BlockdevBackup::new(backup(id, "src3", target).with_speed(1))
}

#[tokio::test]
async fn a_cancelled_job_is_reported_cancelled() {
    let Some((_qsd, client)) = daemon().await else {
        return;
    };
    null_node(&client, "src3", 1 << 30).await;
    null_node(&client, "dst4", 1 << 30).await;
    let canceller = client.clone();
    let cancel = tokio::spawn(async move {
        // Cancels as soon as the job is listed.
        loop {
            if job_ids(&canceller).await.iter().any(|id| id == "slow0") {
                return canceller
                    .execute_raw("job-cancel", Some(&json!({"id": "slow0"})))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let err = run(&client, &slow_backup("slow0", "dst4"), "slow0")
        .await
        .unwrap_err();
    cancel.await.unwrap().expect("job-cancel");
    assert_eq!(err.to_string(), "job `slow0` (backup) was cancelled");
    assert!(job_ids(&client).await.is_empty());
}

#[tokio::test]
async fn a_disconnect_while_waiting_names_the_command() {
    let Some((mut qsd, client)) = daemon().await else {
        return;
    };
    null_node(&client, "src3", 1 << 30).await;
    null_node(&client, "dst5", 1 << 30).await;
    let follower = client.clone();
    let job =
        tokio::spawn(async move { run(&follower, &slow_backup("slow1", "dst5"), "slow1").await });
    // Kill the daemon once the job runs.
    tokio::time::timeout(WITHIN, async {
        while !job_ids(&client).await.iter().any(|id| id == "slow1") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the job starts");
    qsd.child().kill().unwrap();
    qsd.child().wait().unwrap();
    let err = job.await.unwrap().unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "job `slow1` (started by `blockdev-backup`): the connection closed while waiting \
             for the job: QEMU closed the connection"
        ),
        "{text}"
    );
    assert!(err.as_qmp().is_some_and(qmp::Error::is_closed), "{err:?}");
}

/// A job-starting command of the fake server below.
#[derive(serde::Serialize)]
struct FakeJob {
    #[serde(rename = "job-id")]
    job_id: String,
}

impl qmp::Command for FakeJob {
    const NAME: &'static str = "fake-job";
    type Reply = Value;
}

/// When events are missed (a flood fills the subscription), the job's state is read
/// from `query-jobs`: a concluded job's error is still found (and the job dismissed);
/// a job QEMU already removed, with no block event to say how it ended, is
/// `Vanished`. A scripted server plays QEMU: the job's events, a flood, then the end,
/// all before the reply, to a client buffering two events per subscription.
#[tokio::test]
async fn missed_events_are_made_up_for_by_query_jobs() {
    use std::sync::{Arc, Mutex};

    use qmp::server::Server;

    let dismissed = Arc::new(Mutex::new(Vec::<String>::new()));
    let dismissed_by_server = dismissed.clone();
    let server = Server::builder()
        .handle_raw("fake-job", false, |ctx, args| async move {
            let id = args["job-id"].clone();
            let status = |s: &str| Some(json!({"id": id, "status": s}));
            ctx.server
                .emit_raw_to(ctx.client, "JOB_STATUS_CHANGE", status("created"))
                .await;
            ctx.server
                .emit_raw_to(ctx.client, "JOB_STATUS_CHANGE", status("running"))
                .await;
            for _ in 0..10 {
                ctx.server.emit_raw_to(ctx.client, "NOISE", None).await;
            }
            ctx.server
                .emit_raw_to(ctx.client, "JOB_STATUS_CHANGE", status("concluded"))
                .await;
            Ok(json!({}))
        })
        .handle_raw("query-jobs", false, |_ctx, _args| async {
            // `kept0` concluded with an error; `gone0` was dismissed by QEMU.
            Ok(
                json!([{"id": "kept0", "type": "create", "status": "concluded",
                       "current-progress": 1, "total-progress": 1, "error": "boom"}]),
            )
        })
        .handle_raw("job-dismiss", false, move |_ctx, args| {
            let dismissed = dismissed_by_server.clone();
            async move {
                dismissed
                    .lock()
                    .unwrap()
                    .push(args["id"].as_str().unwrap().to_owned());
                Ok(json!({}))
            }
        })
        .build();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("fake.sock");
    let _listening = server.listen_unix(&sock).await.unwrap();
    let client = qmp::Config::new()
        .event_capacity(2)
        .connect_unix(&sock)
        .await
        .unwrap();
    let kept = FakeJob {
        job_id: "kept0".into(),
    };
    let err = run(&client, &kept, "kept0").await.unwrap_err();
    assert_eq!(err.to_string(), "job `kept0` (create) failed: boom");
    assert_eq!(*dismissed.lock().unwrap(), ["kept0"]);
    let gone = FakeJob {
        job_id: "gone0".into(),
    };
    let err = run(&client, &gone, "gone0").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "job `gone0` (started by `fake-job`) was dismissed by QEMU before its outcome could \
         be read (events were missed)"
    );
    assert_eq!(*dismissed.lock().unwrap(), ["kept0"], "nothing to dismiss");
}
