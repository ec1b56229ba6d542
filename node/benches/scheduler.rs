//! Driver dispatch throughput (criterion): the scheduler state machine alone, no sockets.
//!
//! `dispatch/N tasks x M nodes`: queue N no-op tasks (each preferring one node, as tasks
//! over replicated chunks do), then dispatch and complete them until the queue is empty,
//! with 2 slots per node. The time per iteration over N gives tasks/s (docs/BENCHMARKS.md).
//!
//! `cargo bench -p meshml-node --bench scheduler`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use meshml_node::driver::scheduler::{Command, Scheduler, TaskKey};
use meshml_protocol::TaskId;

fn drain(tasks: usize, nodes: u64) -> usize {
    let mut s = Scheduler::new(3);
    for n in 1..=nodes {
        s.node_up(n, 2);
    }
    for t in 0..tasks {
        s.submit(
            TaskKey {
                job: "j".into(),
                task: TaskId::new(0, t as u32),
            },
            vec![(t as u64 % nodes) + 1],
        );
    }
    let mut done = 0;
    while done < tasks {
        for c in s.dispatch() {
            if let Command::Assign { key, .. } = c {
                s.finished(&key);
                done += 1;
            }
        }
    }
    done
}

fn dispatch(c: &mut Criterion) {
    let mut g = c.benchmark_group("dispatch");
    for (tasks, nodes) in [(10_000usize, 2u64), (10_000, 8), (10_000, 32)] {
        g.throughput(Throughput::Elements(tasks as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{tasks} tasks x {nodes} nodes")),
            &(tasks, nodes),
            |b, &(t, n)| b.iter(|| drain(t, n)),
        );
    }
    g.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
