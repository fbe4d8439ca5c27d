//! A userspace TCP proxy in the root namespace, between one host and a store: the kernel
//! here has no `netem`, so added latency is done here. Each chunk read in either direction
//! is written out `delay` after it arrived (order kept, throughput not throttled). `cut`
//! drops every connection and refuses new ones until `restore`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Mode {
    open: bool,
    delay: Duration,
}

pub struct Proxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on `bind` (an ephemeral port) and forwards to `upstream`.
    pub async fn start(bind: std::net::IpAddr, upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind((bind, 0))
            .await
            .unwrap_or_else(|e| panic!("bind a proxy on {bind}: {e}"));
        let addr = listener.local_addr().expect("proxy address");
        let (mode, mode_rx) = watch::channel(Mode {
            open: true,
            delay: Duration::ZERO,
        });
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let mut mode = mode_rx.clone();
                if !mode.borrow().open {
                    continue; // dropped at once: the client sees the connection closed
                }
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    let up = pump(in_read, out_write, mode.clone());
                    let down = pump(out_read, in_write, mode.clone());
                    tokio::select! {
                        _ = async { tokio::join!(up, down) } => {}
                        _ = mode.wait_for(|m| !m.open) => {}
                    }
                });
            }
        });
        Proxy { addr, mode, task }
    }

    /// Every chunk from now on is delivered `delay` late, in both directions.
    #[allow(dead_code)] // no scenario adds latency yet
    pub fn set_delay(&self, delay: Duration) {
        self.mode.send_modify(|m| m.delay = delay);
    }

    pub fn cut(&self) {
        self.mode.send_modify(|m| m.open = false);
    }

    #[allow(dead_code)] // no scenario cuts at the proxy yet (partitions are link down)
    pub fn restore(&self) {
        self.mode.send_modify(|m| m.open = true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// Copies `from` to `to`, each chunk held until `delay` after it was read.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mode: watch::Receiver<Mode>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let due = Instant::now() + mode.borrow().delay;
                    if tx.send((due, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
        // Dropping `tx` ends the writer after what is queued.
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
