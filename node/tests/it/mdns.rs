//! mDNS discovery between two nodes in network namespaces this test creates (mDNS ignores
//! loopback, so it cannot be tested on 127.0.0.1). Needs root and iproute2; where
//! namespaces cannot be created the test says so on stderr and checks nothing else.

// Tests report skips and timings on stderr.
#![allow(clippy::print_stderr)]

use std::time::{Duration, Instant};

use crate::common::netns::Lan;

fn alive_peers(lan: &Lan, i: usize) -> usize {
    lan.status(i)["peers"]
        .as_array()
        .map_or(0, |p| p.iter().filter(|p| p["state"] == "alive").count())
}

#[test]
fn mdns_finds_a_peer_on_the_lan_without_bootstrap_addresses() {
    let mut lan = match Lan::create(2, true) {
        Ok(lan) => lan,
        Err(e) => {
            eprintln!("SKIPPED mdns test: cannot create network namespaces here ({e})");
            return;
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..2 {
        lan.start_node(i, &tmp.path().join(format!("n{i}")), &[]);
    }
    let t = Instant::now();
    let mut found = false;
    while t.elapsed() < Duration::from_secs(30) {
        if alive_peers(&lan, 0) == 1 && alive_peers(&lan, 1) == 1 {
            found = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(found, "the two nodes found each other by mDNS within 30 s");
    eprintln!("mdns discovery took {:?}", t.elapsed());
}
