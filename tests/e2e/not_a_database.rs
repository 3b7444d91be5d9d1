//! A port held by another service (an HTTP server answering 400) is the
//! database down, not up: `pg-alive`, `mysql-alive` and `redis-alive`
//! each report `up = 0` and critical, never "refusing" (which says a
//! server of the engine is alive). Found by a new user's trial: a
//! `redis://` target on a non-Redis port counted as up.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;
use watchpost_e2e::probes;
use watchpost_e2e::report::{Checked, check};

/// A listener that answers every connection as an HTTP server would a
/// request it cannot read: the answer first (the MySQL protocol has the
/// server speak first), then, unless `close_at_once`, it reads what the
/// client sent before it closes (else the client's next write meets a
/// closed connection: a broken pipe or a reset, not the answer).
fn http_server(close_at_once: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let _ = stream.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Request",
                );
                if close_at_once {
                    return;
                }
                let _ = stream.set_read_timeout(Some(Duration::from_millis(300)));
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
            });
        }
    });
    port
}

fn alive(probe: &Path, dsn: &str) -> Checked {
    let args = [
        "--target".to_string(),
        format!("primary={dsn}"),
        "--timeout".to_string(),
        "5s".to_string(),
    ];
    check(probe, &args)
}

fn assert_down(checked: &Checked, up: &str) {
    assert_eq!(checked.status(), "critical", "{:#}", checked.json);
    assert_eq!(checked.value(up), 0.0, "{:#}", checked.json);
    assert!(
        !checked.message().contains("refus"),
        "another service is not a refusing server: {}",
        checked.message()
    );
}

#[test]
fn another_service_on_the_redis_port_is_down_and_named() {
    for close_at_once in [false, true] {
        let port = http_server(close_at_once);
        let checked = alive(
            Path::new("builtin:redis-alive"),
            &format!("redis://127.0.0.1:{port}"),
        );
        assert_down(&checked, "redis.up");
        assert!(
            checked.message().contains("is this port a Redis server?"),
            "closing at once: {close_at_once}: {}",
            checked.message()
        );
    }
}

#[test]
fn another_service_on_the_mysql_port_is_down() {
    for close_at_once in [false, true] {
        let port = http_server(close_at_once);
        let checked = alive(
            &probes::path("mysql-alive"),
            &format!("mysql://watchpost@127.0.0.1:{port}/"),
        );
        assert_down(&checked, "mysql.up");
    }
}

#[test]
fn another_service_on_the_postgresql_port_is_down() {
    for close_at_once in [false, true] {
        let port = http_server(close_at_once);
        let checked = alive(
            Path::new("builtin:pg-alive"),
            &format!("postgres://watchpost@127.0.0.1:{port}/postgres?sslmode=disable"),
        );
        assert_down(&checked, "postgresql.up");
        assert!(
            checked
                .message()
                .contains("is this port a PostgreSQL server?"),
            "closing at once: {close_at_once}: {}",
            checked.message()
        );
    }
}
