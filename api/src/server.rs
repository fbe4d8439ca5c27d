//! The accept loop: HTTP/1.1 on each connection with a header-read timeout, and a graceful
//! shutdown. `axum::serve` configures no hyper timer, so a client that opened a connection
//! and never finished its request headers held it (and a file descriptor) forever.

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets
/// every open connection finish its current response, and returns when all are closed.
///
/// A connection whose request headers have not fully arrived `header_read_timeout` after
/// it was opened (or after its previous response, on a kept-alive connection) is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // Connections watch `stop`; each holds a `done` receiver until it closes, so
    // `done_tx.closed()` resolves when the last one has.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = watch::channel(());
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // A `Router` clone shares its route table (an `Arc`), so a connection costs no
        // copy of it.
        let service = TowerToHyperService::new(router.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let mut stop = stop_rx.clone();
        let done = done_rx.clone();
        tokio::spawn(async move {
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                }
                () = async { let _ = stop.wait_for(|stop| *stop).await; } => {
                    connection.as_mut().graceful_shutdown();
                    if let Err(err) = connection.as_mut().await {
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                }
            }
            drop(done);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

/// Errors of one incoming connection (reset before it was accepted) are that client's;
/// others (out of file descriptors) would repeat at once, so wait a little before the next
/// accept.
async fn accept_failed(err: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        err.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %err, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
