//! Long-running processes: `serve` (API and workers), `api`, `worker`.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use drover_worker::Registry;
use tokio::sync::watch;

use crate::settings::Settings;
use crate::WorkerArgs;

/// Runs the API and/or the worker pool until SIGTERM or Ctrl-C, then stops both gracefully.
pub async fn serve(
    settings: &Settings,
    registry: Registry,
    args: &WorkerArgs,
    token: Option<String>,
    api: bool,
    workers: bool,
) -> anyhow::Result<ExitCode> {
    let store = settings.open_store_for_worker().await?;
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested; stopping gracefully");
        let _ = stop.send(true);
    });

    let pool = workers.then(|| {
        drover_worker::start(
            store.clone(),
            registry.clone(),
            settings.worker_options(args),
        )
    });
    let server = if api {
        let bind = args
            .bind
            .clone()
            .unwrap_or_else(|| settings.config.api.bind.clone());
        let addr: SocketAddr = bind.parse().with_context(|| {
            format!("--bind / api.bind: `{bind}` is not an address like 127.0.0.1:8080")
        })?;
        let config = drover_api::ApiConfig {
            token: token.or_else(|| settings.config.api.token.clone()),
            max_body_bytes: settings.config.api.max_body_bytes as usize,
            ..drover_api::ApiConfig::default()
        };
        let state = drover_api::AppState::new(store.clone(), registry, config);
        let mut until = stopped.clone();
        let shutdown = async move {
            let _ = until.wait_for(|stop| *stop).await;
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        println!(
            "drover API on http://{} ({} store)",
            listener.local_addr()?,
            store.backend()
        );
        Some(tokio::spawn(drover_api::serve_on(
            state, listener, shutdown,
        )))
    } else {
        None
    };

    let mut until = stopped.clone();
    let _ = until.wait_for(|stop| *stop).await;
    if let Some(pool) = pool {
        pool.shutdown();
        pool.wait().await;
    }
    if let Some(server) = server {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(error = %err, "API server failed"),
            Err(err) => tracing::error!(error = %err, "API task failed"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
