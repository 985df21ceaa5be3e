//! Running a background job to its end: [`run`](crate::jobs::run) sends a job-starting command
//! (`blockdev-create`, `blockdev-backup`, `drive-mirror`, `block-commit`,
//! `x-blockdev-amend`, `snapshot-save`, …), follows the job through its
//! `JOB_STATUS_CHANGE` events, and says whether it succeeded, with QEMU's error text
//! when it did not.
//!
//! Why a helper: QEMU answers a job-starting command at once with `{}`, and the job's
//! failure only shows later, in `query-jobs` (and, for block jobs, in
//! `BLOCK_JOB_COMPLETED`). Waiting for `concluded` with
//! [`qmp::Client::execute_and_wait`] therefore succeeds for a job that failed, and
//! leaves the concluded job in QEMU until someone sends `job-dismiss`.
//!
//! ```no_run
//! # async fn demo(client: &qemu_qapi::qmp::Client) -> Result<(), qemu_qapi::jobs::Error> {
//! use qemu_qapi::commands::BlockdevCreate;
//! use qemu_qapi::types::{BlockdevCreateOptions, BlockdevCreateOptionsBranch, BlockdevCreateOptionsFile};
//!
//! let file = BlockdevCreateOptionsFile::new("/var/lib/vm/disk.raw".to_owned(), 1 << 30);
//! let options = BlockdevCreateOptions::new(BlockdevCreateOptionsBranch::File(file));
//! let cmd = BlockdevCreate::new("create0".to_owned(), options);
//! match qemu_qapi::jobs::run(client, &cmd, "create0").await {
//!     Ok(done) => println!("job `{}` ({}) done", done.id, done.job_type),
//!     // e.g. "job `create0` (create) failed: Could not create '/var/lib/vm/disk.raw':
//!     // No such file or directory"
//!     Err(e) => eprintln!("{e}"),
//! }
//! # Ok(()) }
//! ```
//!
//! The helper uses only [`qmp::Client::execute`] for the caller's command and JSON for
//! its own calls (`query-jobs`, `query-block-jobs`, `job-finalize`, `job-complete`,
//! `job-dismiss`) and for the events, so it works the same with the bindings of any
//! release (and with the storage daemon's): their typed job structs differ between
//! releases, the wire form does not.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;

use qmp::{Client, EventStream, RawEvent};
use serde_json::{json, Value};

/// A job that ran to its end and succeeded (see [`run`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobOutcome {
    /// The job's id.
    pub id: String,
    /// The job's type as QEMU names it (`create`, `mirror`, `backup`, …; see
    /// [`Error::Failed`] for where it comes from).
    pub job_type: String,
    /// True when QEMU removed the job itself (`auto-dismiss`, the default of block
    /// jobs); false when [`run`] dismissed it.
    pub auto_dismissed: bool,
}

/// Why [`run`] failed. Its `Display` names the job, and the command that started it
/// where the job's own type is not known.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// The job-starting command failed: QEMU refused it (a bad node, an id already in
    /// use, …; [`qmp::Error::qmp_error`] has QEMU's class and text), it could not be
    /// sent, or the connection closed before the reply. The job was not created,
    /// except when the call timed out after it was sent
    /// ([`qmp::Error::timeout_stage`]): the job may then exist.
    Start {
        /// The command's wire name, e.g. `blockdev-create`.
        command: String,
        /// The job id given to [`run`].
        id: String,
        /// The client's error.
        source: qmp::Error,
    },
    /// The command's own `job-id` is not the id given to [`run`], which would wait for
    /// a job that never comes. Nothing was sent.
    IdMismatch {
        /// The command's wire name.
        command: String,
        /// The id given to [`run`].
        given: String,
        /// The command's `job-id`.
        in_command: String,
    },
    /// QEMU accepted the command but no job with the given id appeared (no
    /// `JOB_STATUS_CHANGE` for it, and `query-jobs` does not list it): the command
    /// starts no job, or names its job otherwise (a block job started without
    /// `job-id` takes its device's name).
    NoJob {
        /// The command's wire name.
        command: String,
        /// The id given to [`run`].
        id: String,
    },
    /// The job ran and failed. The job has been dismissed (unless QEMU did it).
    Failed {
        /// The job's id.
        id: String,
        /// The job's type, from `query-jobs` (or `BLOCK_JOB_COMPLETED` for a job QEMU
        /// dismissed itself); the starting command's name when neither said.
        job_type: String,
        /// QEMU's error text, in full.
        error: String,
    },
    /// The job was cancelled (`job-cancel`, `block-job-cancel`): QEMU sent
    /// `BLOCK_JOB_CANCELLED` for it. The job has been dismissed (unless QEMU did it).
    Cancelled {
        /// The job's id.
        id: String,
        /// The job's type (as in [`Error::Failed`]).
        job_type: String,
    },
    /// QEMU removed the job (`auto-dismiss`) before its outcome could be read: events
    /// were missed and no `BLOCK_JOB_COMPLETED` or `BLOCK_JOB_CANCELLED` said how it
    /// ended.
    Vanished {
        /// The command that started it.
        command: String,
        /// The job's id.
        id: String,
    },
    /// Following the job failed after it started: the connection closed (or events
    /// were missed, see [`qmp::Error::is_lagged`]) while waiting, or one of the
    /// helper's own calls (`query-jobs`, `job-finalize`, `job-complete`,
    /// `job-dismiss`) failed or timed out. The job may still exist in QEMU.
    Follow {
        /// The command that started the job.
        command: String,
        /// The job's id.
        id: String,
        /// What the helper was doing, e.g. "waiting for the job to end".
        what: String,
        /// The client's error.
        source: qmp::Error,
    },
}

impl Error {
    /// The client's error, for [`Error::Start`] and [`Error::Follow`].
    pub fn as_qmp(&self) -> Option<&qmp::Error> {
        match self {
            Error::Start { source, .. } | Error::Follow { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The job's error text as QEMU gave it, for [`Error::Failed`].
    pub fn job_error(&self) -> Option<&str> {
        match self {
            Error::Failed { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Start { id, source, .. } => write!(f, "could not start job `{id}`: {source}"),
            Error::IdMismatch {
                command,
                given,
                in_command,
            } => write!(
                f,
                "`{command}` names its job `{in_command}`, but the job to follow was given as \
                 `{given}`: pass the command's job-id"
            ),
            Error::NoJob { command, id } => write!(
                f,
                "`{command}` started no job `{id}` (QEMU sent no JOB_STATUS_CHANGE for it and \
                 query-jobs does not list it): pass the id the command gives its job"
            ),
            Error::Failed {
                id,
                job_type,
                error,
            } => write!(f, "job `{id}` ({job_type}) failed: {error}"),
            Error::Cancelled { id, job_type } => write!(f, "job `{id}` ({job_type}) was cancelled"),
            Error::Vanished { command, id } => write!(
                f,
                "job `{id}` (started by `{command}`) was dismissed by QEMU before its outcome \
                 could be read (events were missed)"
            ),
            Error::Follow {
                command,
                id,
                what,
                source,
            } => write!(f, "job `{id}` (started by `{command}`): {what}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.as_qmp().map(|e| e as _)
    }
}

/// Runs a job-starting command and follows the job it starts, named `job_id`, to its
/// end: `Ok` when it succeeded, [`Error::Failed`] with QEMU's text when it failed.
///
/// In order:
/// 1. subscribes to events before sending `cmd`, so none of the job's is missed;
/// 2. sends `cmd` ([`qmp::Client::execute`]); its error is [`Error::Start`];
/// 3. follows the job's `JOB_STATUS_CHANGE` events. A job waiting in `pending`
///    because it was started with `auto-finalize: false` (as `query-block-jobs` says)
///    is finalized (`job-finalize`, which finalizes its whole transaction); a job
///    that reaches `ready` (a mirror, an active commit) is completed (`job-complete`):
///    `run` is for jobs that run to their end, so to keep a mirror in sync, follow it
///    yourself;
/// 4. when it is `concluded`, reads its `error` from `query-jobs` and dismisses it
///    (`job-dismiss`). A job QEMU dismisses itself (`auto-dismiss`, the default of
///    block jobs) is gone from `query-jobs` by then: its outcome is read from
///    `BLOCK_JOB_COMPLETED` / `BLOCK_JOB_CANCELLED`, sent before it concluded.
///
/// Other events, and other jobs' events, are ignored; other calls on the same client
/// go on meanwhile. If events are missed (a flood of others filled the subscription),
/// the job's state is read again from `query-jobs` instead.
///
/// `job_id` is the id the job gets: the command's `job-id` (checked when the command
/// has one: [`Error::IdMismatch`]), or, for a block job started without one, its
/// device's or node's name.
///
/// # Timeouts and cancellation
/// Each call is bounded by the client's call timeout ([`qmp::Client::timeout`]), but
/// the wait for the job is not (a job may rightly run for hours): bound it with
/// `tokio::time::timeout` around this future. Dropping the future (a timeout, a
/// `select!`) stops following the job and nothing else: the job goes on in QEMU, and
/// then needs `job-cancel` and, once concluded, `job-dismiss` from the caller.
///
/// # Errors
/// [`Error::Start`] when the command fails (QEMU's own error reply among them);
/// [`Error::IdMismatch`] and [`Error::NoJob`] when `job_id` is not the command's job;
/// [`Error::Failed`] / [`Error::Cancelled`] when the job ends so (QEMU's text in
/// full); [`Error::Follow`] when the connection closes while waiting (naming the
/// command) or a follow-up call fails; [`Error::Vanished`] when the outcome was lost
/// with missed events.
pub async fn run<C: qmp::Command>(
    client: &Client,
    cmd: &C,
    job_id: &str,
) -> Result<JobOutcome, Error> {
    if let Some(in_command) = serde_json::to_value(cmd)
        .ok()
        .and_then(|v| v.get("job-id").and_then(Value::as_str).map(str::to_owned))
    {
        if in_command != job_id {
            return Err(Error::IdMismatch {
                command: C::NAME.into(),
                given: job_id.into(),
                in_command,
            });
        }
    }
    // Subscribed before sending, so the job's first events (sent before the reply)
    // are kept for us.
    let events = client.subscribe_raw();
    if let Err(source) = client.execute(cmd).await {
        return Err(Error::Start {
            command: C::NAME.into(),
            id: job_id.into(),
            source,
        });
    }
    Follower {
        client,
        events,
        command: C::NAME,
        id: job_id,
        started: false,
        job_type: None,
        block_end: None,
        finalized: false,
        completed: false,
        saw_end: false,
    }
    .follow()
    .await
}

/// How a block job ended, as its `BLOCK_JOB_*` event said.
#[derive(Debug)]
enum BlockEnd {
    Completed(Option<String>),
    Cancelled,
}

/// The job's status as the follower acts on it.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Keep waiting.
    Wait,
    /// It concluded (and may already be gone).
    Concluded,
    /// QEMU removed it.
    Gone,
}

struct Follower<'a> {
    client: &'a Client,
    events: EventStream<RawEvent>,
    command: &'static str,
    id: &'a str,
    /// Whether the job's `created` was seen: events for the same id before it belong
    /// to an earlier job of that name (its dismissal can still be in flight).
    started: bool,
    job_type: Option<String>,
    block_end: Option<BlockEnd>,
    finalized: bool,
    completed: bool,
    /// Whether an event said the job concluded or was removed (rather than its
    /// absence being noticed after missed events).
    saw_end: bool,
}

impl Follower<'_> {
    async fn follow(mut self) -> Result<JobOutcome, Error> {
        // QEMU sends the job's `created` before the command's reply, so it is queued
        // by now; when it is not, `query-jobs` decides whether the job exists.
        let mut step = Step::Wait;
        while let Some(item) = next_now(&mut self.events).await {
            step = self.on_event(item).await?;
            if step != Step::Wait {
                break;
            }
        }
        if !self.started {
            match self.query_job().await? {
                Some(job) => {
                    self.started = true;
                    step = self.on_status(&job).await?;
                }
                None => {
                    return Err(Error::NoJob {
                        command: self.command.into(),
                        id: self.id.into(),
                    })
                }
            }
        }
        while step == Step::Wait {
            let item = self.events.next().await;
            step = self.on_event(item).await?;
        }
        self.conclude(step).await
    }

    /// Acts on one item of the subscription (`None`: the connection closed).
    async fn on_event(&mut self, item: Option<qmp::Result<RawEvent>>) -> Result<Step, Error> {
        let ev = match item {
            Some(Ok(ev)) => ev,
            Some(Err(e)) if e.is_lagged() => {
                // The job's own events may be among those missed: read its state.
                return match self.query_job().await? {
                    Some(job) => {
                        self.started = true;
                        self.on_status(&job).await
                    }
                    None if self.started || self.block_end.is_some() => Ok(Step::Gone),
                    None => Err(self.follow_error("waiting for the job to end", e)),
                };
            }
            Some(Err(e)) => return Err(self.follow_error("waiting for the job to end", e)),
            None => {
                let e = self.client.closed().await;
                return Err(self.follow_error("the connection closed while waiting for the job", e));
            }
        };
        // Only these three events concern a job: the others' data is not parsed.
        if !matches!(
            ev.name(),
            "JOB_STATUS_CHANGE" | "BLOCK_JOB_COMPLETED" | "BLOCK_JOB_CANCELLED"
        ) {
            return Ok(Step::Wait);
        }
        let data: Value = ev
            .data_json()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or(Value::Null);
        match ev.name() {
            "JOB_STATUS_CHANGE" if data["id"] == self.id => {
                let status = data["status"].as_str().unwrap_or_default();
                if status == "created" {
                    self.started = true;
                }
                if !self.started {
                    return Ok(Step::Wait);
                }
                if status == "concluded" {
                    self.saw_end = true;
                }
                self.on_status(&json!({"id": self.id, "status": status}))
                    .await
            }
            // `device` is the job's id for every block job since QEMU 2.7.
            "BLOCK_JOB_COMPLETED" if self.started && data["device"] == self.id => {
                self.note_type(&data);
                let error = data["error"].as_str().map(str::to_owned);
                self.block_end = Some(BlockEnd::Completed(error));
                Ok(Step::Wait)
            }
            "BLOCK_JOB_CANCELLED" if self.started && data["device"] == self.id => {
                self.note_type(&data);
                self.block_end = Some(BlockEnd::Cancelled);
                Ok(Step::Wait)
            }
            _ => Ok(Step::Wait),
        }
    }

    fn note_type(&mut self, data: &Value) {
        if let Some(t) = data["type"].as_str() {
            self.job_type = Some(t.to_owned());
        }
    }

    /// Acts on the job's status (`job` as `query-jobs` lists it, or built from an
    /// event).
    async fn on_status(&mut self, job: &Value) -> Result<Step, Error> {
        self.note_type(job);
        match job["status"].as_str().unwrap_or_default() {
            "pending" if !self.finalized => {
                // Only a job started with auto-finalize false waits here; one that
                // finalizes itself must not be finalized twice (QEMU refuses it).
                if self.waits_for_finalize().await? {
                    self.finalized = true;
                    self.call("job-finalize", "finalizing the job").await?;
                }
                Ok(Step::Wait)
            }
            "ready" if !self.completed => {
                self.completed = true;
                self.call("job-complete", "completing the job (it is ready)")
                    .await?;
                Ok(Step::Wait)
            }
            "concluded" => Ok(Step::Concluded),
            "null" => {
                self.saw_end = true;
                Ok(Step::Gone)
            }
            _ => Ok(Step::Wait),
        }
    }

    /// Whether the job is a block job started with `auto-finalize: false`
    /// (`query-block-jobs` says; other jobs always finalize themselves).
    async fn waits_for_finalize(&self) -> Result<bool, Error> {
        let jobs = self
            .client
            .execute_raw("query-block-jobs", None::<&()>)
            .await
            .map_err(|e| self.follow_error("reading query-block-jobs", e))?;
        Ok(jobs
            .as_array()
            .into_iter()
            .flatten()
            .find(|j| j["device"] == self.id)
            .is_some_and(|j| j["auto-finalize"] == false))
    }

    /// Sends `job-…` with `{"id": job_id}`.
    async fn call(&self, command: &str, what: &str) -> Result<(), Error> {
        self.client
            .execute_raw(command, Some(&json!({"id": self.id})))
            .await
            .map(drop)
            .map_err(|e| self.follow_error(what, e))
    }

    /// The job as `query-jobs` lists it, if it does.
    async fn query_job(&self) -> Result<Option<Value>, Error> {
        let jobs = self
            .client
            .execute_raw("query-jobs", None::<&()>)
            .await
            .map_err(|e| self.follow_error("reading query-jobs", e))?;
        Ok(match jobs {
            Value::Array(jobs) => jobs.into_iter().find(|j| j["id"] == self.id),
            _ => None,
        })
    }

    /// Reads the outcome of a job that concluded (or is gone), dismissing it when
    /// QEMU did not.
    async fn conclude(mut self, step: Step) -> Result<JobOutcome, Error> {
        let job = match step {
            Step::Gone => None,
            _ => self.query_job().await?,
        };
        let auto_dismissed = job.is_none();
        let mut error = None;
        if let Some(job) = &job {
            self.note_type(job);
            error = job["error"].as_str().map(str::to_owned);
            if job["status"] == "concluded" {
                self.call("job-dismiss", "dismissing the job").await?;
            }
        }
        let job_type = self
            .job_type
            .take()
            .unwrap_or_else(|| self.command.to_owned());
        match (self.block_end.take(), error) {
            (Some(BlockEnd::Cancelled), _) => Err(Error::Cancelled {
                id: self.id.into(),
                job_type,
            }),
            (_, Some(error)) | (Some(BlockEnd::Completed(Some(error))), None) => {
                Err(Error::Failed {
                    id: self.id.into(),
                    job_type,
                    error,
                })
            }
            (None, None) if auto_dismissed && !self.saw_end => Err(Error::Vanished {
                command: self.command.into(),
                id: self.id.into(),
            }),
            _ => Ok(JobOutcome {
                id: self.id.into(),
                job_type,
                auto_dismissed,
            }),
        }
    }

    fn follow_error(&self, what: &str, source: qmp::Error) -> Error {
        Error::Follow {
            command: self.command.into(),
            id: self.id.into(),
            what: what.into(),
            source,
        }
    }
}

/// The next item of `events` if one is already queued: `None` when it would wait.
async fn next_now(events: &mut EventStream<RawEvent>) -> Option<Option<qmp::Result<RawEvent>>> {
    let mut next = pin!(events.next());
    // Dropping `next` after a pending poll loses nothing: queued items stay in the
    // stream.
    poll_fn(|cx| match next.as_mut().poll(cx) {
        Poll::Ready(item) => Poll::Ready(Some(item)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}
