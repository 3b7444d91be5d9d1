//! Tests of the fresh connection's PING (its driver polled beside it, not
//! spawned) against a fake server on a loopback port, which answers as
//! the test says and records what it was sent: answered, refused
//! (`LOADING`, max clients) or closed without an answer.

use super::*;
use std::sync::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the fake server does with a command: the bytes it replies, or
/// None to close the connection without answering.
type Answer = fn(&[String]) -> Option<Vec<u8>>;

/// A fake server: its URL and the commands it was sent, in order.
struct Fake {
    url: String,
    sent: Arc<Mutex<Vec<Vec<String>>>>,
}

impl Fake {
    async fn start(answer: Answer) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}/0", listener.local_addr().unwrap());
        let sent = Arc::new(Mutex::new(Vec::new()));
        let record = sent.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut read = BufReader::new(read);
                    while let Some(command) = read_command(&mut read).await {
                        record.lock().unwrap().push(command.clone());
                        match answer(&command) {
                            Some(reply) => write.write_all(&reply).await.unwrap(),
                            None => return,
                        }
                    }
                });
            }
        });
        Fake { url, sent }
    }
}

/// One RESP command (an array of bulk strings); None at the end.
async fn read_command(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<Vec<String>> {
    let mut line = String::new();
    read.read_line(&mut line).await.ok()?;
    let count: usize = line.trim().strip_prefix('*')?.parse().ok()?;
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        line.clear();
        read.read_line(&mut line).await.ok()?;
        let len: usize = line.trim().strip_prefix('$')?.parse().ok()?;
        let mut arg = vec![0; len + 2];
        read.read_exact(&mut arg).await.ok()?;
        arg.truncate(len);
        args.push(String::from_utf8(arg).ok()?);
    }
    Some(args)
}

fn target(fake: &Fake) -> RedisTarget {
    RedisTarget::new("primary", &RedisSpec::new(&fake.url)).unwrap()
}

fn later() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

#[tokio::test]
async fn a_fresh_connection_s_ping_answered_refused_or_closed() {
    fn pong(_: &[String]) -> Option<Vec<u8>> {
        Some(b"+PONG\r\n".to_vec())
    }
    fn loading(_: &[String]) -> Option<Vec<u8>> {
        Some(b"-LOADING Redis is loading the dataset in memory\r\n".to_vec())
    }
    fn full(_: &[String]) -> Option<Vec<u8>> {
        Some(b"-ERR max number of clients reached\r\n".to_vec())
    }
    fn closes(_: &[String]) -> Option<Vec<u8>> {
        None
    }
    let fake = Fake::start(pong).await;
    target(&fake).ping(later()).await.unwrap();
    assert_eq!(
        fake.sent.lock().unwrap().as_slice(),
        [vec!["PING".to_string()]]
    );

    let fake = Fake::start(loading).await;
    let error = target(&fake).ping(later()).await.unwrap_err();
    assert!(
        matches!(&error, Error::Refused(m) if m.contains("LOADING")),
        "{error:?}"
    );

    let fake = Fake::start(full).await;
    let error = target(&fake).ping(later()).await.unwrap_err();
    assert!(
        matches!(&error, Error::Refused(m) if m.contains("max number of clients")),
        "{error:?}"
    );

    let fake = Fake::start(closes).await;
    let error = target(&fake).ping(later()).await.unwrap_err();
    assert!(
        matches!(&error, Error::Refused(m) if m.contains("closed it without answering")),
        "{error:?}"
    );
}
