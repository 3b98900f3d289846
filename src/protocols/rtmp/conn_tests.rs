//! ServerConn and ClientConn over an in-memory pipe.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

use super::*;

const T: Duration = Duration::from_secs(5);

async fn pair(url: &str) -> (ClientConn<DuplexStream>, ServerConn<DuplexStream>) {
    let url: RtmpUrl = url.parse().unwrap();
    // A small pipe so writes block and interleave with reads.
    let (a, b) = tokio::io::duplex(1024);
    let server = async move {
        let mut server = ServerConn::accept(b, T).await.unwrap();
        // `_result` for connect goes out from next_event.
        let event = server.next_event().await;
        assert!(matches!(event, Ok(Some(ServerEvent::Connect { .. }))), "{event:?}");
        server
    };
    let (client, server) = tokio::join!(ClientConn::connect_over(a, &url, T), server);
    (client.unwrap(), server)
}

async fn with_timeout<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(T, f).await.expect("test step timed out")
}

/// A stream whose reads return at most 100 bytes and are `Pending` every other time, so a
/// caller that gives up on pending futures cancels reads often, also mid-message.
struct Trickle {
    inner: DuplexStream,
    stall: bool,
}

impl AsyncRead for Trickle {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        self.stall = !self.stall;
        if self.stall {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let mut local = [0u8; 100];
        let want = buf.remaining().min(local.len());
        let mut small = ReadBuf::new(&mut local[..want]);
        let r = Pin::new(&mut self.inner).poll_read(cx, &mut small);
        buf.put_slice(small.filled());
        r
    }
}

impl AsyncWrite for Trickle {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn publish_survives_next_event_cancelled_mid_message() {
    let url: RtmpUrl = "rtmp://h/live/k".parse().unwrap();
    let (a, b) = tokio::io::duplex(1024);
    let server = async move {
        let mut server = ServerConn::accept(Trickle { inner: b, stall: false }, T).await.unwrap();
        assert!(matches!(server.next_event().await, Ok(Some(ServerEvent::Connect { .. }))));
        assert_eq!(
            server.next_event().await.unwrap(),
            Some(ServerEvent::Publish { app: "live".into(), key: "k".into(), query: None })
        );
        server.accept_publish().await.unwrap();
        server
    };
    let client = async {
        let mut client = ClientConn::connect_over(a, &url, T).await.unwrap();
        client.publish().await.unwrap();
        client
    };
    let (mut client, mut server) = with_timeout(async { tokio::join!(client, server) }).await;

    let sender = tokio::spawn(async move {
        for i in 0..100u32 {
            let payload: Vec<u8> = (0..5000u32).map(|j| (i + j) as u8).collect();
            client.send_media(MediaKind::Video, i * 40, &payload).await.unwrap();
        }
        client.close().await;
    });
    let mut got = Vec::new();
    let mut cancelled = 0u32;
    with_timeout(async {
        loop {
            // Poll next_event once; if it is not ready, drop it (cancel) and come back.
            tokio::select! {
                biased;
                ev = server.next_event() => match ev.unwrap() {
                    Some(ServerEvent::Media(m)) => got.push(m),
                    Some(ServerEvent::Unpublish) => break,
                    other => panic!("unexpected {other:?}"),
                },
                _ = std::future::ready(()) => {
                    cancelled += 1;
                    tokio::task::yield_now().await;
                }
            }
        }
    })
    .await;
    with_timeout(sender).await.unwrap();
    assert!(cancelled > 1000, "only {cancelled} cancellations");
    assert_eq!(got.len(), 100);
    for (i, m) in got.iter().enumerate() {
        let i = i as u32;
        assert_eq!((m.kind, m.timestamp, m.payload.len()), (MediaKind::Video, i * 40, 5000));
        assert!(m.payload.iter().enumerate().all(|(j, b)| *b == (i + j as u32) as u8), "payload {i}");
    }
}

#[tokio::test]
async fn play_over_a_pipe_with_shared_chunks() {
    let (mut client, mut server) = with_timeout(pair("rtmp://h/live/k?auth=1")).await;
    let play = async {
        let ev = server.next_event().await.unwrap();
        assert_eq!(ev, Some(ServerEvent::Play { app: "live".into(), key: "k".into(), query: Some("auth=1".into()) }));
        server.accept_play().await.unwrap();
        server
    };
    let (played, mut server) = with_timeout(async { tokio::join!(client.play(), play) }).await;
    played.unwrap();

    let frames: Vec<Bytes> = (0..50u8).map(|i| Bytes::from(vec![i; 3000 + usize::from(i)])).collect();
    let shared: Vec<Bytes> =
        frames.iter().enumerate().map(|(i, f)| encode_media_chunks(MediaKind::Video, i as u32 * 40, f)).collect();
    let sender = tokio::spawn(async move {
        for c in &shared {
            server.send_chunks(c).await.unwrap();
        }
        server.end_play().await.unwrap();
        // Keep serving protocol traffic until the client leaves.
        while let Ok(Some(ev)) = server.next_event().await {
            if ev == ServerEvent::Stop {
                break;
            }
        }
        server.close().await;
    });
    let mut got = Vec::new();
    loop {
        match with_timeout(client.next_event()).await.unwrap() {
            Some(ClientEvent::Media(m)) => got.push(m),
            Some(ClientEvent::Status { code, .. }) => {
                assert_eq!(code, "NetStream.Play.UnpublishNotify");
                break;
            }
            Some(ClientEvent::StreamEof) => {}
            None => panic!("server closed early"),
        }
    }
    client.close().await;
    with_timeout(sender).await.unwrap();
    assert_eq!(got.len(), frames.len());
    for (i, (m, f)) in got.iter().zip(&frames).enumerate() {
        assert_eq!((m.kind, m.timestamp), (MediaKind::Video, i as u32 * 40));
        assert!(m.payload == *f, "frame {i} differs");
    }
}

#[tokio::test]
async fn handshake_timeout_and_rejection_reach_the_client() {
    let (_idle, b) = tokio::io::duplex(64);
    let r = ServerConn::accept(b, Duration::from_millis(100)).await;
    assert!(matches!(r, Err(RtmpError::Timeout("handshake"))));

    let (mut client, mut server) = with_timeout(pair("rtmp://h/live/busy")).await;
    let reject = async {
        assert!(matches!(server.next_event().await, Ok(Some(ServerEvent::Publish { .. }))));
        server.reject_publish("already publishing").await.unwrap();
        server.close().await;
    };
    let (published, ()) = with_timeout(async { tokio::join!(client.publish(), reject) }).await;
    match published {
        Err(RtmpError::Rejected { code, description }) => {
            assert_eq!((code.as_str(), description.as_str()), ("NetStream.Publish.BadName", "already publishing"));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}
