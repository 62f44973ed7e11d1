//! HTTPS on the single binary: rustls (ring) with the certificate and key read from PEM files
//! and read again whenever either file changes (a periodic modification-time check), so a
//! renewed certificate is served without a restart. A file that does not load keeps the
//! certificate in use (and logs why). [`Listener`] hands axum connections whose TLS handshake
//! is done; handshakes run on their own tasks, so a slow client holds up nobody else.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The `Strict-Transport-Security` value of every answer over TLS: browsers use HTTPS only for
/// a year, and for no other host than this one.
pub const HSTS: &str = "max-age=31536000";

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the certificate chain and its private key are, and how often to look for new ones.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM: the server's certificate first, then its intermediates.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// How often the files' modification times are checked.
    pub check_every: Duration,
}

impl TlsFiles {
    /// The files, checked every 10 seconds.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> TlsFiles {
        TlsFiles {
            cert: cert.into(),
            key: key.into(),
            check_every: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no usable PEM private key: {message}")]
    Key { path: PathBuf, message: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read(&files.cert)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(std::result::Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key_pem = read(&files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Key {
        path: files.key.clone(),
        message: e.to_string(),
    })?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key {
            path: files.key.clone(),
            message: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| TlsError::Key {
        path: files.key.clone(),
        message: format!("it does not match the certificate: {e}"),
    })?;
    Ok(Arc::new(certified))
}

/// The certificate in use, swapped when the files change.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// A TCP listener that answers TLS: what [`crate::serve_tls`] serves on.
pub struct Listener {
    local: SocketAddr,
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Listener {
    /// Loads the certificate (an error if it does not load: the host must not start without
    /// one), then accepts on `tcp` and watches the files until the listener is dropped.
    pub fn new(tcp: TcpListener, files: TlsFiles) -> Result<Listener, TlsError> {
        let provider = provider();
        let current = Arc::new(Current(RwLock::new(load(&files, &provider)?)));
        let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let local = tcp.local_addr().map_err(|source| TlsError::Read {
            path: PathBuf::from("<listener>"),
            source,
        })?;
        let (send, accepted) = mpsc::channel(64);
        let accept = tokio::spawn(accept_loop(tcp, acceptor, send));
        let watch = tokio::spawn(watch_files(files, provider, current));
        Ok(Listener {
            local,
            accepted,
            tasks: vec![accept, watch],
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    send: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait, as axum's own listener does.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, send) = (acceptor.clone(), send.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    send.send((tls, peer)).await.ok();
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

async fn watch_files(files: TlsFiles, provider: Arc<CryptoProvider>, current: Arc<Current>) {
    let stamp = |files: &TlsFiles| (modified(&files.cert), modified(&files.key));
    let mut seen = stamp(&files);
    loop {
        tokio::time::sleep(files.check_every).await;
        let now = stamp(&files);
        if now == seen {
            continue;
        }
        match load(&files, &provider) {
            Ok(certified) => {
                *current.0.write().unwrap_or_else(|e| e.into_inner()) = certified;
                seen = now;
                tracing::info!(cert = %files.cert.display(), "TLS certificate reloaded");
            }
            // A half-written pair (the certificate replaced, not yet the key) loads on a later
            // check, once both files are there; `seen` stays, so it is tried again.
            Err(error) => tracing::warn!(%error, "the new TLS certificate does not load yet"),
        }
    }
}

impl axum::serve::Listener for Listener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accept loop ended only if aborted, i.e. the listener is being dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
