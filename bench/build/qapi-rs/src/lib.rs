//! The clean-build workload, qapi-rs: the program of `build/ours` (same commands in the
//! same order, same events) against `qapi` 0.15, its `qapi-qmp` bindings and its tokio
//! client, written the way that API asks (struct literals with every member, the
//! `base` members of QAPI's inheritance, the event's data inside its variant). It is
//! built, never run.

use std::error::Error;

use futures::StreamExt;
use qapi::futures::{QapiEvents, QapiService, QmpStreamTokio};
use qapi::qmp::{
    block_resize, blockdev_add, blockdev_backup, blockdev_del, cont, device_add, device_del,
    human_monitor_command, job_cancel, job_dismiss, migrate, migrate_set_capabilities, netdev_del,
    qom_list, query_block, query_block_jobs, query_blockstats, query_chardev, query_commands,
    query_cpus_fast, query_hotpluggable_cpus, query_iothreads, query_jobs, query_kvm,
    query_memory_devices, query_migrate, query_migrate_capabilities, query_name,
    query_named_block_nodes, query_status, query_uuid, query_version, stop, system_powerdown,
    system_reset, BackupCommon, BlockdevBackup, BlockdevOptions, BlockdevOptionsBase,
    BlockdevOptionsFile, BlockdevOptionsGenericCOWFormat, BlockdevOptionsGenericFormat,
    BlockdevOptionsQcow2, BlockdevRef, Event, JobStatus, MigrationCapability,
    MigrationCapabilityStatus, MirrorSyncMode, RunState,
};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::UnixStream;

type Result<T> = std::result::Result<T, Box<dyn Error>>;
pub type Client = QapiService<QmpStreamTokio<WriteHalf<UnixStream>>>;
pub type Events = QapiEvents<QmpStreamTokio<ReadHalf<UnixStream>>>;

/// Connects to QEMU's monitor socket and negotiates; the events are the caller's to
/// drive (`watch`).
pub async fn connect(socket: &str) -> Result<(Client, Events)> {
    let stream = QmpStreamTokio::open_uds(socket).await?.negotiate().await?;
    Ok(stream.into_parts())
}

/// What the session saw, so that every reply is read.
#[derive(Default)]
pub struct Seen {
    pub facts: Vec<String>,
    pub count: usize,
}

fn no_base() -> BlockdevOptionsBase {
    BlockdevOptionsBase {
        auto_read_only: None,
        cache: None,
        detect_zeroes: None,
        discard: None,
        force_share: None,
        node_name: None,
        read_only: None,
    }
}

/// A management session: 35 typed calls, in the order a tool would make them.
pub async fn session(qmp: &Client, image: &str) -> Result<Seen> {
    let mut seen = Seen::default();
    let version = qmp.execute(query_version {}).await?;
    seen.facts.push(format!(
        "QEMU {}.{}",
        version.qemu.major, version.qemu.minor
    ));
    let status = qmp.execute(query_status {}).await?;
    if status.running && status.status == RunState::running {
        seen.facts.push("running".into());
    }
    let name = qmp.execute(query_name {}).await?;
    seen.facts.extend(name.name);
    let kvm = qmp.execute(query_kvm {}).await?;
    seen.count += usize::from(kvm.enabled);
    let uuid = qmp.execute(query_uuid {}).await?;
    seen.facts.push(uuid.UUID);
    let commands = qmp.execute(query_commands {}).await?;
    seen.count += commands.len();
    let cpus = qmp.execute(query_cpus_fast {}).await?;
    seen.count += cpus.len();
    let hotpluggable = qmp.execute(query_hotpluggable_cpus {}).await?;
    seen.count += hotpluggable.len();
    let iothreads = qmp.execute(query_iothreads {}).await?;
    seen.count += iothreads.len();
    let memory = qmp.execute(query_memory_devices {}).await?;
    seen.count += memory.len();
    let chardevs = qmp.execute(query_chardev {}).await?;
    seen.facts.extend(chardevs.into_iter().map(|c| c.label));

    // Storage: a qcow2 image over a file, then a backup of it.
    let blocks = qmp.execute(query_block {}).await?;
    seen.facts.extend(blocks.into_iter().map(|b| b.device));
    let file = BlockdevOptions::file {
        base: BlockdevOptionsBase {
            node_name: Some("disk0-file".into()),
            ..no_base()
        },
        file: BlockdevOptionsFile {
            aio: None,
            aio_max_batch: None,
            drop_cache: None,
            locking: None,
            pr_manager: None,
            x_check_cache_dropped: None,
            filename: image.to_string(),
        },
    };
    let disk = BlockdevOptions::qcow2 {
        base: BlockdevOptionsBase {
            node_name: Some("disk0".into()),
            ..no_base()
        },
        qcow2: BlockdevOptionsQcow2 {
            base: BlockdevOptionsGenericCOWFormat {
                base: BlockdevOptionsGenericFormat {
                    file: BlockdevRef::definition(Box::new(file)),
                },
                backing: None,
            },
            cache_clean_interval: None,
            cache_size: None,
            data_file: None,
            discard_no_unref: None,
            encrypt: None,
            l2_cache_entry_size: None,
            l2_cache_size: None,
            lazy_refcounts: Some(true),
            overlap_check: None,
            pass_discard_other: None,
            pass_discard_request: None,
            pass_discard_snapshot: None,
            refcount_cache_size: None,
        },
    };
    qmp.execute(blockdev_add(disk)).await?;
    let nodes = qmp.execute(query_named_block_nodes { flat: None }).await?;
    seen.facts
        .extend(nodes.into_iter().filter_map(|n| n.node_name));
    let stats = qmp.execute(query_blockstats { query_nodes: None }).await?;
    seen.count += stats.len();
    qmp.execute(block_resize {
        device: None,
        node_name: Some("disk0".into()),
        size: 1 << 30,
    })
    .await?;
    qmp.execute(blockdev_backup(BlockdevBackup {
        base: BackupCommon {
            auto_dismiss: None,
            auto_finalize: None,
            bitmap: None,
            bitmap_mode: None,
            compress: None,
            discard_source: None,
            filter_node_name: None,
            job_id: Some("backup-job".into()),
            on_source_error: None,
            on_target_error: None,
            speed: None,
            x_perf: None,
            device: "disk0".into(),
            sync: MirrorSyncMode::full,
        },
        target: "backup0".into(),
    }))
    .await?;
    let jobs = qmp.execute(query_jobs {}).await?;
    for job in &jobs {
        if job.status == JobStatus::concluded {
            qmp.execute(job_dismiss { id: job.id.clone() }).await?;
        } else {
            qmp.execute(job_cancel { id: job.id.clone() }).await?;
        }
    }
    let block_jobs = qmp.execute(query_block_jobs {}).await?;
    seen.count += block_jobs.len();

    // Devices.
    qmp.execute(device_add {
        bus: None,
        id: Some("vd0".into()),
        driver: "virtio-blk-pci".into(),
        arguments: [("drive".to_string(), "disk0".into())]
            .into_iter()
            .collect(),
    })
    .await?;
    let props = qmp
        .execute(qom_list {
            path: "/machine/peripheral/vd0".into(),
        })
        .await?;
    seen.facts.extend(props.into_iter().map(|p| p.name));
    qmp.execute(device_del { id: "vd0".into() }).await?;
    qmp.execute(blockdev_del {
        node_name: "disk0".into(),
    })
    .await?;
    qmp.execute(netdev_del { id: "net0".into() }).await?;

    // Migration.
    qmp.execute(migrate_set_capabilities {
        capabilities: vec![
            MigrationCapabilityStatus {
                capability: MigrationCapability::events,
                state: true,
            },
            MigrationCapabilityStatus {
                capability: MigrationCapability::auto_converge,
                state: true,
            },
        ],
    })
    .await?;
    let caps = qmp.execute(query_migrate_capabilities {}).await?;
    seen.count += caps.iter().filter(|c| c.state).count();
    qmp.execute(migrate {
        channels: None,
        detach: None,
        resume: None,
        uri: Some("unix:/tmp/migrate.sock".into()),
    })
    .await?;
    let migration = qmp.execute(query_migrate {}).await?;
    seen.count += usize::from(migration.status.is_some());

    // Run state.
    qmp.execute(stop {}).await?;
    qmp.execute(cont {}).await?;
    qmp.execute(system_reset {}).await?;
    let hmp = qmp
        .execute(human_monitor_command {
            cpu_index: None,
            command_line: "info mtree".into(),
        })
        .await?;
    seen.count += hmp.len();
    qmp.execute(system_powerdown {}).await?;
    Ok(seen)
}

/// Follows ten kinds of events until the guest shuts down.
pub async fn watch(events: &mut Events) -> Result<Vec<String>> {
    let mut log = Vec::new();
    while let Some(event) = events.next().await {
        match event? {
            Event::SHUTDOWN { data, .. } => {
                log.push(format!("shutdown (guest: {})", data.guest));
                break;
            }
            Event::POWERDOWN { .. } => log.push("powerdown".into()),
            Event::RESET { data, .. } => log.push(format!("reset (guest: {})", data.guest)),
            Event::STOP { .. } => log.push("stop".into()),
            Event::RESUME { .. } => log.push("resume".into()),
            Event::JOB_STATUS_CHANGE { data, .. } => {
                if data.status == JobStatus::concluded {
                    log.push(format!("job {} concluded", data.id));
                }
            }
            Event::BLOCK_JOB_COMPLETED { data, .. } => {
                log.push(format!(
                    "{} copied {} of {}",
                    data.device, data.offset, data.len
                ));
                log.extend(data.error);
            }
            Event::BLOCK_IO_ERROR { data, .. } => {
                log.push(format!("I/O error on {}: {}", data.device, data.reason))
            }
            Event::DEVICE_DELETED { data, .. } => log.push(format!("{} deleted", data.path)),
            Event::MIGRATION { data, .. } => log.push(format!("migration {:?}", data.status)),
            _ => {}
        }
    }
    Ok(log)
}
