//! Secrets stay secret: a session that adds a `secret` object is recorded to a file
//! only its owner can read, with the secret redacted; the `qmp::wire` trace log at its
//! most verbose does not show the secret either; and the transcript still replays.
//! `tests/qmp_cli.rs` does the same through `qmp --record` against real QEMU.

mod server_support;

use std::sync::{Arc, Mutex};

use qmp::secrets::REDACTED;
use qmp::server::replay::Replay;
use qmp::server::transcript::Recorder;
use qmp::server::Server;
use qmp::Config;
use serde_json::{json, Value};
use server_support::HANG;

const SECRET: &str = "hunter2";

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(HANG, f).await.expect("hung")
}

/// A subscriber that enables everything (every target, every level, every span) and
/// keeps the text of every field of every event and span: the most verbose log any
/// subscriber could write.
#[derive(Clone, Default)]
struct CaptureAll(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl tracing::Subscriber for CaptureAll {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut log = self.0.lock().unwrap();
        span.record(&mut Fields(&mut log));
        log.push('\n');
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut log = self.0.lock().unwrap();
        values.record(&mut Fields(&mut log));
        log.push('\n');
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut log = self.0.lock().unwrap();
        log.push_str(event.metadata().target());
        event.record(&mut Fields(&mut log));
        log.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn secret_object() -> Value {
    json!({"qom-type": "secret", "id": "sec0", "data": SECRET})
}

fn object_server() -> Server {
    Server::builder()
        .handle_raw("object-add", false, |_ctx, _args| async { Ok(json!({})) })
        .build()
}

/// Records one `object-add` of a secret into `path` through the client's hook, with
/// every trace event captured; returns the log.
async fn record_session(path: &std::path::Path, keep: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let server = object_server();
    let _listening = server.listen_unix(dir.path().join("s.sock")).await.unwrap();
    let log = CaptureAll::default();
    let _guard = tracing::subscriber::set_default(log.clone());
    let mut config = Config::new();
    config.traffic_hook(Arc::new(Recorder::create(path).unwrap().keep_secrets(keep)));
    let c = bounded(config.connect_unix(dir.path().join("s.sock")))
        .await
        .unwrap();
    let r = bounded(c.execute_raw("object-add", Some(&secret_object())))
        .await
        .unwrap();
    assert_eq!(r, json!({}));
    drop(c);
    let text = log.0.lock().unwrap().clone();
    text
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// A current-thread runtime: the connection's tasks run on this thread, where the
// capturing subscriber is the default.
#[tokio::test(flavor = "current_thread")]
async fn a_recorded_secret_is_owner_only_redacted_untraced_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.jsonl");
    let log = record_session(&path, false).await;

    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600, "transcript mode");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains(REDACTED) && text.contains("sec0"), "{text}");

    // The trace was on (the request was logged as sent) but without the secret.
    assert!(
        log.contains("qmp::wire") && log.contains("object-add") && log.contains(REDACTED),
        "{log}"
    );
    assert!(!log.contains(SECRET), "{log}");

    // The transcript replays: the same request, and one with another secret value
    // (the recording does not know the value any more), both answered.
    for data in [SECRET, "another"] {
        let replay_dir = tempfile::tempdir().unwrap();
        let server = Server::builder()
            .replay(Replay::from_file(&path).unwrap())
            .build();
        let sock = replay_dir.path().join("r.sock");
        let _listening = server.listen_unix(&sock).await.unwrap();
        let c = bounded(qmp::connect_unix(&sock)).await.unwrap();
        let args = json!({"qom-type": "secret", "id": "sec0", "data": data});
        let r = bounded(c.execute_raw("object-add", Some(&args))).await;
        assert_eq!(r.unwrap(), json!({}), "replay with data {data}");
        // Redaction hides only the secret: another id is another request.
        let args = json!({"qom-type": "secret", "id": "sec1", "data": data});
        let err = bounded(c.execute_raw("object-add", Some(&args)))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no recorded request"), "{err}");
    }
}

#[tokio::test(flavor = "current_thread")]
async fn keeping_secrets_is_an_explicit_choice_and_still_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.jsonl");
    let log = record_session(&path, true).await;
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600, "transcript mode");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(SECRET), "{text}");
    // The trace log redacts whatever the recorder keeps.
    assert!(!log.contains(SECRET), "{log}");
}
