//! Passing file descriptors to QEMU: a file this program opens becomes a block node
//! QEMU could not open itself (`add-fd` and `/dev/fdset/N`), and a named fd for the
//! monitor (`getfd`, `closefd`).
//!
//! Takes the path of a QEMU's QMP socket as its only argument (it starts no QEMU of its
//! own). Fds travel only over a Unix socket (`SCM_RIGHTS`), never TCP, e.g.:
//!
//! ```sh
//! qemu-system-x86_64 -M none -display none -qmp unix:/tmp/qmp.sock,server=on,wait=off &
//! cargo run --example fd_passing -- /tmp/qmp.sock
//! ```
//!
//! It creates a 1 MiB file in the temporary folder, removes it at the end, and leaves
//! nothing behind in QEMU. `tests/examples.rs` runs it against
//! `qemu-system-x86_64 -M none`.

use std::fs::OpenOptions;
use std::os::fd::OwnedFd;
use std::process::ExitCode;

use qemu_qapi::types::{BlockdevOptions, BlockdevOptionsBranch, BlockdevOptionsFile};
use qemu_qapi::{commands, qmp};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let Some(socket) = std::env::args_os().nth(1) else {
        eprintln!("usage: fd_passing QMP-SOCKET (see the top of examples/fd_passing.rs)");
        return Ok(ExitCode::from(2));
    };
    let client = qmp::connect_unix(&socket).await?;

    let path = std::env::temp_dir().join(format!("qmp-fd-example-{}.raw", std::process::id()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| format!("creating {}: {e}", path.display()))?;
    file.set_len(1 << 20)?;
    let result = run(&client, OwnedFd::from(file)).await;
    let _ = std::fs::remove_file(&path);
    client.close().await;
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn run(client: &qmp::Client, file: OwnedFd) -> Result<(), Box<dyn std::error::Error>> {
    // add-fd puts the fd into an fd set (a new one here); QEMU opens
    // /dev/fdset/N by picking an fd of the set with the right access mode. The fd
    // is ours to close once sent: execute_with_fds takes it and does.
    let added = client
        .execute_with_fds(&commands::AddFd::new(), vec![file])
        .await?;
    println!("add-fd: fd set {}, fd {} in QEMU", added.fdset_id, added.fd);

    let filename = format!("/dev/fdset/{}", added.fdset_id);
    // `file`, `host_device` and `host_cdrom` share one struct, so the branch is named.
    let file = BlockdevOptionsFile::new(filename);
    let options = BlockdevOptions::new(BlockdevOptionsBranch::File(file)).with_node_name("fd-disk");
    client.execute(&commands::BlockdevAdd::new(options)).await?;
    let nodes = client
        .execute(&commands::QueryNamedBlockNodes::new())
        .await?;
    for node in nodes
        .iter()
        .filter(|n| n.node_name.as_deref() == Some("fd-disk"))
    {
        println!(
            "node fd-disk: {} bytes from {}",
            node.image.virtual_size, node.file
        );
    }
    client
        .execute(&commands::BlockdevDel::new("fd-disk"))
        .await?;
    // QEMU keeps the set while it has fds; removing the fd frees it.
    client
        .execute(&commands::RemoveFd::new(added.fdset_id).with_fd(added.fd))
        .await?;

    // getfd: one fd under a name, for commands that take a monitor fd name.
    let (ours, _theirs) = std::os::unix::net::UnixStream::pair()?;
    client
        .execute_with_fds(&commands::Getfd::new("example-fd"), vec![ours.into()])
        .await?;
    println!("getfd: QEMU holds fd example-fd");
    client
        .execute(&commands::Closefd::new("example-fd"))
        .await?;
    println!("closefd: released");
    Ok(())
}
