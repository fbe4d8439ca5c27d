//! Long-running processes: `serve` (API and workers), `api`, `worker` (with its health and
//! metrics endpoints on `--bind`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use drover_worker::Registry;
use tokio::sync::watch;

use crate::settings::Settings;
use crate::{ListenArgs, PoolArgs};

/// Runs the API (when `listen` is given) and/or the worker pool (when `pool` is) until
/// SIGTERM or Ctrl-C, then stops both gracefully. A worker alone serves its probes and
/// metrics on `probes`, when given, and keeps serving them while it drains.
pub async fn serve(
    settings: &Settings,
    registry: Registry,
    pool: Option<&PoolArgs>,
    listen: Option<&ListenArgs>,
    probes: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let api = match listen {
        Some(listen) => Some(api_config(settings, listen)?),
        None => None,
    };
    let store = settings.open_store_for_worker().await?;
    crate::schedules::declare_from_config(store.as_ref(), &settings.config.schedules, &registry)
        .await?;
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

    let (endpoints_stop, endpoints_stopped) = watch::channel(false);
    let endpoints = match probes {
        Some(bind) => {
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
        None => None,
    };

    let pool = pool.map(|args| {
        drover_worker::start(
            store.clone(),
            registry.clone(),
            settings.worker_options(args),
        )
    });
    // Without a pool here the API evaluates schedules and gate deadlines itself, so workers
    // can scale to zero.
    let evaluator = match (&api, &pool) {
        (Some(_), None) => {
            let holder = format!("api-{}-{}", hostname(), std::process::id());
            let schedules = drover_worker::maintenance::schedules::run(
                store.clone(),
                holder.clone(),
                stopped.clone(),
            );
            let gates =
                drover_worker::maintenance::gates::run(store.clone(), holder, stopped.clone());
            Some(tokio::spawn(async move {
                tokio::join!(schedules, gates);
            }))
        }
        _ => None,
    };
    let server = if let Some((addr, config)) = api {
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
    if let Some(evaluator) = evaluator {
        let _ = evaluator.await;
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

/// Where the API listens and what it is configured with, from the flags over the
/// configuration. Refuses an address other than loopback without a token: with none, any
/// host that can reach the port could run and cancel jobs.
fn api_config(
    settings: &Settings,
    listen: &ListenArgs,
) -> anyhow::Result<(SocketAddr, drover_api::ApiConfig)> {
    let api = &settings.config.api;
    let bind = listen.bind.clone().unwrap_or_else(|| api.bind.clone());
    let addr: SocketAddr = bind.parse().with_context(|| {
        format!("--bind / api.bind: `{bind}` is not an address like 127.0.0.1:8080")
    })?;
    let token = listen.token.clone().or_else(|| api.token.clone());
    let token = token.filter(|t| !t.is_empty());
    anyhow::ensure!(
        token.is_some() || addr.ip().is_loopback(),
        "refusing to serve the API on {addr} without a token: anyone who can reach it \
         could submit and cancel jobs. Set `api.token` (or DROVER_API__TOKEN) or pass \
         --token, or bind to 127.0.0.1"
    );
    let config = drover_api::ApiConfig {
        token,
        max_body_bytes: api.max_body_bytes as usize,
        // The host of `mail.public_url` is where recipients' unsubscribe links point.
        allowed_hosts: api
            .allowed_hosts
            .iter()
            .cloned()
            .chain(
                settings
                    .config
                    .mail
                    .public_url
                    .as_deref()
                    .and_then(drover_api::url_host),
            )
            .collect(),
        request_timeout: api.request_timeout,
        max_sse_streams: api.max_sse_streams as usize,
        secret_key: settings.config.secrets.key()?,
        previous_secret_keys: settings.config.secrets.previous_keys()?,
        ..drover_api::ApiConfig::default()
    };
    Ok((addr, config))
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

/// This machine's name, for the API's evaluator id.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "localhost".into())
}
