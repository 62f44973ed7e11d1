//! HTTPS on the single binary: the host answers over TLS with the certificate in its files,
//! says `Strict-Transport-Security`, does not answer cleartext on that port, and serves a
//! renewed certificate once its files are replaced, without a restart.

use std::path::Path;
use std::time::Duration;

use dealer_host::tls::{self, TlsFiles};
use dealer_tests::{Backend, TestApp, on_both_backends, scratch_dir};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

on_both_backends!(https_says_hsts_and_serves_a_renewed_certificate_without_a_restart);

/// Writes a new self-signed certificate for localhost and its key; returns the certificate
/// (DER).
fn self_signed(cert: &Path, key: &Path) -> Vec<u8> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("a self-signed certificate");
    // The key first: for a moment the old certificate is beside the new key, which the host
    // refuses to load, keeping the old pair.
    std::fs::write(key, made.key_pair.serialize_pem()).expect("write the key");
    std::fs::write(cert, made.cert.pem()).expect("write the certificate");
    made.cert.der().to_vec()
}

/// GETs `url` on a new connection; the status, the HSTS header and the server's certificate.
async fn fetch(url: &str) -> (u16, Option<String>, Vec<u8>) {
    // The certificates are self-signed: what the test checks is which one is served.
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .build()
        .expect("an HTTPS client");
    let response = client.get(url).send().await.expect("an HTTPS answer");
    let certificate = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("the server's certificate")
        .to_vec();
    let hsts = response
        .headers()
        .get("strict-transport-security")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (response.status().as_u16(), hsts, certificate)
}

async fn https_says_hsts_and_serves_a_renewed_certificate_without_a_restart(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let dir = scratch_dir("tls");
    let (cert, key) = (dir.path.join("cert.pem"), dir.path.join("key.pem"));
    let first = self_signed(&cert, &key);
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let port = tcp.local_addr().expect("the port").port();
    let files = TlsFiles {
        check_every: Duration::from_millis(50),
        ..TlsFiles::new(&cert, &key)
    };
    let listener = tls::Listener::new(tcp, files).expect("the certificate loads");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(dealer_host::serve(
        listener,
        app.state.clone(),
        async move {
            stopped.await.ok();
        },
    ));
    let health = format!("https://127.0.0.1:{port}/api/v1/health");

    let (status, hsts, served) = fetch(&health).await;
    assert_eq!(status, 200);
    assert_eq!(hsts.as_deref(), Some(tls::HSTS));
    assert_eq!(served, first, "the certificate in the files is served");
    assert!(
        reqwest::get(format!("http://127.0.0.1:{port}/api/v1/health"))
            .await
            .is_err(),
        "no cleartext HTTP on the TLS port"
    );

    let second = self_signed(&cert, &key);
    assert_ne!(first, second);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, hsts, served) = fetch(&health).await;
        assert_eq!((status, hsts.as_deref()), (200, Some(tls::HSTS)));
        if served == second {
            break;
        }
        assert_eq!(served, first, "the old certificate until the new one loads");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the renewed certificate is served without a restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    stop.send(()).ok();
    server
        .await
        .expect("the server task")
        .expect("the server stops cleanly");
}
