//! A program written against the default bindings' names (QEMU 10.0's sources), which
//! `tests/capture_bindings.rs` compiles unchanged against bindings built from
//! `query-qmp-schema` captures. Feature `system`: the parts the storage daemon lacks
//! (`query-status`, `query-migrate`, the `STOP` event).

use qemu_qapi::commands;
use qemu_qapi::events::Event;
use qemu_qapi::qmp::Command;
use qemu_qapi::types::{
    BlockDeviceInfo, BlockdevCreateOptions, BlockdevOptions, BlockdevOptionsBranch,
    BlockdevOptionsNull, JobInfo, JobStatus, VersionInfo,
};
#[cfg(feature = "system")]
use qemu_qapi::types::{MigrationInfo, RunState, StatusInfo};

/// What command `C` replies, as a type.
pub fn reply_of<C: Command>(_: &C) -> Option<C::Reply> {
    None
}

/// The run state, by name.
#[cfg(feature = "system")]
pub fn run_state(info: &StatusInfo) -> &'static str {
    match &info.status {
        RunState::Running => "running",
        RunState::Paused => "paused",
        RunState::Shutdown => "shutdown",
        RunState::Inmigrate => "inmigrate",
        _ => "other",
    }
}

/// How long the migration has taken.
#[cfg(feature = "system")]
pub fn migration_time(info: &MigrationInfo) -> Option<i128> {
    info.total_time.map(i128::from)
}

/// `major.minor.micro package`.
pub fn version(v: &VersionInfo) -> String {
    format!(
        "{}.{}.{} {}",
        v.qemu.major, v.qemu.minor, v.qemu.micro, v.package
    )
}

/// The node names of block nodes.
pub fn node_names(nodes: &[BlockDeviceInfo]) -> Vec<&str> {
    nodes
        .iter()
        .filter(|n| !n.ro)
        .filter_map(|n| n.node_name.as_deref())
        .collect()
}

/// A job status, by name.
pub fn job_state(s: &JobStatus) -> &'static str {
    match s {
        JobStatus::Created => "created",
        JobStatus::Running => "running",
        JobStatus::Concluded => "concluded",
        JobStatus::Null => "null",
        _ => "other",
    }
}

/// One line per job.
pub fn job_line(job: &JobInfo) -> String {
    format!("{} {}", job.id, job_state(&job.status))
}

/// `blockdev-add` of a null node of 1 MiB.
pub fn null_node(name: &str) -> commands::BlockdevAdd {
    let options: BlockdevOptions = BlockdevOptions::new(BlockdevOptionsBranch::NullCo(
        BlockdevOptionsNull::new().with_size(1 << 20),
    ))
    .with_node_name(name.to_owned());
    commands::BlockdevAdd::new(options)
}

/// `blockdev-create` as job `job`.
pub fn create(job: &str, options: BlockdevCreateOptions) -> commands::BlockdevCreate {
    commands::BlockdevCreate::new(job.to_owned(), options)
}

/// What an event says.
pub fn on_event(event: &Event) -> String {
    match event {
        Event::JobStatusChange(change) => format!("{} is {}", change.id, job_state(&change.status)),
        #[cfg(feature = "system")]
        Event::Stop => "stopped".to_owned(),
        other => other.name().to_owned(),
    }
}

/// The replies, typed.
pub fn replies() {
    let _: Option<VersionInfo> = reply_of(&commands::QueryVersion);
    let _: Option<Vec<JobInfo>> = reply_of(&commands::QueryJobs);
    let _: Option<Vec<BlockDeviceInfo>> = reply_of(&commands::QueryNamedBlockNodes::new());
    #[cfg(feature = "system")]
    {
        let _: Option<StatusInfo> = reply_of(&commands::QueryStatus);
        let _: Option<MigrationInfo> = reply_of(&commands::QueryMigrate);
    }
}
