//! The built-in scenarios on real nodes (libp2p and HTTP on 127.0.0.1; in this process,
//! as `meshml-sim node` processes, and in network namespaces where they can be made): each
//! must hold every invariant, and see the fault it injects; and scenario files with
//! mistakes are refused with a message.

#![allow(clippy::print_stderr)] // Tests report skips on stderr.

use meshml_sim::scenario::{builtin, run, run_on, Hosts, Scenario, Setup};

/// One scenario at a time: each runs three to five nodes, and on two cores several at
/// once would measure the machine's load rather than the mesh.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run_builtin(name: &str) -> meshml_sim::scenario::Report {
    run_builtin_on(name, Hosts::InProcess)
}

fn run_builtin_on(name: &str, hosts: Hosts) -> meshml_sim::scenario::Report {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let sc = Scenario::builtin(name).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    let r = if hosts == Hosts::InProcess {
        run(&sc, tmp.path(), &mut out).unwrap()
    } else {
        // The nodes are this package's own program: `meshml-sim node ...`.
        let setup = Setup {
            hosts,
            meshml: Some(env!("CARGO_BIN_EXE_meshml-sim").into()),
            lan: None,
        };
        run_on(&sc, tmp.path(), setup, &mut out).unwrap()
    };
    let mut table = Vec::new();
    r.write_table(&mut table).unwrap();
    let table = String::from_utf8(table).unwrap();
    assert!(r.passed(), "{table}");
    assert_eq!(r.job_state, "succeeded", "{table}");
    // The JSON report carries the same.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["checks"].as_array().unwrap().len(), r.checks.len());
    r
}

#[test]
fn a_killed_driver_is_replaced_and_the_job_ends_as_without_faults() {
    let r = run_builtin("driver-kill");
    assert!(r.drivers.len() >= 2, "{:?}", r.drivers);
    assert_eq!(r.failover_ms.len(), 1, "{:?}", r.events);
    assert!(r.rereplication_ms.is_some());
    assert!(r
        .events
        .iter()
        .any(|(_, e)| e.ends_with("killed (the driver)")));
}

#[test]
fn a_driver_process_killed_with_sigkill_is_replaced_and_the_job_ends_as_without_faults() {
    // Separate `meshml-sim node` processes on 127.0.0.1: the kill is a real SIGKILL.
    let r = run_builtin_on("driver-kill", Hosts::Processes);
    assert!(r.drivers.len() >= 2, "{:?}", r.drivers);
    assert_eq!(r.failover_ms.len(), 1, "{:?}", r.events);
    assert!(r.rereplication_ms.is_some());
}

#[test]
fn link_faults_are_refused_for_loopback_processes() {
    let sc = Scenario::builtin("partition-driver").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let setup = Setup {
        hosts: Hosts::Processes,
        meshml: Some(env!("CARGO_BIN_EXE_meshml-sim").into()),
        lan: None,
    };
    let e = run_on(&sc, tmp.path(), setup, &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("--hosts in-process or netns"), "{e}");
}

#[test]
fn a_model_survives_its_driver_killed_right_after_the_job() {
    // The artifact is copied to a second member before the job is reported done.
    let r = run_builtin("driver-kill-after-job");
    assert!(r
        .events
        .iter()
        .any(|(_, e)| e.ends_with("killed (the driver)")));
}

#[test]
fn a_killed_worker_is_replaced_then_restarts_and_rejoins() {
    let r = run_builtin("worker-kill-restart");
    assert!(r.events.iter().any(|(_, e)| e == "node 2 killed"));
    assert!(r
        .events
        .iter()
        .any(|(_, e)| e.starts_with("node 2 restarted")));
    assert!(r.rereplication_ms.is_some());
}

#[test]
fn an_added_node_joins_mid_job() {
    let r = run_builtin("add-node");
    assert!(r.events.iter().any(|(_, e)| e == "node 3 added"));
    let follow = r
        .checks
        .iter()
        .find(|c| c.name.starts_with("every live node"))
        .unwrap();
    assert!(
        follow.detail.starts_with("3 live nodes"),
        "{}",
        follow.detail
    );
}

#[test]
fn a_driver_cut_off_is_replaced_and_follows_after_healing() {
    let r = run_builtin("partition-driver");
    assert!(r.drivers.len() >= 2, "{:?}", r.drivers);
    assert_eq!(r.failover_ms.len(), 1, "{:?}", r.events);
    assert!(r.events.iter().any(|(_, e)| e == "every link restored"));
}

#[test]
fn slow_and_lossy_links_only_slow_the_job() {
    let r = run_builtin("slow-links");
    assert!(r
        .events
        .iter()
        .any(|(_, e)| e.contains("40 ms delay, 10% loss")));
}

#[test]
fn a_chunk_damaged_on_disk_is_replaced_from_a_good_copy() {
    let r = run_builtin("corrupt-chunk");
    assert!(r.events.iter().any(|(_, e)| e.contains("damaged on disk")));
    let repaired = r
        .checks
        .iter()
        .find(|c| c.name.starts_with("node 1 replaced its damaged copy"))
        .expect("a check of the damaged copy");
    assert!(repaired.ok, "{}", repaired.detail);
}

#[test]
fn scenario_mistakes_are_refused_with_a_message() {
    let good = builtin()[0].1;
    assert!(Scenario::parse(good, "x").is_ok());
    for (text, says) in [
        (good.replace("nodes = 3", "nodes = 33"), "from 1 to 32"),
        (
            good.replace("after_tasks = 3", "after_tasks = 3\nat_ms = 5"),
            "exactly one of",
        ),
        (
            good.replace("action = \"kill_driver\"", "action = \"kill\""),
            "needs a node",
        ),
        (
            good.replace("action = \"kill_driver\"", "action = \"explode\""),
            "unknown variant",
        ),
        (
            good.replace("slots = 1", "slots = 1\nspeed = 2"),
            "unknown field",
        ),
        (
            good.replace("action = \"kill_driver\"", "action = \"partition\""),
            "partition needs nodes",
        ),
        (
            good.replace(
                "action = \"kill_driver\"",
                "action = \"slow_link\"\nnodes = [0, 1]",
            ),
            "needs delay_ms or loss",
        ),
    ] {
        let e = Scenario::parse(&text, "bad.toml").unwrap_err().to_string();
        assert!(e.contains(says) && e.contains("bad.toml"), "{e}");
    }
    let e = Scenario::builtin("nothing").unwrap_err().to_string();
    assert!(e.contains("driver-kill"), "{e}");
}

#[test]
fn a_driver_cut_off_between_network_namespaces_is_replaced_and_they_are_removed_after() {
    // The whole command: it makes the namespaces, runs itself inside the control one, and
    // removes them. Where namespaces cannot be made (no root) there is nothing to check.
    if std::process::Command::new("ip")
        .args(["netns", "add", "mmlsprobe"])
        .status()
        .map_or(true, |s| !s.success())
    {
        eprintln!("skipped: network namespaces cannot be made here");
        return;
    }
    let _ = std::process::Command::new("ip")
        .args(["netns", "del", "mmlsprobe"])
        .status();
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("report.json");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_meshml-sim"))
        .args(["run", "partition-driver", "--hosts", "netns", "--report"])
        .arg(&report)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("cannot make network namespaces") {
        // Namespaces, but no bridges or veth pairs here.
        eprintln!("skipped: {}", err.lines().last().unwrap_or_default());
        return;
    }
    assert!(
        out.status.success(),
        "{text}\n{}",
        err.lines().last().unwrap_or_default()
    );
    assert!(text.contains("hosts in network namespaces"), "{text}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["ok"] == true));
    assert!(
        r["failover_ms"].as_array().is_some_and(|f| !f.is_empty()),
        "{r}"
    );
    let left = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(
        !left.lines().any(|l| l.starts_with(&format!("mmls{pid}"))),
        "namespaces left behind: {left}"
    );
}
