//! The SDK's HTTPS client (`aws::http_client`) against TLS servers on loopback.
//!
//! The client builds its TLS connector on the first request instead of at
//! client construction (see `aws::http_client`); these checks pin what that
//! must not change: requests go over verified TLS with the platform roots
//! (here `SSL_CERT_FILE`), a server outside them is refused, connections are
//! reused, and `warm_up` opens the connection the first post then uses.
//!
//! One test function: it sets `SSL_CERT_FILE` before anything reads it, and no
//! other test in this binary runs alongside.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use switchboard::adapters::management_api::ManagementApi;
use switchboard::aws;
use switchboard::ports::{Gateway, GatewayError};
use switchboard::posting::PostingPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// A TLS server answering every request with 200 and an empty body; it counts
/// handshakes and records request lines.
struct Server {
    addr: std::net::SocketAddr,
    handshakes: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

async fn serve(certified: &rcgen::CertifiedKey<rcgen::KeyPair>) -> Server {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![certified.cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (counted, recorded) = (handshakes.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, counted, recorded) =
                (acceptor.clone(), counted.clone(), recorded.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let mut buffer = Vec::new();
                // Bounded: at most 100 requests per connection.
                for _ in 0..100 {
                    let Some(head_end) = read_until_head_end(&mut tls, &mut buffer).await else {
                        return;
                    };
                    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    while buffer.len() < head_end + length {
                        let mut chunk = [0u8; 4096];
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    recorded
                        .lock()
                        .await
                        .push(head.lines().next().unwrap_or_default().to_owned());
                    buffer.drain(..head_end + length);
                    if tls
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Server {
        addr,
        handshakes,
        requests,
    }
}

/// Reads until `buffer` holds a whole request head; returns its length.
async fn read_until_head_end<S: AsyncReadExt + Unpin>(
    stream: &mut S,
    buffer: &mut Vec<u8>,
) -> Option<usize> {
    loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buffer.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

fn gateway(sdk: &aws_config::SdkConfig, server: &Server) -> ManagementApi {
    let options = PostingPolicy {
        post_timeout: Duration::from_secs(5),
        post_attempts: 1,
        ..PostingPolicy::default()
    };
    ManagementApi::new(aws::lazy_management_api(
        sdk,
        &format!("https://{}/prod", server.addr),
        &options,
    ))
}

#[tokio::test]
async fn https_posts_are_verified_reuse_their_connection_and_can_be_warmed() {
    let trusted = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let untrusted = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let bundle =
        std::env::temp_dir().join(format!("switchboard-tls-test-{}.pem", std::process::id()));
    std::fs::write(&bundle, trusted.cert.pem()).unwrap();
    // SAFETY: the only test in this binary, and nothing has read the environment
    // yet: the SDK reads SSL_CERT_FILE when the first TLS connector is built.
    unsafe { std::env::set_var("SSL_CERT_FILE", &bundle) };

    let sdk = aws::defaults()
        .region(aws_config::Region::new("eu-central-1"))
        .test_credentials()
        .load()
        .await;

    // Posts go over TLS and share one connection.
    let server = serve(&trusted).await;
    let api = gateway(&sdk, &server);
    api.post_to_connection("abc", b"hello").await.unwrap();
    api.post_to_connection("abc", b"again").await.unwrap();
    assert_eq!(server.handshakes.load(Ordering::SeqCst), 1);
    assert_eq!(
        *server.requests.lock().await,
        vec![
            "POST /prod/@connections/abc HTTP/1.1".to_owned(),
            "POST /prod/@connections/abc HTTP/1.1".to_owned()
        ]
    );

    // A server whose certificate is not among the roots is refused: no post.
    let impostor = serve(&untrusted).await;
    let refused = gateway(&sdk, &impostor)
        .post_to_connection("abc", b"hello")
        .await;
    assert!(
        matches!(&refused, Err(GatewayError::Unreachable(m)) if m.contains("certificate")),
        "{refused:?}"
    );
    assert_eq!(impostor.handshakes.load(Ordering::SeqCst), 0);
    assert!(impostor.requests.lock().await.is_empty());

    // Warming opens the connection; the first post reuses it.
    let warmed = serve(&trusted).await;
    let api = gateway(&sdk, &warmed);
    api.warm_up().await;
    assert_eq!(warmed.handshakes.load(Ordering::SeqCst), 1);
    api.post_to_connection("abc", b"hello").await.unwrap();
    assert_eq!(warmed.handshakes.load(Ordering::SeqCst), 1);
    assert_eq!(
        *warmed.requests.lock().await,
        vec![
            "POST /prod/@connections/warm-up HTTP/1.1".to_owned(),
            "POST /prod/@connections/abc HTTP/1.1".to_owned()
        ]
    );
    let _ = std::fs::remove_file(&bundle);
}
