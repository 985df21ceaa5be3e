//! The clean-build workload, ours: a user-shaped program against `qemu-qapi` and its
//! `qmp` client. `build/qapi-rs` is the same program against `qapi` 0.15 (same
//! commands in the same order, same events, each written the way that side's API
//! asks), so that each build compiles what a real crate instantiates: the encoders of
//! the arguments, the decoders of the replies and of the events it matches. It is
//! built, never run.

use std::error::Error;

use qemu_qapi::commands::{
    BlockResize, BlockdevAdd, BlockdevBackup, BlockdevDel, Cont, DeviceAdd, DeviceDel,
    HumanMonitorCommand, JobCancel, JobDismiss, Migrate, MigrateSetCapabilities, NetdevDel,
    QomList, QueryBlock, QueryBlockJobs, QueryBlockstats, QueryChardev, QueryCommands,
    QueryCpusFast, QueryHotpluggableCpus, QueryIothreads, QueryJobs, QueryKvm, QueryMemoryDevices,
    QueryMigrate, QueryMigrateCapabilities, QueryName, QueryNamedBlockNodes, QueryStatus,
    QueryUuid, QueryVersion, Stop, SystemPowerdown, SystemReset,
};
use qemu_qapi::events::Event;
use qemu_qapi::qmp::{Client, Config};
use qemu_qapi::types::{
    BlockdevOptions, BlockdevOptionsBranch, BlockdevOptionsFile, BlockdevOptionsQcow2, BlockdevRef,
    JobStatus, MigrationCapability, MigrationCapabilityStatus, MirrorSyncMode, RunState,
};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Connects to QEMU's monitor socket.
pub async fn connect(socket: &str) -> Result<Client> {
    Ok(Config::new().connect_unix(socket).await?)
}

/// What the session saw, so that every reply is read.
#[derive(Default)]
pub struct Seen {
    pub facts: Vec<String>,
    pub count: usize,
}

/// A management session: 35 typed calls, in the order a tool would make them.
pub async fn session(qmp: &Client, image: &str) -> Result<Seen> {
    let mut seen = Seen::default();
    let version = qmp.execute(&QueryVersion).await?;
    seen.facts.push(format!(
        "QEMU {}.{}",
        version.qemu.major, version.qemu.minor
    ));
    let status = qmp.execute(&QueryStatus).await?;
    if status.running && status.status == RunState::Running {
        seen.facts.push("running".into());
    }
    let name = qmp.execute(&QueryName).await?;
    seen.facts.extend(name.name);
    let kvm = qmp.execute(&QueryKvm).await?;
    seen.count += usize::from(kvm.enabled);
    let uuid = qmp.execute(&QueryUuid).await?;
    seen.facts.push(uuid.uuid);
    let commands = qmp.execute(&QueryCommands).await?;
    seen.count += commands.len();
    let cpus = qmp.execute(&QueryCpusFast).await?;
    seen.count += cpus.len();
    let hotpluggable = qmp.execute(&QueryHotpluggableCpus).await?;
    seen.count += hotpluggable.len();
    let iothreads = qmp.execute(&QueryIothreads).await?;
    seen.count += iothreads.len();
    let memory = qmp.execute(&QueryMemoryDevices).await?;
    seen.count += memory.len();
    let chardevs = qmp.execute(&QueryChardev).await?;
    seen.facts.extend(chardevs.into_iter().map(|c| c.label));

    // Storage: a qcow2 image over a file, then a backup of it.
    let blocks = qmp.execute(&QueryBlock).await?;
    seen.facts.extend(blocks.into_iter().map(|b| b.device));
    let file = BlockdevOptions::new(BlockdevOptionsBranch::File(BlockdevOptionsFile::new(
        image.to_string(),
    )))
    .with_node_name("disk0-file");
    let qcow2 = BlockdevOptionsQcow2::new(Box::new(BlockdevRef::Definition(Box::new(file))))
        .with_lazy_refcounts(true);
    let disk = BlockdevOptions::new(BlockdevOptionsBranch::Qcow2(Box::new(qcow2)))
        .with_node_name("disk0");
    qmp.execute(&BlockdevAdd::new(disk)).await?;
    let nodes = qmp.execute(&QueryNamedBlockNodes::new()).await?;
    seen.facts
        .extend(nodes.into_iter().filter_map(|n| n.node_name));
    let stats = qmp.execute(&QueryBlockstats::new()).await?;
    seen.count += stats.len();
    qmp.execute(&BlockResize::new(1 << 30).with_node_name("disk0"))
        .await?;
    qmp.execute(&BlockdevBackup::new(
        qemu_qapi::types::BlockdevBackup::new(
            "disk0",
            MirrorSyncMode::Full,
            "backup0",
        )
        .with_job_id("backup-job"),
    ))
    .await?;
    let jobs = qmp.execute(&QueryJobs).await?;
    for job in &jobs {
        if job.status == JobStatus::Concluded {
            qmp.execute(&JobDismiss::new(job.id.clone())).await?;
        } else {
            qmp.execute(&JobCancel::new(job.id.clone())).await?;
        }
    }
    let block_jobs = qmp.execute(&QueryBlockJobs).await?;
    seen.count += block_jobs.len();

    // Devices.
    qmp.execute(
        &DeviceAdd::new("virtio-blk-pci")
            .with_id("vd0")
            .with_extra("drive", "disk0".into()),
    )
    .await?;
    let props = qmp
        .execute(&QomList::new("/machine/peripheral/vd0"))
        .await?;
    seen.facts.extend(props.into_iter().map(|p| p.name));
    qmp.execute(&DeviceDel::new("vd0")).await?;
    qmp.execute(&BlockdevDel::new("disk0")).await?;
    qmp.execute(&NetdevDel::new("net0")).await?;

    // Migration.
    qmp.execute(&MigrateSetCapabilities::new(vec![
        MigrationCapabilityStatus::new(MigrationCapability::Events, true),
        MigrationCapabilityStatus::new(MigrationCapability::AutoConverge, true),
    ]))
    .await?;
    let caps = qmp.execute(&QueryMigrateCapabilities).await?;
    seen.count += caps.iter().filter(|c| c.state).count();
    qmp.execute(&Migrate::new().with_uri("unix:/tmp/migrate.sock"))
        .await?;
    let migration = qmp.execute(&QueryMigrate).await?;
    seen.count += usize::from(migration.status.is_some());

    // Run state.
    qmp.execute(&Stop).await?;
    qmp.execute(&Cont).await?;
    qmp.execute(&SystemReset).await?;
    let hmp = qmp
        .execute(&HumanMonitorCommand::new("info mtree"))
        .await?;
    seen.count += hmp.len();
    qmp.execute(&SystemPowerdown).await?;
    Ok(seen)
}

/// Follows ten kinds of events until the guest shuts down.
pub async fn watch(qmp: &Client) -> Result<Vec<String>> {
    let mut log = Vec::new();
    let mut events = qmp.subscribe_all::<Event>();
    while let Some(event) = events.next().await {
        match event? {
            Event::Shutdown(e) => {
                log.push(format!("shutdown (guest: {})", e.guest));
                break;
            }
            Event::Powerdown => log.push("powerdown".into()),
            Event::Reset(e) => log.push(format!("reset (guest: {})", e.guest)),
            Event::Stop => log.push("stop".into()),
            Event::Resume => log.push("resume".into()),
            Event::JobStatusChange(e) => {
                if e.status == JobStatus::Concluded {
                    log.push(format!("job {} concluded", e.id));
                }
            }
            Event::BlockJobCompleted(e) => {
                log.push(format!("{} copied {} of {}", e.device, e.offset, e.len));
                log.extend(e.error);
            }
            Event::BlockIoError(e) => log.push(format!("I/O error on {}: {}", e.device, e.reason)),
            Event::DeviceDeleted(e) => log.push(format!("{} deleted", e.path)),
            Event::Migration(e) => log.push(format!("migration {:?}", e.status)),
            _ => {}
        }
    }
    Ok(log)
}
