//! A job that fails, and the error it gives: `blockdev-create` of an image file in a
//! folder that does not exist, run with `qemu_qapi::jobs::run`.
//!
//! Takes the path of a QEMU's QMP socket as its only argument (it starts no QEMU of its
//! own); `qemu-storage-daemon` and the system emulator both run block jobs, e.g.:
//!
//! ```sh
//! qemu-storage-daemon --chardev socket,id=m,path=/tmp/qsd.sock,server=on,wait=off \
//!     --monitor chardev=m &
//! cargo run --example job_error -- /tmp/qsd.sock
//! ```
//!
//! The command itself succeeds (it only starts the job); the job then runs and fails,
//! and QEMU keeps its error in `query-jobs` until the job is dismissed. `jobs::run`
//! follows the job to its end, reads the error and dismisses the job.
//! `tests/examples.rs` runs it against `qemu-storage-daemon`.

use std::process::ExitCode;
use std::time::Duration;

use qemu_qapi::types::BlockdevCreateOptionsFile;
use qemu_qapi::{commands, jobs, qmp};

const JOB: &str = "create-example";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let Some(socket) = std::env::args_os().nth(1) else {
        eprintln!("usage: job_error QMP-SOCKET (see the top of examples/job_error.rs)");
        return Ok(ExitCode::from(2));
    };
    let client = qmp::connect_unix(&socket).await?;

    let missing = format!("/nonexistent-{}/disk.raw", std::process::id());
    let create =
        commands::BlockdevCreate::new(JOB, BlockdevCreateOptionsFile::new(&*missing, 1 << 20));

    // A job may rightly run for hours: `run` bounds its own calls by the client's call
    // timeout, not the wait for the job, so bound that here.
    let Ok(outcome) =
        tokio::time::timeout(Duration::from_secs(30), jobs::run(&client, &create, JOB)).await
    else {
        eprintln!("job {JOB} did not end within 30 s (it goes on in QEMU)");
        return Ok(ExitCode::FAILURE);
    };
    let code = match outcome {
        Ok(done) => {
            eprintln!(
                "job {} ({}) created {missing}, which should have failed",
                done.id, done.job_type
            );
            ExitCode::FAILURE
        }
        // The job ran and failed: QEMU's text in full.
        Err(e @ jobs::Error::Failed { .. }) => {
            println!("{e}");
            println!("QEMU's error: {}", e.job_error().unwrap_or_default());
            ExitCode::SUCCESS
        }
        // The command was refused, the connection closed, …: not the job's own failure.
        Err(e) => return Err(e.into()),
    };

    // `run` dismissed the concluded job: QEMU no longer lists it.
    let jobs = client.execute(&commands::QueryJobs {}).await?;
    if jobs.iter().all(|j| j.id != JOB) {
        println!("dismissed");
    }
    client.close().await;
    Ok(code)
}
