//! `cargo xtask demo`: the collector with the demo site and the dashboard,
//! ending its start-up with two plain lines — the dashboard's address and
//! the admin token to paste into it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::Command;
use std::time::Duration;

use crate::Result;

/// The collector's default address (`WAYMARK_ADDR`, `--addr`).
const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// Runs `collector` (the collector's `cargo run`, `extra` its own flags) and
/// prints where the dashboard is and its token once it answers.
pub fn run(mut collector: Command, extra: &[String]) -> Result {
    let addr = flag(extra, "--addr")
        .or_else(|| std::env::var("WAYMARK_ADDR").ok().filter(|a| !a.is_empty()))
        .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let shown = browsable(&addr);
    if answers(&shown) {
        return Err(format!(
            "something already listens on {shown}: stop it (another `cargo xtask demo`?) \
             or pick another address with `cargo xtask demo --addr 127.0.0.1:8081`"
        ));
    }
    let token = match flag(extra, "--admin-token")
        .or_else(|| std::env::var("WAYMARK_ADMIN_TOKEN").ok())
        .filter(|t| !t.is_empty())
    {
        Some(token) => token,
        None => {
            let token = random_token()?;
            collector.env("WAYMARK_ADMIN_TOKEN", &token);
            token
        }
    };
    // The collector's own log at `warn` unless asked otherwise, so that the
    // two lines below end the start-up.
    if std::env::var_os("RUST_LOG").is_none() {
        collector.env("RUST_LOG", "warn");
    }
    eprintln!("xtask: building and starting the collector (Ctrl-C stops it)");
    let mut child = collector
        .spawn()
        .map_err(|e| format!("could not start the collector: {e}"))?;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("the collector stopped ({status})"));
        }
        if answers(&shown) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    println!();
    println!("Dashboard:   http://{shown}/dashboard/");
    println!("Admin token: {token}");
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the collector stopped ({status})"))
    }
}

/// The value of `--name value` or `--name=value` among `args`.
fn flag(args: &[String], name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    args.iter().enumerate().find_map(|(i, arg)| {
        if arg == name {
            args.get(i + 1).cloned()
        } else {
            arg.strip_prefix(&prefix).map(str::to_owned)
        }
    })
}

/// The address a browser on this machine opens for a listening address:
/// an unspecified host (`0.0.0.0`, `[::]`) becomes loopback.
fn browsable(addr: &str) -> String {
    match addr.parse::<SocketAddr>() {
        Ok(SocketAddr::V4(a)) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
        Ok(SocketAddr::V6(a)) if a.ip().is_unspecified() => format!("[::1]:{}", a.port()),
        _ => addr.to_owned(),
    }
}

/// Whether an HTTP server answers `GET /healthz` at `addr`.
fn answers(addr: &str) -> bool {
    let Some(target) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&target, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut head = [0u8; 12];
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_exact(&mut head).is_ok()
        && head.starts_with(b"HTTP/1.1 ")
}

/// 128 random bits from the OS, as 32 hex digits.
fn random_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| {
            format!("no random token ({e}): set WAYMARK_ADMIN_TOKEN to a long random one")
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_are_read_in_both_spellings() {
        let given = args(&[
            "--addr",
            "127.0.0.1:9000",
            "--admin-token=secret-secret-123",
        ]);
        assert_eq!(flag(&given, "--addr").as_deref(), Some("127.0.0.1:9000"));
        assert_eq!(
            flag(&given, "--admin-token").as_deref(),
            Some("secret-secret-123")
        );
        assert_eq!(flag(&given, "--data"), None);
    }

    #[test]
    fn an_unspecified_host_is_opened_on_loopback() {
        assert_eq!(browsable("0.0.0.0:8080"), "127.0.0.1:8080");
        assert_eq!(browsable("[::]:8080"), "[::1]:8080");
        assert_eq!(browsable("127.0.0.1:8080"), "127.0.0.1:8080");
    }

    #[test]
    fn tokens_are_long_enough_and_differ() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
