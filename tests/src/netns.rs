//! Network namespaces for the partition tests: a hub namespace holding a
//! bridge (and whatever the test runs there: the etcd members, the
//! delaying proxies), one namespace per node joined to the bridge by a
//! veth pair (its *cluster link*, which [`Net::cut`] takes down and
//! [`Net::heal`] brings back), and two links into the test's own
//! namespace that a cut never touches: one to the hub (the test reaches
//! etcd) and one per node (the test's clients and the split-brain
//! detector reach every server, also a cut-off one, as clients next to it
//! would). Addresses only from 198.18.0.0/15 (reserved for benchmarks):
//!
//! - the bridge: 198.18.0.1, etcd members 198.18.0.11.., proxies
//!   198.18.0.2, node `i` (1-based) 198.18.0.(100 + i), the test 198.18.0.254;
//! - node `i`'s own link: 198.19.i.1 (the test) and 198.19.i.2 (the node).
//!
//! One harness at a time on a machine (a lock file), so the addresses in
//! the test's namespace never clash. Everything is removed when the `Net`
//! drops (also on a panic): the processes left in the namespaces are
//! killed, the namespaces and links deleted. If the test process dies
//! without dropping it (SIGINT, SIGKILL), a small reaper process in a
//! session of its own sees its pipe close and removes them; and names
//! with this prefix left by a dead process are removed at the next start.
//! Processes start in a namespace with `ip netns exec`; the test's own
//! threads enter one with `setns` ([`in_netns`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Every name made here starts with this, then the creating process's pid.
const PREFIX: &str = "wpp";

pub struct Net {
    /// The hub namespace (bridge, etcd, proxies).
    pub hub: String,
    /// The nodes' namespaces, node 1 first.
    pub nodes: Vec<String>,
    /// Links in the test's namespace (deleted with their peers).
    links: Vec<String>,
    reaper: Option<(Child, ChildStdin)>,
    _lock: std::fs::File,
}

/// The bridge's address of etcd member `i` (0-based).
pub fn etcd_addr(i: usize) -> String {
    format!("198.18.0.{}", 11 + i)
}

/// Where the test's delaying proxies listen, in the hub.
pub const PROXY_ADDR: &str = "198.18.0.2";

/// Node `i`'s (0-based) address on the cluster link.
pub fn node_addr(i: usize) -> String {
    format!("198.18.0.{}", 101 + i)
}

/// Node `i`'s (0-based) address on its link to the test.
pub fn client_addr(i: usize) -> String {
    format!("198.19.{}.2", i + 1)
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip (install iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(args: &[&str]) {
    ip(args).unwrap_or_else(|e| panic!("{e}"));
}

/// The shell commands that remove namespaces and links (no-ops when they
/// are gone already).
fn cleanup_script(namespaces: &[String], links: &[String]) -> String {
    let mut script = String::new();
    for ns in namespaces {
        script.push_str(&format!(
            "for p in $(ip netns pids {ns} 2>/dev/null); do kill -9 $p 2>/dev/null; done; ip netns del {ns} 2>/dev/null; "
        ));
    }
    for link in links {
        script.push_str(&format!("ip link del {link} 2>/dev/null; "));
    }
    script.push_str("true");
    script
}

fn run_script(script: &str) {
    let _ = Command::new("sh").args(["-c", script]).status();
}

/// The pid in a name made by this module (`wpp<pid>...`), if it is one.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

fn stale(name: &str) -> bool {
    owner_pid(name).is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// Remove what an earlier run that died left behind.
fn remove_stale() {
    let list = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let namespaces: Vec<String> = list(&["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| stale(n))
        .map(String::from)
        .collect();
    let links: Vec<String> = list(&["-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .filter(|n| stale(n))
        .collect();
    if !namespaces.is_empty() || !links.is_empty() {
        eprintln!("netns: removing what a dead run left: {namespaces:?} {links:?}");
        run_script(&cleanup_script(&namespaces, &links));
    }
}

impl Net {
    /// The hub and `n` node namespaces, linked and addressed.
    pub fn create(n: usize) -> Net {
        assert!((1..=9).contains(&n), "1 to 9 nodes");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(std::env::temp_dir().join("watchpost-netns.lock"))
            .expect("open the netns lock file");
        // SAFETY: flock on our own open descriptor.
        let locked = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
        assert_eq!(locked, 0, "flock: {}", std::io::Error::last_os_error());
        remove_stale();
        let id = format!("{PREFIX}{}", std::process::id());
        let hub = format!("{id}hub");
        let nodes: Vec<String> = (1..=n).map(|i| format!("{id}n{i}")).collect();
        let links: Vec<String> = std::iter::once(format!("{id}h"))
            .chain((1..=n).map(|i| format!("{id}m{i}")))
            .collect();
        let mut all = vec![hub.clone()];
        all.extend(nodes.iter().cloned());
        let mut net = Net {
            hub: hub.clone(),
            nodes: nodes.clone(),
            links: links.clone(),
            reaper: None,
            _lock: lock,
        };
        net.reaper = spawn_reaper(&cleanup_script(&all, &links));
        for ns in &all {
            must(&["netns", "add", ns]);
            must(&["-n", ns, "link", "set", "lo", "up"]);
        }
        must(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        must(&["-n", &hub, "link", "set", "br0", "up"]);
        for addr in ["198.18.0.1", PROXY_ADDR]
            .into_iter()
            .map(String::from)
            .chain((0..3).map(etcd_addr))
        {
            must(&[
                "-n",
                &hub,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "br0",
            ]);
        }
        // The test's link to the hub.
        must(&[
            "link", "add", &links[0], "type", "veth", "peer", "name", "uplink", "netns", &hub,
        ]);
        must(&["-n", &hub, "link", "set", "uplink", "master", "br0", "up"]);
        must(&["addr", "add", "198.18.0.254/24", "dev", &links[0]]);
        must(&["link", "set", &links[0], "up"]);
        for (i, ns) in nodes.iter().enumerate() {
            let hub_side = format!("n{}", i + 1);
            must(&[
                "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", &hub_side,
                "netns", &hub,
            ]);
            must(&["-n", &hub, "link", "set", &hub_side, "master", "br0", "up"]);
            must(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", node_addr(i)),
                "dev",
                "eth0",
            ]);
            must(&["-n", ns, "link", "set", "eth0", "up"]);
            let mine = &links[i + 1];
            must(&[
                "link", "add", mine, "type", "veth", "peer", "name", "client", "netns", ns,
            ]);
            must(&[
                "addr",
                "add",
                &format!("198.19.{}.1/24", i + 1),
                "dev",
                mine,
            ]);
            must(&["link", "set", mine, "up"]);
            must(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{}/24", client_addr(i)),
                "dev",
                "client",
            ]);
            must(&["-n", ns, "link", "set", "client", "up"]);
        }
        net
    }

    /// Cut node `i` (0-based) off: its cluster link goes down (packets
    /// are dropped, connections hang as on a real partition).
    pub fn cut(&self, i: usize) {
        must(&[
            "-n",
            &self.hub,
            "link",
            "set",
            &format!("n{}", i + 1),
            "down",
        ]);
    }

    /// Bring node `i`'s cluster link back.
    pub fn heal(&self, i: usize) {
        must(&["-n", &self.hub, "link", "set", &format!("n{}", i + 1), "up"]);
    }

    /// `/run/netns/NAME` of a namespace.
    pub fn path(ns: &str) -> String {
        format!("/run/netns/{ns}")
    }

    fn remove(&mut self) {
        let mut all = vec![self.hub.clone()];
        all.extend(self.nodes.iter().cloned());
        run_script(&cleanup_script(&all, &self.links));
        if let Some((mut child, stdin)) = self.reaper.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A process in a session of its own that runs `script` once this
/// process's pipe to it closes (this process exited, however it did).
fn spawn_reaper(script: &str) -> Option<(Child, ChildStdin)> {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new("sh");
    command
        .args(["-c", &format!("cat >/dev/null; {script}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only setsid(2) between fork and exec: a Ctrl-C to the test's
    // process group does not reach it.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = command.spawn().ok()?;
    let stdin = child.stdin.take()?;
    Some((child, stdin))
}

/// Run `work` on a new thread that entered namespace `ns` first (sockets
/// it and the threads it spawns make belong to that namespace).
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = Net::path(ns);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns on an open namespace file, for this thread only.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        work()
    })
}

/// A TCP proxy that adds latency (this kernel has no `netem`): every chunk
/// it reads is forwarded `delay` later, in order, both ways. It runs in a
/// namespace of the harness, on the test's threads.
pub struct DelayProxy {
    pub addr: SocketAddr,
    delay_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    ns: String,
}

impl DelayProxy {
    /// Listen on `listen` (in namespace `ns`) and forward to `upstream`.
    pub fn start(ns: &str, listen: SocketAddr, upstream: SocketAddr) -> DelayProxy {
        let delay_ms = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (delay, done) = (delay_ms.clone(), stop.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        in_netns(ns, move || {
            let listener = TcpListener::bind(listen);
            let listener = match listener {
                Ok(l) => {
                    let _ = ready_tx.send(Ok(l.local_addr().unwrap()));
                    l
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            for client in listener.incoming() {
                if done.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2))
                else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let (delay, done) = (delay.clone(), done.clone());
                    std::thread::spawn(move || pump(from, to, delay, done));
                }
            }
        });
        let addr = ready_rx
            .recv()
            .expect("the proxy thread")
            .unwrap_or_else(|e| panic!("proxy on {listen}: {e}"));
        DelayProxy {
            addr,
            delay_ms,
            stop,
            ns: ns.to_string(),
        }
    }

    /// Latency added to each direction from now on.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop (from inside its namespace) so it sees the flag.
        let addr = self.addr;
        let _ = in_netns(&self.ns, move || {
            let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(200));
        })
        .join();
    }
}

/// Copy `from` to `to`, each chunk `delay` after it was read, until either
/// end closes or the proxy stops.
fn pump(mut from: TcpStream, to: TcpStream, delay: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = std::thread::spawn(move || {
        let mut to = to;
        for (at, bytes) in rx {
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
    let _ = from.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buffer = [0u8; 16 << 10];
    while !stop.load(Ordering::SeqCst) {
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                let at = Instant::now() + Duration::from_millis(delay.load(Ordering::SeqCst));
                if tx.send((at, buffer[..n].to_vec())).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    drop(tx);
    let _ = writer.join();
    let _ = from.shutdown(std::net::Shutdown::Both);
}
