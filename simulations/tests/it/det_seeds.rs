//! Deterministic mode over many seeds: the driver's job board and scheduler and the election
//! rules on a simulated network, each seed a different history of delays, losses and
//! timeouts under the same faults. Every invariant must hold on every seed.

#![allow(clippy::print_stderr)]

use meshml_node::driver::board::PlantedBug;
use meshml_sim::det::{run, run_checked, DetConfig, DetFault};
use meshml_sim::LinkConfig;

/// Five nodes, 120 tasks: the driver is killed mid-job, a minority is cut off and healed,
/// the old driver comes back, and links lose 5% of messages for a while.
fn eventful(seed: u64) -> DetConfig {
    let mut cfg = DetConfig::new(5, 120, seed);
    cfg.link = LinkConfig {
        min_delay_us: 200,
        max_delay_us: 3_000,
        drop_rate: 0.0,
    };
    cfg.faults = vec![
        (350_000, DetFault::CrashLeader),
        (500_000, DetFault::Loss(0.05)),
        (
            900_000,
            DetFault::Partition(vec![(seed % 5) as usize, ((seed + 1) % 5) as usize]),
        ),
        (1_400_000, DetFault::Heal),
        (1_500_000, DetFault::Loss(0.0)),
        (1_600_000, DetFault::CrashLeader),
        (2_000_000, DetFault::Restart((seed % 5) as usize)),
    ];
    cfg
}

#[test]
fn every_invariant_holds_on_300_seeds_of_an_eventful_history() {
    let (mut terms, mut retries, mut refused, mut failovers) = (0usize, 0u64, 0u64, Vec::new());
    for seed in 0..300 {
        let r = run_checked(&eventful(seed));
        assert!(
            r.violations.is_empty(),
            "seed {seed}: {:?}\n{:#?}",
            r.violations,
            r.events
        );
        terms += r.leaders.len();
        retries += r.retries;
        refused += r.stale_refused;
        failovers.extend(r.failovers_us.iter().copied());
    }
    // The faults were felt: drivers were replaced and tasks ran again.
    assert!(terms >= 600, "{terms} leader terms over 300 seeds");
    assert!(retries > 300, "{retries} retries");
    assert!(!failovers.is_empty());
    failovers.sort_unstable();
    let median = failovers[failovers.len() / 2];
    // An election takes one to two timeouts (150-300 ms) plus a round of votes.
    assert!(
        (150_000..=900_000).contains(&median),
        "median failover {median} µs"
    );
    eprintln!(
        "300 seeds: {terms} terms, {retries} retries, {refused} stale assignments refused, \
         median failover {} ms",
        median / 1000
    );
}

/// A data-parallel fit (the production `Rounds` engine in the board, workers computing
/// partials with the models crate) under the eventful history plus a worker killed and
/// restarted: every new driver resumes from the last committed checkpoint and the model is
/// the fault-free run's, bit for bit.
#[test]
fn a_data_parallel_fit_resumes_from_its_checkpoint_to_the_fault_free_model() {
    let (mut terms, mut resumed) = (0usize, 0usize);
    for seed in 0..200 {
        let mut cfg = eventful(seed);
        cfg.data_parallel = true;
        let worker = ((seed + 2) % 5) as usize;
        cfg.faults.push((700_000, DetFault::Crash(worker)));
        cfg.faults.push((1_000_000, DetFault::Restart(worker)));
        let r = run_checked(&cfg);
        assert!(
            r.violations.is_empty(),
            "seed {seed}: {:?}\n{:#?}",
            r.violations,
            r.events
        );
        assert!(r.model.is_some() && r.answers > 10, "seed {seed}: {r:?}");
        terms += r.leaders.len();
        // Drivers elected while the fit ran that took it up from a checkpoint.
        resumed += r
            .events
            .iter()
            .filter(|(_, e)| e.contains("(checkpoint after") && !e.contains("after 0 passes"))
            .count();
    }
    assert!(terms >= 400, "{terms} leader terms over 200 seeds");
    assert!(resumed >= 200, "{resumed} drivers resumed a checkpoint");
}

#[test]
fn three_node_meshes_survive_losing_any_one_node_for_good() {
    for seed in 0..200 {
        let mut cfg = DetConfig::new(3, 60, seed);
        cfg.faults = vec![(100_000 + seed * 3_000, DetFault::Crash((seed % 3) as usize))];
        let r = run_checked(&cfg);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
    }
}

#[test]
fn a_heavier_loss_only_slows_the_job() {
    for seed in 0..50 {
        let mut cfg = DetConfig::new(5, 60, seed);
        cfg.link.drop_rate = 0.2;
        let r = run_checked(&cfg);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert!(r.dropped > 0);
        let clean = run(&DetConfig::new(5, 60, seed));
        assert!(r.finished_us >= clean.finished_us);
    }
}

#[test]
fn a_deposed_driver_cannot_assign_work_once_healed() {
    let (mut refused, mut replaced) = (0, 0);
    for seed in 0..300 {
        let mut cfg = DetConfig::new(5, 400, seed);
        cfg.link.max_delay_us = 20_000;
        // The driver is cut off; the others elect a new one; the link heals before the old
        // driver notices its lost quorum (500 ms), so its assignments reach workers that
        // have seen the newer term.
        cfg.faults = vec![
            (350_000, DetFault::IsolateLeader),
            (800_000, DetFault::Heal),
        ];
        let r = run_checked(&cfg);
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        replaced += usize::from(r.leaders.len() >= 2);
        refused += r.stale_refused;
    }
    // (On a few seeds the first election ends after the cut, and the isolated node was a
    // follower.)
    assert!(
        replaced >= 250,
        "the driver was replaced on {replaced} of 300 seeds"
    );
    assert!(refused > 0, "no stale assignment was ever refused");
    eprintln!("{refused} stale assignments refused over 300 seeds ({replaced} replaced drivers)");
}

#[test]
fn the_checker_catches_a_broken_vote_rule() {
    // Without Raft's vote rule a node with a short log can win, and committed results go
    // missing from its log: the checker must say so on some seed.
    let caught = (0..300).any(|seed| {
        let mut cfg = eventful(seed);
        cfg.vote_rule = false;
        run_checked(&cfg)
            .violations
            .iter()
            .any(|v| v.contains("lacks committed task"))
    });
    assert!(caught, "the checker never noticed a lost committed entry");
}

#[test]
fn the_checker_catches_a_board_that_forgets_committed_tasks_when_it_resumes() {
    // A board that ignores the completions recorded with a job runs committed tasks again
    // after its driver is replaced: the checker must say so. The same histories with the
    // production board keep every invariant.
    let (mut caught, mut seeds) = (0, 0);
    for seed in 0..20 {
        let mut cfg = DetConfig::new(5, 120, seed);
        cfg.faults = vec![(400_000, DetFault::CrashLeader)];
        assert!(
            run_checked(&cfg).violations.is_empty(),
            "seed {seed} without the bug"
        );
        cfg.planted = Some(PlantedBug::ForgetRecordedTasks);
        let r = run_checked(&cfg);
        seeds += 1;
        if r.violations
            .iter()
            .any(|v| v.contains("run again after its completion was committed"))
        {
            caught += 1;
        }
    }
    assert!(
        caught * 2 > seeds,
        "the checker caught the planted bug on {caught} of {seeds} seeds"
    );
}
