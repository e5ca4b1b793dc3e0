//! What naming the calling program costs the API: one lookup per new connection (the kernel's socket table
//! over netlink, then the process holding the socket among this user's processes), against reading
//! `/proc/net/tcp`, which the lookup avoids. Two holders: this process (the client is in-process) and a
//! `sleep` child that inherited the connection, as a `curl` would hold it.
//!
//! Prints a Markdown table and rewrites the `callers` section of `docs/benchmarks.md`.

mod common;

#[cfg(target_os = "linux")]
fn main() {
    use common::{ms, percentile, stamp, write_section};
    use kvproxy_app::Identity;
    use kvproxy_server::peer::tcp_client;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    const RUNS: usize = 200;
    const CHILD_RUNS: usize = 30;

    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
    let server = listener.local_addr().expect("its address");
    let summary = |samples: &mut Vec<Duration>| {
        samples.sort();
        (ms(percentile(samples, 0.5)), ms(percentile(samples, 0.95)))
    };

    let mut own = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let _client = TcpStream::connect(server).expect("connect");
        let (accepted, peer) = listener.accept().expect("accept");
        let local = accepted.local_addr().expect("local address");
        let started = Instant::now();
        let identity = tcp_client(peer, local);
        own.push(started.elapsed());
        assert!(
            matches!(identity, Identity::Program(ref p) if p.pid == std::process::id()),
            "{identity:?}"
        );
    }

    let mut child = Vec::with_capacity(CHILD_RUNS);
    for _ in 0..CHILD_RUNS {
        let client = TcpStream::connect(server).expect("connect");
        // The child inherits the connection; our copy is closed, so the child alone holds it.
        // SAFETY: clears close-on-exec on a descriptor we own.
        unsafe { libc::fcntl(client.as_raw_fd(), libc::F_SETFD, 0) };
        let mut sleeper = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .expect("start sleep");
        drop(client);
        let (accepted, peer) = listener.accept().expect("accept");
        let local = accepted.local_addr().expect("local address");
        let started = Instant::now();
        let identity = tcp_client(peer, local);
        child.push(started.elapsed());
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        assert!(
            matches!(identity, Identity::Program(ref p) if p.name == "sleep"),
            "{identity:?}"
        );
    }

    let mut table = Vec::with_capacity(20);
    for _ in 0..20 {
        let started = Instant::now();
        let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        table.push(started.elapsed());
        assert!(!text.is_empty());
    }

    let processes = std::fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                })
                .count()
        })
        .unwrap_or(0);
    let rows = [
        ("lookup, the client is this process", &mut own),
        ("lookup, a `sleep` child holds the connection", &mut child),
        ("for comparison: reading `/proc/net/tcp` once", &mut table),
    ];
    let mut body = format!(
        "## Naming the calling program\n\n`cargo bench -p kvproxy-cli --bench callers` (part of `make bench`), {}, {processes} processes running. The API names the program at the other end of each new connection once (a kept-alive connection is looked up on its first token request only): an exact `sock_diag` query over netlink for the socket's owner and inode, then a scan of this user's processes, newest first, for the one that holds it. Reading `/proc/net/tcp`, the usual way, costs more on its own, since the kernel walks its whole connection hash table, sized by the machine's memory.\n\n| what | runs | p50 ms | p95 ms |\n|---|---|---|---|\n",
        stamp()
    );
    for (what, samples) in rows {
        let runs = samples.len();
        let (p50, p95) = summary(samples);
        body.push_str(&format!("| {what} | {runs} | {p50:.3} | {p95:.3} |\n"));
    }
    body.push('\n');
    write_section("callers", &body);
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("callers: measured on Linux only");
}
