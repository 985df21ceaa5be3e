//! Our `qmp::server`, serving idle connections for the `conns1000` workload:
//! `ours-server --socket PATH` greets like QEMU 10.0 (offering `oob`), negotiates and
//! holds each connection until the client leaves or the process is stopped.

use qmp::server::Server;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(flag), Some(path)) = (args.next(), args.next()) else {
        eprintln!("usage: ours-server --socket PATH");
        std::process::exit(2)
    };
    if flag != "--socket" {
        eprintln!("usage: ours-server --socket PATH");
        std::process::exit(2)
    }
    let server = Server::builder()
        .version(10, 0, 2)
        .capabilities(["oob"])
        .build();
    let _listening = server.listen_unix(&path).await.unwrap_or_else(|e| {
        eprintln!("ours-server: listen {path}: {e}");
        std::process::exit(1)
    });
    // Until SIGTERM (the benchmark's way of stopping servers) ends the process.
    std::future::pending::<()>().await;
}
