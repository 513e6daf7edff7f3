//! The accept loop: HTTP/1.1 connections served by hyper with a timer, so a
//! client that trickles its request headers is disconnected after
//! `read_timeout` (axum's own `serve` sets no timer, and so no header timeout),
//! and graceful shutdown that lets requests in flight finish.
//! Request bodies get the same idle limit from a layer in the router.

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use axum::{extract::ConnectInfo, Router};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::net::TcpListener;

/// Serve `app` on `listener` until `shutdown` resolves, then stop accepting and
/// wait for open connections to finish their requests.
pub(crate) async fn run(
    listener: TcpListener,
    app: Router,
    read_timeout: Duration,
    send_buffer: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // A fixed send buffer: the kernel memory a connection that stops reading can pin stays
        // small (autotuning grows it to megabytes), and such a client is noticed after a bounded
        // amount of output (see `stream.rs`).
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(send_buffer);
        let app = app.clone();
        let service = ServiceFn { app, peer };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(read_timeout).keep_alive(true);
        let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
    tracing::info!("shutting down: finishing requests in flight");
    graceful.shutdown().await;
    Ok(())
}

/// The router as a per-connection service that knows the peer's address (for
/// rate limits and logs, as axum's `ConnectInfo`).
#[derive(Clone)]
struct ServiceFn {
    app: Router,
    peer: SocketAddr,
}

impl tower_service::Service<hyper::Request<Incoming>> for ServiceFn {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: hyper::Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let mut app = self.app.clone();
        Box::pin(async move { tower_service::Service::call(&mut app, req.map(axum::body::Body::new)).await })
    }
}
