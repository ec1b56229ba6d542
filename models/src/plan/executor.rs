//! Running a plan: the [`Executor`] seam, the [`LocalExecutor`] (threads in this process)
//! and [`run_job`], which drives a [`Planner`] to the end.

use crate::dataset::Dataset;
use crate::error::{ModelError, Result};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::data::DataSummary;
use super::job::JobSpec;
use super::planner::{JobResult, Planner, Step};
use super::task::{run_task, Task, TaskOutput};

/// Progress of a running job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Stage running.
    pub stage: usize,
    /// Tasks of the job done so far.
    pub done: usize,
    /// Tasks of the job known so far (later stages add theirs when they start).
    pub total: usize,
}

/// Runs the tasks of one stage.
pub trait Executor {
    /// Runs `tasks` on `data`, calling `done` after each task finishes; returns the
    /// outputs in task order, or the first error.
    fn run(
        &self,
        tasks: &[Task],
        data: &Dataset,
        done: &(dyn Fn() + Sync),
    ) -> Result<Vec<TaskOutput>>;
}

/// Runs tasks on a pool of threads in this process, one task per thread at a time.
#[derive(Debug, Clone, Copy)]
pub struct LocalExecutor {
    threads: usize,
}

impl LocalExecutor {
    /// A pool of `threads` threads (at least one).
    pub fn new(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
        }
    }

    /// One thread per core.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

impl Executor for LocalExecutor {
    fn run(
        &self,
        tasks: &[Task],
        data: &Dataset,
        done: &(dyn Fn() + Sync),
    ) -> Result<Vec<TaskOutput>> {
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let slots: Vec<Mutex<Option<Result<TaskOutput>>>> =
            tasks.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..self.threads.min(tasks.len()) {
                s.spawn(|| loop {
                    if failed.load(Ordering::SeqCst) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(task) = tasks.get(i) else { break };
                    let out = run_task(task, data);
                    if out.is_err() {
                        failed.store(true, Ordering::SeqCst);
                    }
                    *slots[i].lock().expect("task slot") = Some(out);
                    done();
                });
            }
        });
        let mut outputs = Vec::with_capacity(tasks.len());
        for s in slots {
            match s.into_inner().expect("task slot") {
                Some(Ok(o)) => outputs.push(o),
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        if outputs.len() != tasks.len() {
            return Err(ModelError::data("job", "a task did not run"));
        }
        Ok(outputs)
    }
}

/// Runs a whole job on `data` with `executor`, reporting progress after every task.
pub fn run_job(
    spec: &JobSpec,
    data: &Dataset,
    executor: &dyn Executor,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<JobResult> {
    let mut planner = Planner::new(spec.clone(), DataSummary::of(data)?)?;
    let mut step = planner.step()?;
    let mut before = 0;
    loop {
        match step {
            Step::Done(result) => return Ok(*result),
            Step::Run(tasks) => {
                let stage = planner.stages_done();
                let total = before + tasks.len();
                let count = AtomicUsize::new(before);
                let tick = || {
                    let done = count.fetch_add(1, Ordering::SeqCst) + 1;
                    progress(Progress { stage, done, total });
                };
                let outputs = executor.run(&tasks, data, &tick)?;
                before = total;
                step = planner.complete(outputs)?;
            }
        }
    }
}
