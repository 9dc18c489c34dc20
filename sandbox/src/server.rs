//! The accept loop. Written against hyper directly (not `axum::serve`) for one reason: the
//! "connection dropped after commit" fault must close a socket without answering, which a
//! handler cannot do. A handler marks its response with [`DropConnection`]; the connection's
//! task then drops the connection future, closing the socket mid-request, as a crashed load
//! balancer or a cut network would.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceExt;

/// Response extension: close this connection instead of sending the response.
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

/// Serves `router` on `listener` until `shutdown` completes. Connections already open finish
/// their current request on their own tasks.
pub async fn serve(listener: TcpListener, router: Router, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: log, and keep accepting.
                    tracing::warn!(error = %e, "sandbox accept failed");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        tokio::spawn(async move {
            let kill = Arc::new(Notify::new());
            let kill_in_service = Arc::clone(&kill);
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let router = router.clone();
                let kill = Arc::clone(&kill_in_service);
                async move {
                    let response = router
                        .oneshot(request)
                        .await
                        .unwrap_or_else(|never: Infallible| match never {});
                    if response.extensions().get::<DropConnection>().is_some() {
                        kill.notify_one();
                        std::future::pending::<()>().await;
                    }
                    Ok::<_, Infallible>(response)
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = kill.notified() => {}
            }
        });
    }
}
