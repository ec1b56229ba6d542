//! `meshml fit`, `meshml jobs` and `meshml job show|cancel`: jobs on the mesh, through a
//! node's HTTP API.
//!
//! A job is given by flags (`--dataset D --model M --set k=v --grid k=v1,v2 --cv K`) or by a
//! TOML file (`--job job.toml`) with the same fields plus the meta-estimators that flags do
//! not cover:
//!
//! ```toml
//! dataset = "digits"
//! kind = "grid_search"     # fit | grid_search | random_search | multi_search | one_vs_rest
//!                          # | one_vs_one | bagging | voting | stacking | cascade | multi_output
//! model = "standard_scaler+logistic_regression"
//! cv = 5
//! seed = 0
//! [set]
//! max_iter = 300
//! [grid]
//! C = [0.01, 0.1, 1, 10]
//! ```
//!
//! Random search: `[space]` with `C = { log_uniform = [0.01, 100] }`,
//! `max_depth = { int = [1, 8] }`, `alpha = { uniform = [0, 1] }` or a list of choices, and
//! `n_iter`. Bagging: `n_estimators`. Voting: `models = ["a", "b"]` and `soft`. Stacking:
//! `models`, `final_model` and `cv`. Cascade: `router`, `model` and `groups = [["setosa"],
//! ["versicolor", "virginica"]]` (class labels). Multi-output: `model` and `targets =
//! ["col_a", "col_b"]` (the features are the other columns). Multi-model search: one
//! `[[search]]` table per estimator with its `model`, `[search.set]` and `[search.grid]`.
//! Feature selection in a search: `model = "standard_scaler+select_from_model+logistic_regression"`
//! with `[grid] select_from_model__C = [0.05, 0.5]`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use meshml_models::metrics::ConfusionMatrix;
use meshml_models::plan::{Distribution, JobKind, JobSpec};
use meshml_models::Estimator;
use serde::Deserialize;

use crate::api::{Cancelled, Created, JobRequest, JobView, PassesView};
use crate::node_api::NodeApi;
use crate::table::{self, Align};
use crate::{w, ClientError};

/// `meshml fit ...`
#[derive(Debug, Args)]
pub struct FitCmd {
    /// Training dataset (on the mesh).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Estimator (`logistic_regression`, `standard_scaler+gaussian_nb`, ...).
    #[arg(long)]
    pub model: Option<String>,
    /// A fixed parameter, `name=value` (repeatable).
    #[arg(long = "set", value_name = "K=V")]
    pub set: Vec<String>,
    /// A parameter to search, `name=v1,v2,...` (repeatable): makes the job a grid search.
    #[arg(long = "grid", value_name = "K=V1,V2")]
    pub grid: Vec<String>,
    /// Cross-validation folds of a search.
    #[arg(long, default_value_t = 5)]
    pub cv: u32,
    /// One binary model per class.
    #[arg(long)]
    pub one_vs_rest: bool,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Register the model under this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Score the final model on this dataset (accuracy, confusion matrix).
    #[arg(long)]
    pub test_dataset: Option<String>,
    /// The whole job as a TOML file (flags given as well override its fields).
    #[arg(long, value_name = "FILE")]
    pub job: Option<PathBuf>,
    /// Fit data-parallel: passes over the dataset's chunks on the members that store them,
    /// no member holding more than a chunk at a time (default: when the dataset is larger
    /// than the node's training memory, `meshml node --train-memory-mb`).
    #[arg(long, conflicts_with = "in_memory")]
    pub data_parallel: bool,
    /// Fit in memory on one member, however large the dataset.
    #[arg(long)]
    pub in_memory: bool,
    /// Print the job id and return without waiting.
    #[arg(long)]
    pub detach: bool,
    /// The node.
    #[command(flatten)]
    pub api: NodeApi,
}

/// `meshml jobs`
#[derive(Debug, Args)]
pub struct JobsCmd {
    /// The node.
    #[command(flatten)]
    pub api: NodeApi,
}

/// `meshml job ...`
#[derive(Debug, Args)]
pub struct JobCmd {
    /// `show` or `cancel`.
    #[command(subcommand)]
    pub action: JobAction,
    /// The node.
    #[command(flatten)]
    pub api: NodeApi,
}

/// What to do with a job.
#[derive(Debug, clap::Subcommand)]
pub enum JobAction {
    /// Progress and result of a job.
    Show {
        /// Job id.
        id: String,
    },
    /// Cancel a running job.
    Cancel {
        /// Job id.
        id: String,
    },
}

/// A parameter value in a job file: a number, a boolean or text.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    Text(String),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Text(t) => t.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Space {
    Choices(Vec<Value>),
    Dist(BTreeMap<String, Vec<f64>>),
}

/// One estimator of a multi-model search.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchFile {
    model: String,
    #[serde(default)]
    set: BTreeMap<String, Value>,
    #[serde(default)]
    grid: BTreeMap<String, Vec<Value>>,
}

fn grid_of(grid: &BTreeMap<String, Vec<Value>>) -> Vec<(String, Vec<String>)> {
    grid.iter()
        .map(|(k, vs)| (k.clone(), vs.iter().map(Value::text).collect()))
        .collect()
}

/// A job file (and what the flags fill in).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFile {
    dataset: Option<String>,
    test_dataset: Option<String>,
    name: Option<String>,
    kind: Option<String>,
    model: Option<String>,
    /// The estimator in full, as the API's job spec writes it (a pipeline with a
    /// `column_transformer`, say): instead of `model`.
    estimator: Option<Estimator>,
    models: Option<Vec<String>>,
    #[serde(default)]
    set: BTreeMap<String, Value>,
    #[serde(default)]
    grid: BTreeMap<String, Vec<Value>>,
    #[serde(default)]
    space: BTreeMap<String, Space>,
    n_iter: Option<u32>,
    cv: Option<u32>,
    refit: Option<bool>,
    n_estimators: Option<u32>,
    soft: Option<bool>,
    final_model: Option<String>,
    router: Option<String>,
    groups: Option<Vec<Vec<String>>>,
    targets: Option<Vec<String>>,
    seed: Option<u64>,
    #[serde(default)]
    search: Vec<SearchFile>,
    /// Fit data-parallel (`true`), in memory (`false`), or as the node decides (unset).
    data_parallel: Option<bool>,
}

fn bad(m: impl Into<String>) -> ClientError {
    ClientError::Usage(m.into())
}

fn estimator(name: &str, set: &BTreeMap<String, Value>) -> Result<Estimator, ClientError> {
    let mut e = Estimator::from_name(name)?;
    for (k, v) in set {
        e.set_param(k, &v.text())?;
    }
    Ok(e)
}

impl JobFile {
    fn into_request(self) -> Result<JobRequest, ClientError> {
        let dataset = self
            .dataset
            .ok_or_else(|| bad("no dataset: give --dataset or `dataset = ...` in the job file"))?;
        let model = || {
            match (&self.estimator, self.model.as_deref()) {
            (Some(_), Some(_)) => Err(bad(
                "give the model once: `model = ...` or an [estimator] table, not both",
            )),
            (Some(e), None) => {
                let mut e = e.clone();
                for (k, v) in &self.set {
                    e.set_param(k, &v.text())?;
                }
                e.validate()?;
                Ok(e)
            }
            (None, m) => m
                .ok_or_else(|| {
                    bad("no model: give --model, `model = ...` or an [estimator] table in the job file")
                })
                .and_then(|m| estimator(m, &self.set)),
        }
        };
        let kind = self.kind.clone().unwrap_or_else(|| {
            if self.grid.is_empty() {
                "fit".into()
            } else {
                "grid_search".into()
            }
        });
        let cv = self.cv.unwrap_or(5);
        let refit = self.refit.unwrap_or(true);
        let kind = match kind.as_str() {
            "fit" => JobKind::Fit { estimator: model()? },
            "grid_search" => {
                if self.grid.is_empty() {
                    return Err(bad("a grid search needs [grid] (or --grid name=v1,v2)"));
                }
                JobKind::GridSearch {
                    estimator: model()?,
                    grid: grid_of(&self.grid),
                    cv,
                    refit,
                }
            }
            "multi_search" => {
                if self.search.is_empty() {
                    return Err(bad("a multi-model search needs [[search]] entries (model, grid)"));
                }
                JobKind::MultiSearch {
                    searches: self
                        .search
                        .iter()
                        .map(|s| Ok((estimator(&s.model, &s.set)?, grid_of(&s.grid))))
                        .collect::<Result<_, ClientError>>()?,
                    cv,
                    refit,
                }
            }
            "random_search" => {
                let mut space = Vec::new();
                for (k, s) in &self.space {
                    let d = match s {
                        Space::Choices(v) => Distribution::Choice(v.iter().map(Value::text).collect()),
                        Space::Dist(m) => {
                            let (name, b) = m
                                .iter()
                                .next()
                                .filter(|_| m.len() == 1)
                                .ok_or_else(|| bad(format!("space '{k}': one of uniform, log_uniform, int")))?;
                            if b.len() != 2 {
                                return Err(bad(format!("space '{k}': give [low, high]")));
                            }
                            match name.as_str() {
                                "uniform" => Distribution::Uniform { low: b[0], high: b[1] },
                                "log_uniform" => Distribution::LogUniform { low: b[0], high: b[1] },
                                "int" => Distribution::IntRange {
                                    low: b[0] as i64,
                                    high: b[1] as i64,
                                },
                                other => {
                                    return Err(bad(format!(
                                        "space '{k}': unknown distribution '{other}' (uniform, log_uniform, int)"
                                    )))
                                }
                            }
                        }
                    };
                    space.push((k.clone(), d));
                }
                if space.is_empty() {
                    return Err(bad("a random search needs [space]"));
                }
                JobKind::RandomSearch {
                    estimator: model()?,
                    space,
                    n_iter: self.n_iter.unwrap_or(10),
                    cv,
                    refit,
                }
            }
            "one_vs_rest" => JobKind::OneVsRest { estimator: model()? },
            "one_vs_one" => JobKind::OneVsOne { estimator: model()? },
            "bagging" => JobKind::Bagging {
                estimator: model()?,
                n_estimators: self.n_estimators.unwrap_or(10),
            },
            "voting" => JobKind::Voting {
                estimators: self
                    .models
                    .clone()
                    .ok_or_else(|| bad("voting needs `models = [...]`"))?
                    .iter()
                    .map(|m| estimator(m, &self.set))
                    .collect::<Result<_, _>>()?,
                soft: self.soft.unwrap_or(true),
            },
            "stacking" => JobKind::Stacking {
                estimators: self
                    .models
                    .clone()
                    .ok_or_else(|| bad("stacking needs `models = [...]`"))?
                    .iter()
                    .map(|m| estimator(m, &self.set))
                    .collect::<Result<_, _>>()?,
                final_estimator: Estimator::from_name(
                    self.final_model
                        .as_deref()
                        .unwrap_or("logistic_regression"),
                )?,
                cv,
            },
            "cascade" => JobKind::Cascade {
                groups: self
                    .groups
                    .clone()
                    .ok_or_else(|| bad("a cascade needs `groups = [[\"a\"], [\"b\", \"c\"]]`"))?,
                router: Estimator::from_name(
                    self.router.as_deref().unwrap_or("logistic_regression"),
                )?,
                estimator: model()?,
            },
            "multi_output" => JobKind::MultiOutput {
                estimator: model()?,
                targets: self
                    .targets
                    .clone()
                    .ok_or_else(|| bad("multi_output needs `targets = [\"col\", ...]`"))?,
            },
            other => {
                return Err(bad(format!(
                    "unknown job kind '{other}' (fit, grid_search, random_search, multi_search, one_vs_rest, one_vs_one, bagging, voting, stacking, cascade, multi_output)"
                )))
            }
        };
        Ok(JobRequest {
            dataset,
            job: JobSpec {
                kind,
                seed: self.seed.unwrap_or(0),
            },
            name: self.name,
            test_dataset: self.test_dataset,
            data_parallel: self.data_parallel,
            mode: None,
        })
    }
}

fn split_kv(s: &str, flag: &str) -> Result<(String, String), ClientError> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| bad(format!("--{flag} {s}: expected name=value")))
}

/// A job request from a table with a job file's fields (the format above), for files that
/// hold a job among other things (the simulator's scenarios).
pub fn job_from_table(table: toml::Table) -> Result<JobRequest, ClientError> {
    let f: JobFile = toml::Value::Table(table)
        .try_into()
        .map_err(|e| bad(format!("job: {e}")))?;
    f.into_request()
}

/// Builds the job request from the flags and the job file.
fn request(cmd: &FitCmd) -> Result<JobRequest, ClientError> {
    let mut f: JobFile = match &cmd.job {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| ClientError::io(p.display().to_string(), e))?;
            toml::from_str(&text).map_err(|e| bad(format!("{}: {e}", p.display())))?
        }
        None => JobFile::default(),
    };
    if cmd.dataset.is_some() {
        f.dataset.clone_from(&cmd.dataset);
    }
    if cmd.model.is_some() {
        // The flag overrides the file's model, whichever way the file gave it.
        f.model.clone_from(&cmd.model);
        f.estimator = None;
    }
    if cmd.name.is_some() {
        f.name.clone_from(&cmd.name);
    }
    if cmd.test_dataset.is_some() {
        f.test_dataset.clone_from(&cmd.test_dataset);
    }
    for s in &cmd.set {
        let (k, v) = split_kv(s, "set")?;
        f.set.insert(k, Value::Text(v));
    }
    for g in &cmd.grid {
        let (k, v) = split_kv(g, "grid")?;
        f.grid.insert(
            k,
            v.split(',')
                .map(|x| Value::Text(x.trim().to_string()))
                .collect(),
        );
    }
    if cmd.job.is_none() || cmd.cv != 5 {
        f.cv = Some(cmd.cv);
    }
    if cmd.one_vs_rest {
        f.kind = Some("one_vs_rest".into());
    }
    if cmd.data_parallel || cmd.in_memory {
        f.data_parallel = Some(cmd.data_parallel);
    }
    if cmd.job.is_none() || cmd.seed != 0 {
        f.seed = Some(cmd.seed);
    }
    f.into_request()
}

/// Prints a finished job's result.
pub fn print_result(v: &JobView, out: &mut dyn Write) -> Result<(), ClientError> {
    w(
        out,
        format_args!("job {}: {} ({})\n", v.id, v.state, v.description),
    )?;
    if let Some(mode) = &v.mode {
        w(out, format_args!("mode: {mode}\n"))?;
    }
    match &v.passes {
        Some(p) => w(
            out,
            format_args!(
                "passes over the data: {} in {:.1}s{}{}\n",
                p.passes,
                v.elapsed_ms as f64 / 1000.0,
                loss_text(p),
                pass_times(p)
            ),
        )?,
        None => w(
            out,
            format_args!(
                "tasks: {}/{} in {:.1}s\n",
                v.done,
                v.total,
                v.elapsed_ms as f64 / 1000.0
            ),
        )?,
    }
    if let Some(e) = &v.error {
        w(out, format_args!("error: {e}\n"))?;
    }
    let Some(r) = &v.result else { return Ok(()) };
    for warning in &r.warnings {
        w(out, format_args!("warning: {warning}\n"))?;
    }
    if let Some(cv) = &r.cv {
        let best = cv
            .best_params()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        w(
            out,
            format_args!(
                "best params: {best} (mean cv score {:.4})\n\n",
                cv.best_score()
            ),
        )?;
        w(out, format_args!("{}\n", cv.table()))?;
    }
    if let Some(m) = &r.model {
        w(out, format_args!("model: {m}\n"))?;
    }
    if let Some(t) = &r.test {
        w(
            out,
            format_args!("{} on '{}': {:.4}\n", t.metric, t.dataset, t.score),
        )?;
        if !t.labels.is_empty() {
            let cm = ConfusionMatrix::from_counts(&t.labels, t.counts.clone())?;
            w(
                out,
                format_args!("confusion matrix (rows: true, columns: predicted):\n{cm}\n"),
            )?;
        }
    }
    Ok(())
}

/// `, loss 0.1234 (max |gradient| 1.2e-4)` of a data-parallel fit's progress, where it has
/// a loss.
fn loss_text(p: &PassesView) -> String {
    match (p.loss, p.gradient) {
        (Some(l), Some(g)) => format!(", loss {l:.6} (max |gradient| {g:.2e})"),
        (Some(l), None) => format!(", loss {l:.6}"),
        _ => String::new(),
    }
}

/// `; a pass: 9.6 ms, 1.2 ms of it beyond the slowest member's compute` of a finished
/// data-parallel fit.
fn pass_times(p: &PassesView) -> String {
    match (p.wall_ms, p.compute_ms) {
        (Some(wall), Some(compute)) if p.passes > 0 => {
            let n = p.passes as f64;
            format!(
                "; a pass: {:.1} ms, {:.1} ms of it beyond the slowest member's compute",
                wall as f64 / n,
                wall.saturating_sub(compute) as f64 / n
            )
        }
        _ => String::new(),
    }
}

/// Submits a job through the node; returns its id.
pub fn submit(api: &NodeApi, req: &JobRequest) -> Result<String, ClientError> {
    Ok(submit_created(api, req)?.id)
}

/// Submits a job through the node; returns its id and how it runs.
pub fn submit_created(api: &NodeApi, req: &JobRequest) -> Result<Created, ClientError> {
    api.client()?.send_json(
        "POST",
        "/v1/jobs",
        req,
        "answer to a job submission",
        Duration::from_secs(60),
    )
}

/// A job's progress and result.
pub fn get_job(api: &NodeApi, id: &str) -> Result<JobView, ClientError> {
    api.client()?.get(
        &format!("/v1/jobs/{id}"),
        "job document",
        Duration::from_secs(30),
    )
}

/// Follows a job until it ends, showing its progress on a terminal (tasks, or a
/// data-parallel fit's passes with its loss); returns its view.
pub fn follow(api: &NodeApi, id: &str) -> Result<JobView, ClientError> {
    follow_unit(api, id, "tasks")
}

fn follow_unit(api: &NodeApi, id: &str, unit: &str) -> Result<JobView, ClientError> {
    let client = api.client()?;
    crate::progress::follow_with_message(
        unit,
        || {
            client.get(
                &format!("/v1/jobs/{id}"),
                "job document",
                Duration::from_secs(30),
            )
        },
        |v: &JobView| match &v.passes {
            Some(p) => (p.passes as usize, 0, v.state == "running"),
            None => (v.done, v.total, v.state == "running"),
        },
        |v: &JobView| match &v.passes {
            Some(p) => format!(", {}{}", p.stage, loss_text(p)),
            None => String::new(),
        },
    )
}

/// `meshml fit`.
pub fn fit(cmd: FitCmd, out: &mut dyn Write) -> Result<(), ClientError> {
    let req = request(&cmd)?;
    let created = submit_created(&cmd.api, &req)?;
    let id = created.id;
    if cmd.detach {
        return w(out, format_args!("{id}\n"));
    }
    if let Some(mode) = &created.mode {
        // Said before the wait: which way it runs, and why.
        w(out, format_args!("job {id}: {mode}\n"))?;
        out.flush()
            .map_err(|e| ClientError::io("standard output", e))?;
    }
    let parallel = created
        .mode
        .as_deref()
        .is_some_and(|m| m.starts_with("data-parallel"));
    let view = follow_unit(&cmd.api, &id, if parallel { "passes" } else { "tasks" })?;
    print_result(&view, out)?;
    if view.state == "failed" {
        return Err(bad(format!("job {id} failed")));
    }
    Ok(())
}

/// `meshml jobs`.
pub fn jobs(cmd: JobsCmd, out: &mut dyn Write) -> Result<(), ClientError> {
    let list: Vec<JobView> =
        cmd.api
            .client()?
            .get("/v1/jobs", "job list", Duration::from_secs(30))?;
    if list.is_empty() {
        return w(out, format_args!("no jobs\n"));
    }
    let rows: Vec<Vec<String>> = list
        .into_iter()
        .map(|j| {
            vec![
                j.id,
                j.state,
                format!("{}/{}", j.done, j.total),
                format!("{:.1}s", j.elapsed_ms as f64 / 1000.0),
                j.description,
            ]
        })
        .collect();
    let header = [
        ("ID", Align::Left),
        ("STATE", Align::Left),
        ("TASKS", Align::Right),
        ("TIME", Align::Right),
        ("description", Align::Left),
    ];
    w(out, format_args!("{}", table::render(&header, &rows, "")))
}

/// `meshml job show|cancel`.
pub fn job(cmd: JobCmd, out: &mut dyn Write) -> Result<(), ClientError> {
    match cmd.action {
        JobAction::Show { id } => print_result(&get_job(&cmd.api, &id)?, out),
        JobAction::Cancel { id } => {
            let _: Cancelled = cmd.api.client()?.post_empty(
                &format!("/v1/jobs/{id}/cancel"),
                "answer to a cancellation",
                Duration::from_secs(30),
            )?;
            w(out, format_args!("job {id} cancelled\n"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_file_may_give_the_estimator_in_full() {
        let f: JobFile = toml::from_str(
            r#"
dataset = "nass"
kind = "grid_search"
cv = 3
[grid]
"column_transformer__cat__one_hot_encoder__min_frequency" = [1, 100]
[estimator]
kind = "pipeline"
[[estimator.params.steps]]
kind = "column_transformer"
[[estimator.params.steps.params.transformers]]
name = "cat"
columns = "categorical"
steps = [{ kind = "one_hot_encoder", params = { handle_unknown = "ignore" } }]
[estimator.params.estimator]
kind = "ridge"
params = { alpha = 1.0, fit_intercept = true }
"#,
        )
        .unwrap();
        let r = f.into_request().unwrap();
        let JobKind::GridSearch { estimator, .. } = r.job.kind else {
            panic!()
        };
        assert_eq!(estimator.name(), "column_transformer+ridge");
        let both: JobFile = toml::from_str(
            "dataset = \"d\"\nmodel = \"ridge\"\n[estimator]\nkind = \"ridge\"\nparams = { alpha = 1.0, fit_intercept = true }\n",
        )
        .unwrap();
        let e = both.into_request().unwrap_err().to_string();
        assert!(e.contains("give the model once"), "{e}");
    }

    #[test]
    fn a_job_file_becomes_a_request() {
        let f: JobFile = toml::from_str(
            r#"
dataset = "digits"
kind = "grid_search"
model = "standard_scaler+logistic_regression"
cv = 3
[set]
max_iter = 300
[grid]
C = [0.01, 1, "10"]
"#,
        )
        .unwrap();
        let r = f.into_request().unwrap();
        let JobKind::GridSearch {
            estimator,
            grid,
            cv,
            ..
        } = r.job.kind
        else {
            panic!()
        };
        assert_eq!(cv, 3);
        assert_eq!(
            grid,
            vec![(
                "C".to_string(),
                vec!["0.01".into(), "1".into(), "10".into()]
            )]
        );
        assert!(format!("{estimator:?}").contains("max_iter: 300"));

        let f: JobFile = toml::from_str(
            r#"
dataset = "d"
kind = "random_search"
model = "decision_tree"
n_iter = 3
[space]
max_depth = { int = [1, 8] }
criterion = ["gini", "entropy"]
"#,
        )
        .unwrap();
        let r = f.into_request().unwrap();
        assert!(matches!(
            r.job.kind,
            JobKind::RandomSearch { n_iter: 3, .. }
        ));
    }

    #[test]
    fn a_multi_model_search_file_names_each_estimator_and_grid() {
        let f: JobFile = toml::from_str(
            r#"
dataset = "d"
kind = "multi_search"
cv = 3
[[search]]
model = "logistic_regression"
grid = { C = [0.1, 1] }
[[search]]
model = "decision_tree"
set = { criterion = "entropy" }
grid = { max_depth = [2, 4, 8] }
"#,
        )
        .unwrap();
        let r = f.into_request().unwrap();
        let JobKind::MultiSearch { searches, cv, .. } = r.job.kind else {
            panic!()
        };
        assert_eq!(cv, 3);
        assert_eq!(searches.len(), 2);
        assert_eq!(searches[1].1[0].1.len(), 3);
    }

    #[test]
    fn stacking_cascade_and_multi_output_files_parse() {
        let parse = |t: &str| toml::from_str::<JobFile>(t).unwrap().into_request();
        let r = parse(
            r#"
dataset = "iris"
kind = "stacking"
models = ["logistic_regression", "gaussian_nb"]
final_model = "decision_tree"
cv = 4
"#,
        )
        .unwrap();
        let JobKind::Stacking {
            estimators,
            final_estimator,
            cv,
        } = r.job.kind
        else {
            panic!()
        };
        assert_eq!(
            (estimators.len(), final_estimator.name(), cv),
            (2, "decision_tree".into(), 4)
        );
        let r = parse(
            r#"
dataset = "iris"
kind = "cascade"
router = "gaussian_nb"
model = "logistic_regression"
groups = [["setosa"], ["versicolor", "virginica"]]
"#,
        )
        .unwrap();
        assert!(matches!(r.job.kind, JobKind::Cascade { ref groups, .. } if groups.len() == 2));
        let r = parse(
            r#"
dataset = "iris"
kind = "multi_output"
model = "ridge"
targets = ["petal_length", "petal_width"]
[set]
alpha = 0.5
"#,
        )
        .unwrap();
        assert!(
            matches!(r.job.kind, JobKind::MultiOutput { ref targets, .. } if targets.len() == 2)
        );
        let e = parse("dataset = \"iris\"\nkind = \"cascade\"\nmodel = \"lr\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a cascade needs `groups"), "{e}");
    }

    #[test]
    fn bad_job_files_say_what_is_wrong() {
        let err = |t: &str| -> String {
            match toml::from_str::<JobFile>(t) {
                Err(e) => e.to_string(),
                Ok(f) => f.into_request().unwrap_err().to_string(),
            }
        };
        assert!(err("model = \"logistic_regression\"").contains("no dataset"));
        assert!(err("dataset = \"d\"").contains("no model"));
        assert!(err("dataset = \"d\"\nmodel = \"svm\"").contains("svm"));
        assert!(
            err("dataset = \"d\"\nmodel = \"logistic_regression\"\nkind = \"x\"")
                .contains("unknown job kind")
        );
        assert!(err("dataset = \"d\"\nbogus = 1").contains("bogus"));
        assert!(
            err("dataset = \"d\"\nkind = \"grid_search\"\nmodel = \"logistic_regression\"")
                .contains("[grid]")
        );
    }
}
