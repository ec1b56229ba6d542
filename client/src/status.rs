//! `meshml status`: asks a node's HTTP API and prints the mesh as it sees it.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::api::{PeerState, RaftView, StatusView};
use crate::table::{self, Align};
use crate::{w, Client, ClientError};

/// `meshml status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The node's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:7070")]
    pub node: String,
    /// Bearer token file, for a node that requires one.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Print the raw JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `meshml status`.
pub fn run(args: StatusArgs, out: &mut dyn Write) -> Result<(), ClientError> {
    let token = args
        .token_file
        .as_deref()
        .map(crate::read_token_file)
        .transpose()?;
    let client = Client::new(&args.node, token)?;
    let (code, body) = client.raw("GET", "/v1/status", None, Duration::from_secs(10))?;
    if code != 200 {
        return Err(ClientError::Usage(format!(
            "{}: HTTP {code}: {}",
            client.node(),
            body.trim()
        )));
    }
    if args.json {
        return w(out, format_args!("{body}\n"));
    }
    let s: StatusView = serde_json::from_str(&body).map_err(|e| ClientError::Decode {
        node: client.node().to_string(),
        what: "status document",
        source: Box::new(e),
    })?;
    render(&s, out)
}

/// Writes a status document as text.
pub fn render(s: &StatusView, out: &mut dyn Write) -> Result<(), ClientError> {
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
    let alive = s
        .peers
        .iter()
        .filter(|p| p.state == PeerState::Alive)
        .count();
    w(
        out,
        format_args!("peers:     {alive} alive, {} known\n", s.peers.len()),
    )?;
    if !s.peers.is_empty() {
        let rows: Vec<Vec<String>> = s
            .peers
            .iter()
            .map(|p| {
                vec![
                    p.id.clone(),
                    match p.state {
                        PeerState::Alive => "alive",
                        PeerState::Gone => "gone",
                    }
                    .to_string(),
                    if p.connected { "yes" } else { "no" }.to_string(),
                    format!("{}ms", p.last_seen_ms),
                    p.cores.to_string(),
                    p.addrs.first().cloned().unwrap_or_default(),
                ]
            })
            .collect();
        let header = [
            ("PEER", Align::Left),
            ("STATE", Align::Left),
            ("CONNECTED", Align::Left),
            ("LAST SEEN", Align::Right),
            ("CORES", Align::Right),
            ("address", Align::Left),
        ];
        w(out, format_args!("{}", table::render(&header, &rows, "  ")))?;
    }
    Ok(())
}

/// The driver, this node's role, and the members with their roles.
fn render_raft(r: &RaftView, out: &mut dyn Write) -> Result<(), ClientError> {
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
    let rows: Vec<Vec<String>> = roles
        .map(|(peer, role)| {
            let rec = r.members.iter().find(|m| &m.peer_id == peer);
            let (cores, memory) = rec.map_or(("?".to_string(), "?".to_string()), |m| {
                (
                    m.cores.to_string(),
                    format!("{:.1}G", m.memory_bytes as f64 / (1u64 << 30) as f64),
                )
            });
            vec![peer.clone(), role.to_string(), cores, memory]
        })
        .collect();
    let header = [
        ("MEMBER", Align::Left),
        ("ROLE", Align::Left),
        ("CORES", Align::Right),
        ("MEMORY", Align::Right),
    ];
    w(out, format_args!("{}", table::render(&header, &rows, "  ")))
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
        let s: crate::api::StatusView = serde_json::from_value(doc).unwrap();
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
}
