//! Long-running processes: `serve` (API and workers), `api`, `worker` (with its health and
//! metrics endpoints on `--bind`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

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
    // `stop` turns true on SIGTERM or Ctrl-C, or when the pool stops on its own
    // (`workers.max_jobs_per_worker`); a worker's `/readyz` answers 503 from then on.
    let (stop, stopped) = watch::channel(false);
    let stop = Arc::new(stop);
    let on_signal = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested; stopping gracefully");
        on_signal.send_replace(true);
    });

    // A worker alone serves its probes and metrics on `--bind`, when given, and keeps
    // serving them while it drains; `serve` and `api` serve theirs with the API.
    let (endpoints_stop, endpoints_stopped) = watch::channel(false);
    let endpoints = match (&args.bind, workers && !api) {
        (Some(bind), true) => {
            let addr: SocketAddr = bind
                .parse()
                .with_context(|| format!("--bind: `{bind}` is not an address like 0.0.0.0:9090"))?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            println!(
                "drover worker endpoints on http://{} (/healthz, /readyz, /metrics)",
                listener.local_addr()?
            );
            let mut until = endpoints_stopped;
            let shutdown = async move {
                let _ = until.wait_for(|stop| *stop).await;
            };
            let endpoints = drover_api::WorkerEndpoints::new(store.clone(), stopped.clone());
            Some(tokio::spawn(endpoints.serve_on(listener, shutdown)))
        }
        _ => None,
    };

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
    match pool {
        Some(pool) => {
            let stopper = pool.stopper();
            let mut pool_stopped = tokio::spawn(pool.wait());
            tokio::select! {
                _ = until.wait_for(|stop| *stop) => {
                    stopper.shutdown();
                    let _ = (&mut pool_stopped).await;
                }
                _ = &mut pool_stopped => {
                    tracing::info!("worker pool stopped; exiting");
                    stop.send_replace(true);
                }
            }
        }
        None => {
            let _ = until.wait_for(|stop| *stop).await;
        }
    }
    if let Some(server) = server {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(error = %err, "API server failed"),
            Err(err) => tracing::error!(error = %err, "API task failed"),
        }
    }
    if let Some(endpoints) = endpoints {
        endpoints_stop.send_replace(true);
        match endpoints.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(error = %err, "worker endpoints failed"),
            Err(err) => tracing::error!(error = %err, "worker endpoints task failed"),
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
