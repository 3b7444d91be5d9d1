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

/// `probe` against another service (both kinds, see [`http_server`]) at
/// the DSN `dsn(port)`: critical, `up` = 0, never "refusing", and the
/// message containing `named` when given.
fn down_on_another_service(
    probe: &Path,
    dsn: impl Fn(u16) -> String,
    up: &str,
    named: Option<&str>,
) {
    for close_at_once in [false, true] {
        let checked = alive(probe, &dsn(http_server(close_at_once)));
        let context = format!("closing at once: {close_at_once}: {:#}", checked.json);
        assert_eq!(checked.status(), "critical", "{context}");
        assert_eq!(checked.value(up), 0.0, "{context}");
        assert!(
            !checked.message().contains("refus"),
            "another service is not a refusing server: {context}"
        );
        if let Some(named) = named {
            assert!(checked.message().contains(named), "{context}");
        }
    }
}

#[test]
fn another_service_on_the_redis_port_is_down_and_named() {
    down_on_another_service(
        Path::new("builtin:redis-alive"),
        |port| format!("redis://127.0.0.1:{port}"),
        "redis.up",
        Some("is this port a Redis server?"),
    );
}

#[test]
fn another_service_on_the_mysql_port_is_down() {
    down_on_another_service(
        &probes::path("mysql-alive"),
        |port| format!("mysql://watchpost@127.0.0.1:{port}/"),
        "mysql.up",
        None,
    );
}

#[test]
fn another_service_on_the_postgresql_port_is_down_and_named() {
    down_on_another_service(
        Path::new("builtin:pg-alive"),
        |port| format!("postgres://watchpost@127.0.0.1:{port}/postgres?sslmode=disable"),
        "postgresql.up",
        Some("is this port a PostgreSQL server?"),
    );
}
