//! `meshml status`: asks a node's HTTP API and prints the mesh as it sees it.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::StatusArgs;
use crate::{w, NodeError};

#[derive(Debug, Deserialize)]
struct Peer {
    id: String,
    state: String,
    connected: bool,
    last_seen_ms: u64,
    cores: u32,
    addrs: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Member {
    peer_id: String,
    cores: u32,
    memory_bytes: u64,
}

#[derive(Debug, Deserialize)]
struct Driving {
    term: u64,
}

#[derive(Debug, Deserialize)]
struct Raft {
    role: String,
    term: u64,
    driver: Option<String>,
    voters: Vec<String>,
    learners: Vec<String>,
    #[serde(default)]
    members: Vec<Member>,
    driving: Option<Driving>,
}

#[derive(Debug, Deserialize)]
struct Status {
    node: String,
    cluster: String,
    version: String,
    protocol_version: u32,
    listen: Vec<String>,
    peers: Vec<Peer>,
    raft: Option<Raft>,
    #[serde(default)]
    scrub: Option<crate::scrub::ScrubView>,
}

/// A minimal HTTP/1.1 GET to `http://HOST:PORT/PATH`; returns (status code, body).
pub fn http_get(base: &str, path: &str, token: Option<&str>) -> Result<(u16, String), NodeError> {
    http_call(base, "GET", path, token, None, Duration::from_secs(10))
}

/// A request body: content type, the bytes, and their length.
pub type Body<'a> = (&'a str, &'a mut dyn Read, u64);

/// A minimal HTTP/1.1 request with an optional streamed body; waits at most `wait` for
/// the answer. Returns (status code, body).
pub fn http_call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Body<'_>>,
    wait: Duration,
) -> Result<(u16, String), NodeError> {
    let (mut s, hostport) = connect(base, wait)?;
    let fail =
        |e: std::io::Error| NodeError::io(format!("{base} (is `meshml node` running there?)"), e);
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    match body {
        None => write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .map_err(fail)?,
        Some((ctype, reader, len)) => {
            write!(
                s,
                "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\n{auth}Content-Type: {ctype}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
            )
            .map_err(fail)?;
            std::io::copy(reader, &mut s).map_err(fail)?;
        }
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(fail)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| NodeError::Usage(format!("{base}: malformed HTTP response")))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| NodeError::Usage(format!("{base}: malformed HTTP status line")))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((code, body))
}

/// A connection to the node at `base` (`http://HOST:PORT`) with a read timeout; also
/// returns `HOST:PORT`.
fn connect(base: &str, wait: Duration) -> Result<(TcpStream, String), NodeError> {
    let hostport = base
        .strip_prefix("http://")
        .ok_or_else(|| NodeError::Usage(format!("--node {base}: expected http://HOST:PORT")))?
        .trim_end_matches('/');
    let fail =
        |e: std::io::Error| NodeError::io(format!("{base} (is `meshml node` running there?)"), e);
    let addr = hostport
        .to_socket_addrs()
        .map_err(fail)?
        .next()
        .ok_or_else(|| NodeError::Usage(format!("--node {base}: cannot resolve")))?;
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(fail)?;
    s.set_read_timeout(Some(wait)).map_err(fail)?;
    Ok((s, hostport.to_string()))
}

/// `GET path`, copying a 200 answer's body to `dest` as it arrives (bounded memory);
/// returns the status and, for any other status, the body as text.
pub fn http_download(
    base: &str,
    path: &str,
    token: Option<&str>,
    dest: &mut dyn Write,
    wait: Duration,
) -> Result<(u16, u64, String), NodeError> {
    let (mut s, hostport) = connect(base, wait)?;
    let fail =
        |e: std::io::Error| NodeError::io(format!("{base} (is `meshml node` running there?)"), e);
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {hostport}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(fail)?;
    let mut r = std::io::BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut r, &mut line).map_err(fail)? == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| NodeError::Usage(format!("{base}: malformed HTTP status line")))?;
    if code != 200 {
        let mut text = String::new();
        r.read_to_string(&mut text).map_err(fail)?;
        return Ok((code, 0, text));
    }
    let n = std::io::copy(&mut r, dest).map_err(|e| NodeError::io("output", e))?;
    Ok((code, n, String::new()))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Runs `meshml status`.
pub fn run(args: StatusArgs, out: &mut dyn Write) -> Result<(), NodeError> {
    let token = args
        .token_file
        .as_deref()
        .map(crate::http::read_token_file)
        .transpose()?;
    let (code, body) = http_get(&args.node, "/v1/status", token.as_deref())?;
    if code != 200 {
        return Err(NodeError::Usage(format!(
            "{}: HTTP {code}: {}",
            args.node,
            body.trim()
        )));
    }
    if args.json {
        return w(out, format_args!("{body}\n"));
    }
    let s: Status = serde_json::from_str(&body)
        .map_err(|e| NodeError::Usage(format!("{}: unexpected status document: {e}", args.node)))?;
    render(&s, out)
}

fn render(s: &Status, out: &mut dyn Write) -> Result<(), NodeError> {
    w(
        out,
        format_args!(
            "node:      {} (meshml {}, protocol {})\n",
            s.node, s.version, s.protocol_version
        ),
    )?;
    w(out, format_args!("cluster:   {}\n", s.cluster))?;
    for l in &s.listen {
        w(out, format_args!("listening: {l}\n"))?;
    }
    if let Some(r) = &s.raft {
        render_raft(r, out)?;
    }
    if let Some(c) = &s.scrub {
        let damaged = if c.damaged.is_empty() {
            String::new()
        } else {
            format!(", {} damaged and waiting for a good copy", c.damaged.len())
        };
        w(
            out,
            format_args!(
                "scrub:     {} passes, {} copies checked, {} repaired{damaged}\n",
                c.passes, c.checked, c.repaired
            ),
        )?;
    }
    let alive = s.peers.iter().filter(|p| p.state == "alive").count();
    w(
        out,
        format_args!("peers:     {alive} alive, {} known\n", s.peers.len()),
    )?;
    if !s.peers.is_empty() {
        w(
            out,
            format_args!(
                "  {:<54} {:<6} {:<10} {:>9} {:>5}  address\n",
                "PEER", "STATE", "CONNECTED", "LAST SEEN", "CORES"
            ),
        )?;
        for p in &s.peers {
            w(
                out,
                format_args!(
                    "  {:<54} {:<6} {:<10} {:>7}ms {:>5}  {}\n",
                    p.id,
                    p.state,
                    if p.connected { "yes" } else { "no" },
                    p.last_seen_ms,
                    p.cores,
                    p.addrs.first().map_or("", String::as_str)
                ),
            )?;
        }
    }
    Ok(())
}

/// The driver, this node's role, and the members with their roles.
fn render_raft(r: &Raft, out: &mut dyn Write) -> Result<(), NodeError> {
    let driver = r.driver.as_deref().unwrap_or("(none yet)");
    w(out, format_args!("driver:    {driver} (term {})\n", r.term))?;
    let driving = r.driving.as_ref().map_or(String::new(), |d| {
        format!(", driver actor running for term {}", d.term)
    });
    w(out, format_args!("this node: {}{driving}\n", r.role))?;
    w(
        out,
        format_args!(
            "members:   {} ({} voters, {} learners)\n",
            r.voters.len() + r.learners.len(),
            r.voters.len(),
            r.learners.len()
        ),
    )?;
    let roles = r
        .voters
        .iter()
        .map(|v| {
            (
                v,
                if Some(v) == r.driver.as_ref() {
                    "driver"
                } else {
                    "voter"
                },
            )
        })
        .chain(r.learners.iter().map(|l| (l, "learner")));
    w(
        out,
        format_args!(
            "  {:<54} {:<8} {:>5} {:>9}\n",
            "MEMBER", "ROLE", "CORES", "MEMORY"
        ),
    )?;
    for (peer, role) in roles {
        let rec = r.members.iter().find(|m| &m.peer_id == peer);
        let (cores, memory) = rec.map_or(("?".to_string(), "?".to_string()), |m| {
            (
                m.cores.to_string(),
                format!("{:.1}G", m.memory_bytes as f64 / (1u64 << 30) as f64),
            )
        });
        w(
            out,
            format_args!("  {peer:<54} {role:<8} {cores:>5} {memory:>9}\n"),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn members_are_listed_with_their_roles() {
        let doc = serde_json::json!({
            "node": "A", "cluster": "lab", "version": "0.1.0", "protocol_version": 1,
            "listen": ["/ip4/127.0.0.1/tcp/1"], "peers": [],
            "raft": {
                "role": "leader", "term": 7, "driver": "A",
                "voters": ["A", "B"], "learners": ["C"],
                "members": [
                    {"peer_id": "A", "addrs": [], "cores": 4, "memory_bytes": 2147483648u64,
                     "free_disk_bytes": 0},
                    {"peer_id": "C", "addrs": [], "cores": 2, "memory_bytes": 1073741824u64,
                     "free_disk_bytes": 0}
                ],
                "driving": {"term": 7, "since_ms": 1}
            },
            "scrub": {"passes": 2, "checked": 40, "bytes": 4096, "repaired": 1,
                      "damaged": ["ab"], "last_pass_ms": 3}
        });
        let s: super::Status = serde_json::from_value(doc).unwrap();
        let mut out = Vec::new();
        super::render(&s, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("driver:    A (term 7)"), "{text}");
        assert!(
            text.contains(
                "scrub:     2 passes, 40 copies checked, 1 repaired, 1 damaged and waiting"
            ),
            "{text}"
        );
        assert!(
            text.contains("this node: leader, driver actor running for term 7"),
            "{text}"
        );
        assert!(
            text.contains("members:   3 (2 voters, 1 learners)"),
            "{text}"
        );
        let row = |p: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(p))
                .unwrap()
                .to_string()
        };
        assert!(
            row("A ").contains("driver") && row("A ").contains("2.0G"),
            "{text}"
        );
        assert!(
            row("B ").contains("voter") && row("B ").contains('?'),
            "{text}"
        );
        assert!(
            row("C ").contains("learner") && row("C ").contains("1.0G"),
            "{text}"
        );
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            super::dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }
}
