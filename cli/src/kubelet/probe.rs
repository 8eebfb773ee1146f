//! Readiness probes as the kubelet runs them: TCP connect and HTTP GET on 127.0.0.1 (ready
//! on a 2xx or 3xx status), and exec in the container.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ContainerPort;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A probe's port: a number, or the name of one of the container's ports.
pub fn port(p: &IntOrString, ports: &[ContainerPort]) -> Option<u16> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

fn connect(port: u16, timeout: Duration) -> Option<TcpStream> {
    TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), timeout).ok()
}

pub fn tcp(port: u16, timeout: Duration) -> bool {
    connect(port, timeout).is_some()
}

pub fn http(port: u16, path: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let Some(mut stream) = connect(port, timeout) else {
        return false;
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let _ = stream.set_read_timeout(Some(left.max(Duration::from_millis(1))));
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: kube-probe\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 64];
    while !head.contains(&b'\n') && head.len() < 256 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    head.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .is_some_and(|code| (200..400).contains(&code))
}

/// Runs `cmd` (the probe's command in the container, reading `input`) to its end, or kills it at the
/// timeout; ready when it exits 0.
pub fn exec(cmd: &mut Command, input: Option<Vec<u8>>, timeout: Duration) -> bool {
    let child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        let _ = stdin.write_all(&input);
    }
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                let _ = child.wait();
                return false;
            }
        }
    }
}
