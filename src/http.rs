//! The metrics and health listener: `/metrics`, `/livez`, `/readyz`.
//!
//! One small blocking HTTP/1.1 server (`tiny_http`) on its own thread, on
//! the configured bind address only (default `127.0.0.1:9464`; an empty
//! address disables it). Nothing here touches the hot path: `/metrics`
//! reads the engine's atomics at scrape time.
//!
//! - `/livez`: 200 while this thread serves; it checks only that the
//!   process works, so a broker outage never gets the pod restarted.
//! - `/readyz`: 200 once every source reports `is_ready()` and at least
//!   one batch was consumed ([`crate::metrics::Health`]); 503 before. With
//!   several engines (scale-out, both stages), every one must be ready.
//! - `/metrics`: the Prometheus text exposition
//!   ([`crate::metrics::exposition`]); several engines are served as one,
//!   each series labelled with its `stage`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tiny_http::{Header, Method, Request, Response, Server};

use crate::error::{Error, Result};
use crate::metrics::exposition::{self, Served};
use crate::metrics::Metrics;
use crate::source::PartitionRegistry;

/// A running listener; dropping it stops the server thread.
pub struct HttpServer {
    server: Arc<Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl HttpServer {
    /// Binds `listen` and serves on a background thread. `Ok(None)` when
    /// `listen` is empty (listener disabled).
    pub fn start(
        listen: &str,
        metrics: Arc<Metrics>,
        registry: Arc<PartitionRegistry>,
    ) -> Result<Option<HttpServer>> {
        let served = Served {
            stage: None,
            metrics,
            registry,
        };
        Self::start_all(listen, vec![served])
    }

    /// As [`HttpServer::start`], for several engines (scale-out stages).
    pub fn start_all(listen: &str, served: Vec<Served>) -> Result<Option<HttpServer>> {
        let listen = listen.trim();
        if listen.is_empty() {
            return Ok(None);
        }
        let server = Server::http(listen)
            .map_err(|e| Error::Config(format!("metrics listener cannot bind {listen}: {e}")))?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| Error::Internal("metrics listener has no IP address".into()))?;
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("tw-http".into())
            .spawn(move || {
                let span = tracing::info_span!("http", addr = %addr);
                let _entered = span.enter();
                for request in serving.incoming_requests() {
                    respond(request, &served);
                }
            })
            .map_err(|e| Error::Internal(format!("cannot spawn http thread: {e}")))?;
        tracing::info!(addr = %addr, "metrics listener started");
        Ok(Some(HttpServer {
            server,
            addr,
            thread: Some(thread),
        }))
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn text(status: u16, body: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    let mut response = Response::from_string(body).with_status_code(status);
    if let Some(h) = header("Content-Type", "text/plain; charset=utf-8") {
        response.add_header(h);
    }
    response
}

/// Serves one request.
fn respond(request: Request, served: &[Served]) {
    let path = request.url().split('?').next().unwrap_or("").to_string();
    let get = matches!(request.method(), Method::Get | Method::Head);
    let response = match (get, path.as_str()) {
        (true, "/metrics") => match exposition::render_all(served) {
            Ok(body) => {
                let mut response = Response::from_string(body);
                if let Some(h) = header("Content-Type", exposition::CONTENT_TYPE) {
                    response.add_header(h);
                }
                response
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics rendering failed");
                text(500, "metrics rendering failed\n")
            }
        },
        (true, "/livez") => text(200, "ok\n"),
        (true, "/readyz") => {
            if served.iter().all(|s| s.metrics.health.is_ready()) {
                text(200, "ready\n")
            } else {
                text(
                    503,
                    "not ready: input not assigned or nothing consumed yet\n",
                )
            }
        }
        (true, _) => text(404, "not found; try /metrics, /livez or /readyz\n"),
        (false, _) => {
            // RFC 9110: a 405 lists the methods the resource does take.
            let mut response = text(405, "method not allowed\n");
            if let Some(h) = header("Allow", "GET, HEAD") {
                response.add_header(h);
            }
            response
        }
    };
    if let Err(e) = request.respond(response) {
        tracing::debug!(error = %e, "http client went away");
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// The raw response to `request_line` on a listener over empty metrics.
    fn exchange(request_line: &str) -> String {
        let server = HttpServer::start(
            "127.0.0.1:0",
            Metrics::new(1, 1, Vec::new()),
            Arc::new(PartitionRegistry::default()),
        )
        .unwrap()
        .unwrap();
        let addr = server.local_addr();
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "{request_line}\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    #[test]
    fn a_method_other_than_get_or_head_is_405_with_allow() {
        for method in ["POST", "PUT", "DELETE"] {
            let response = exchange(&format!("{method} /metrics HTTP/1.1"));
            let (head, _) = response.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.1 405 "), "{response}");
            assert!(
                head.lines()
                    .any(|line| line.eq_ignore_ascii_case("allow: GET, HEAD")),
                "{response}"
            );
        }
        let response = exchange("GET /livez HTTP/1.1");
        assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
        assert!(
            !response.to_ascii_lowercase().contains("\r\nallow:"),
            "{response}"
        );
    }
}
