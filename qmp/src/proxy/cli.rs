//! `qmp proxy`: the proxy from the command line, until Ctrl-C, SIGTERM, or QEMU goes
//! away.

use std::path::PathBuf;

use super::{Allow, Listener, ProxyConfig};

/// What `qmp proxy` does.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// QEMU's monitor on a Unix socket (`--socket`).
    pub socket: Option<PathBuf>,
    /// QEMU's monitor on a TCP address, `HOST:PORT` (`--tcp`), instead of `socket`.
    pub tcp: Option<String>,
    /// Sockets that forward every command (`--listen`, repeatable).
    pub listen: Vec<PathBuf>,
    /// Sockets that forward only the commands of `read_only_allow` (`--read-only-listen`,
    /// repeatable).
    pub read_only_listen: Vec<PathBuf>,
    /// The read-only sockets' allow-list, as [`Allow::parse`] reads it (`--allow`,
    /// e.g. `query-*,qom-get`); `query-*` when `None`.
    pub read_only_allow: Option<String>,
    /// Do not negotiate `oob` with QEMU, nor offer it to clients (`--no-oob`).
    pub no_oob: bool,
}

/// Connects to QEMU's monitor, listens on every socket of `options`, and serves until
/// Ctrl-C or SIGTERM (then `Ok`) or until QEMU goes away (then an error saying so;
/// the clients have been disconnected). Prints where it listens to stderr.
///
/// # Errors
/// A message naming what failed: no listening socket given, a bad allow-list, QEMU's
/// socket unreachable or not a QMP monitor (or held by another client), a listening
/// socket in use or not bindable, QEMU gone.
pub async fn run(options: &ProxyOptions) -> Result<(), String> {
    if options.listen.is_empty() && options.read_only_listen.is_empty() {
        return Err(
            "`proxy` needs at least one --listen PATH or --read-only-listen PATH to serve clients on"
                .into(),
        );
    }
    let read_only = match &options.read_only_allow {
        Some(spec) => Allow::parse(spec)?,
        None => Allow::read_only(),
    };
    if options.read_only_allow.is_some() && options.read_only_listen.is_empty() {
        return Err("--allow applies to --read-only-listen sockets, and none is given".into());
    }
    let mut config = ProxyConfig::new();
    config.negotiate_oob(!options.no_oob);
    let (proxy, qemu) =
        match (&options.socket, &options.tcp) {
            (Some(path), None) => (config.connect_unix(path).await, path.display().to_string()),
            (None, Some(addr)) => (config.connect_tcp(addr.as_str()).await, addr.clone()),
            _ => return Err(
                "`proxy` needs exactly one of --socket PATH or --tcp HOST:PORT: QEMU's QMP monitor"
                    .into(),
            ),
        };
    let proxy = proxy.map_err(|e| format!("qmp proxy: {e}"))?;
    let mut listeners: Vec<Listener> = Vec::new();
    let sockets = options.listen.iter().map(|p| (p, Allow::all())).chain(
        options
            .read_only_listen
            .iter()
            .map(|p| (p, read_only.clone())),
    );
    for (path, allow) in sockets {
        let listener = proxy
            .listen_unix(path, allow.clone())
            .await
            .map_err(|e| format!("qmp proxy: {e}"))?;
        eprintln!(
            "qmp proxy: listening on {} (commands allowed: {allow})",
            path.display()
        );
        listeners.push(listener);
    }
    eprintln!("qmp proxy: serving QEMU's monitor at {qemu}");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("qmp proxy: installing the SIGTERM handler: {e}"))?;
    let result = tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
        reason = proxy.closed() => Err(format!("qmp proxy: {reason}; its clients were disconnected")),
    };
    proxy.close();
    drop(listeners);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_bad_options_before_connecting() {
        let err = run(&ProxyOptions::default()).await.unwrap_err();
        assert!(err.contains("--listen"), "{err}");
        let err = run(&ProxyOptions {
            listen: vec!["/tmp/x".into()],
            read_only_allow: Some("query-*".into()),
            ..ProxyOptions::default()
        })
        .await
        .unwrap_err();
        assert!(err.contains("--read-only-listen"), "{err}");
        let err = run(&ProxyOptions {
            read_only_listen: vec!["/tmp/x".into()],
            read_only_allow: Some("query-*,,".into()),
            ..ProxyOptions::default()
        })
        .await
        .unwrap_err();
        assert!(err.contains("empty entry"), "{err}");
        let err = run(&ProxyOptions {
            socket: Some("/nonexistent-dir/qmp.sock".into()),
            listen: vec!["/tmp/x".into()],
            ..ProxyOptions::default()
        })
        .await
        .unwrap_err();
        assert!(err.contains("/nonexistent-dir/qmp.sock"), "{err}");
        let err = run(&ProxyOptions {
            listen: vec!["/tmp/x".into()],
            ..ProxyOptions::default()
        })
        .await
        .unwrap_err();
        assert!(err.contains("--socket PATH or --tcp"), "{err}");
    }
}
