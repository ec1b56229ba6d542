//! `meshml-sim`: scenarios with fault injection on real in-process nodes, and the
//! deterministic mode over many seeds.
//!
//! ```text
//! meshml-sim list
//! meshml-sim run driver-kill [--report report.json] [--dir DIR]
//! meshml-sim run my-scenario.toml
//! meshml-sim run my-scenario.toml --hosts processes        # `meshml node` processes
//! sudo meshml-sim run netns-8 --hosts netns                # hosts in network namespaces
//! sudo meshml-sim netns-clean                              # what a killed run left
//! meshml-sim node ...                                      # a mesh node, as `meshml node`
//! meshml-sim det --seeds 1000 [--nodes 5] [--tasks 120]
//! ```
//! Exit status 1 when an invariant was violated, 2 on a usage error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use meshml_sim::det::{run_checked, DetConfig, DetFault};
use meshml_sim::netns::Lan;
use meshml_sim::scenario::{builtin, host_count, Hosts, Scenario, Setup};

#[derive(Debug, Parser)]
#[command(
    name = "meshml-sim",
    version,
    about = "meshml simulations with fault injection"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The built-in scenarios.
    List,
    /// Run a scenario (a built-in name or a TOML file).
    Run {
        /// Built-in name or path.
        scenario: String,
        /// Where the nodes run: threads of this process, `meshml node` processes on
        /// 127.0.0.1, or processes in network namespaces made for the run (root only;
        /// removed afterwards, also after a failure or Ctrl-C).
        #[arg(long, value_enum, default_value_t = Hosts::InProcess)]
        hosts: Hosts,
        /// The program that runs a node as `PROGRAM node ...` (default: this one; `meshml`
        /// works too).
        #[arg(long)]
        meshml: Option<PathBuf>,
        /// The namespaces made by the outer run (internal).
        #[arg(long, hide = true)]
        lan: Option<String>,
        /// Also write the report as JSON here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Keep the nodes' data here (default: a temporary directory, removed after).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Remove the network namespaces of simulator runs that were killed outright.
    NetnsClean,
    /// How the driver's dispatch time and the process's memory grow with the node count:
    /// for each count, a mesh in this process, a job of 201 near-empty tasks and a real
    /// one; prints a Markdown table.
    Cost {
        /// Node counts.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32")]
        nodes: Vec<usize>,
    },
    /// The deterministic mode: the scheduler and election rules over a simulated network,
    /// one history per seed, with the driver killed, a minority cut off and healed, lossy
    /// links and a restart.
    Det {
        /// How many seeds (0, 1, ...).
        #[arg(long, default_value_t = 1000)]
        seeds: u64,
        /// Nodes.
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// Tasks in the job.
        #[arg(long, default_value_t = 120)]
        tasks: usize,
        /// Also write the reports as JSON lines here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Run a data-parallel fit (standard_scaler+logistic_regression over iris in 10
        /// chunks) instead of the grid search: its model must be the fault-free run's, bit
        /// for bit.
        #[arg(long)]
        data_parallel: bool,
    },
}

fn main() -> ExitCode {
    // `meshml-sim node ...` runs a mesh node, as `meshml node ...` does: the processes a
    // scenario starts.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == "node") {
        let cli = match meshml_node::Cli::try_parse_from(
            std::iter::once(std::ffi::OsString::from("meshml")).chain(argv[1..].iter().cloned()),
        ) {
            Ok(c) => c,
            Err(e) => {
                let _ = e.print();
                return ExitCode::from(2);
            }
        };
        meshml_node::logging::set_up_logging(cli.verbose);
        meshml_node::one_thread_per_task();
        return match meshml_node::run(cli, &mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    meshml_node::logging::set_up_logging(0);
    match run(cli.command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cmd: Cmd) -> Result<bool, Box<dyn std::error::Error>> {
    let mut out = std::io::stdout().lock();
    match cmd {
        Cmd::List => {
            for (name, text) in builtin() {
                let s = Scenario::parse(text, name)?;
                writeln!(out, "{name:<22} {} nodes  {}", s.nodes, s.description)?;
            }
            Ok(true)
        }
        Cmd::NetnsClean => {
            let gone = meshml_sim::netns::clean_stale();
            writeln!(out, "removed {} namespaces", gone.len())?;
            for n in gone {
                writeln!(out, "  {n}")?;
            }
            Ok(true)
        }
        Cmd::Run {
            scenario,
            report,
            dir,
            hosts,
            meshml,
            lan,
        } => {
            let sc = if scenario.ends_with(".toml") || std::path::Path::new(&scenario).exists() {
                let text =
                    std::fs::read_to_string(&scenario).map_err(|e| format!("{scenario}: {e}"))?;
                Scenario::parse(&text, &scenario)?
            } else {
                Scenario::builtin(&scenario)?
            };
            let tmp;
            let root = match dir {
                Some(d) => d,
                None => {
                    tmp = tempfile::tempdir()?;
                    tmp.path().to_path_buf()
                }
            };
            if hosts == Hosts::Netns && lan.is_none() {
                return run_in_namespaces(&scenario, &sc, &root, report, meshml, &mut out);
            }
            let setup = Setup {
                hosts,
                meshml,
                lan: lan.as_deref().map(Lan::attach).transpose()?,
            };
            let r = meshml_sim::scenario::run_on(&sc, &root, setup, &mut out)?;
            writeln!(out)?;
            r.write_table(&mut out)?;
            if let Some(p) = report {
                std::fs::write(&p, serde_json::to_vec_pretty(&r)?)
                    .map_err(|e| format!("{}: {e}", p.display()))?;
                writeln!(out, "report:         {}", p.display())?;
            }
            Ok(r.passed())
        }
        Cmd::Cost { nodes } => {
            writeln!(
                out,
                "| nodes | mesh formed | tiny job (tasks) | per tiny task | real job (tasks) | RSS formed | RSS after |\n|---|---|---|---|---|---|---|"
            )?;
            for n in nodes {
                let tmp = tempfile::tempdir()?;
                let r = meshml_sim::scenario::dispatch_cost(n, tmp.path())?;
                writeln!(
                    out,
                    "| {} | {:.1} s | {:.2} s ({}) | {:.1} ms | {:.2} s ({}) | {:.0} MiB | {:.0} MiB |",
                    r.nodes,
                    r.form_ms as f64 / 1000.0,
                    r.tiny_ms as f64 / 1000.0,
                    r.tiny_tasks,
                    r.tiny_ms as f64 / r.tiny_tasks.max(1) as f64,
                    r.real_ms as f64 / 1000.0,
                    r.real_tasks,
                    r.rss_formed_mib,
                    r.rss_after_mib
                )?;
                out.flush()?;
            }
            Ok(true)
        }
        Cmd::Det {
            seeds,
            nodes,
            tasks,
            report,
            data_parallel,
        } => {
            let mut file = match &report {
                Some(p) => Some(std::io::BufWriter::new(
                    std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?,
                )),
                None => None,
            };
            let (mut failed, mut terms, mut retries, mut refused) = (0u64, 0usize, 0u64, 0u64);
            let mut failovers = Vec::new();
            for seed in 0..seeds {
                let mut cfg = DetConfig::new(nodes, tasks, seed);
                cfg.data_parallel = data_parallel;
                cfg.link.max_delay_us = 3_000;
                let n = nodes.max(1);
                cfg.faults = vec![
                    (350_000, DetFault::CrashLeader),
                    (500_000, DetFault::Loss(0.05)),
                    (900_000, DetFault::Partition(vec![(seed as usize) % n])),
                    (1_400_000, DetFault::Heal),
                    (1_500_000, DetFault::Loss(0.0)),
                    (1_600_000, DetFault::IsolateLeader),
                    (2_000_000, DetFault::Heal),
                    (2_100_000, DetFault::Restart(0)),
                ];
                let r = run_checked(&cfg);
                terms += r.leaders.len();
                retries += r.retries;
                refused += r.stale_refused;
                failovers.extend(r.failovers_us.iter().copied());
                if !r.violations.is_empty() {
                    failed += 1;
                    writeln!(out, "seed {seed}: {}", r.violations.join("; "))?;
                }
                if let Some(f) = file.as_mut() {
                    serde_json::to_writer(
                        &mut *f,
                        &serde_json::json!({ "seed": seed, "report": r }),
                    )?;
                    writeln!(f)?;
                }
            }
            failovers.sort_unstable();
            let median = failovers.get(failovers.len() / 2).copied().unwrap_or(0);
            let job = if data_parallel {
                "a data-parallel fit".to_string()
            } else {
                format!("{tasks} tasks")
            };
            writeln!(
                out,
                "{seeds} seeds, {nodes} nodes, {job}: {failed} with a violated invariant; \
                 {terms} driver terms, {retries} task retries, {refused} stale requests \
                 refused, median failover {:.0} ms (virtual)",
                median as f64 / 1000.0
            )?;
            if let Some(mut f) = file {
                f.flush()?;
            }
            Ok(failed == 0)
        }
    }
}

/// Makes the namespaces, runs this program again inside the control one (which reaches
/// every host), and removes them all afterwards.
fn run_in_namespaces(
    scenario: &str,
    sc: &Scenario,
    root: &std::path::Path,
    report: Option<PathBuf>,
    meshml: Option<PathBuf>,
    out: &mut dyn Write,
) -> Result<bool, Box<dyn std::error::Error>> {
    let stale = meshml_sim::netns::clean_stale();
    if !stale.is_empty() {
        writeln!(
            out,
            "removed {} namespaces left by earlier runs",
            stale.len()
        )?;
    }
    let lan = Lan::create(host_count(sc))
        .map_err(|e| format!("cannot make network namespaces (root needed): {e}"))?;
    lan.clean_on_signal();
    writeln!(
        out,
        "{} hosts in network namespaces {}h0..{}h{} on 10.214.{}.0/24",
        lan.hosts,
        lan.prefix,
        lan.prefix,
        lan.hosts - 1,
        lan.net
    )?;
    let me = std::env::current_exe()?;
    let abs = |p: PathBuf| -> Result<PathBuf, std::io::Error> {
        if p.is_absolute() {
            Ok(p)
        } else {
            Ok(std::env::current_dir()?.join(p))
        }
    };
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", &lan.control()])
        .arg(&me)
        .args(["run", scenario, "--hosts", "netns", "--lan", &lan.spec()])
        .arg("--dir")
        .arg(abs(root.to_path_buf())?);
    // Without --meshml the inner run uses itself, this same program.
    if let Some(m) = meshml {
        cmd.arg("--meshml").arg(abs(m)?);
    }
    if let Some(p) = report {
        cmd.arg("--report").arg(abs(p)?);
    }
    out.flush()?;
    let status = cmd.status()?;
    drop(lan);
    match status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(format!("the run inside the namespaces ended with {status}").into()),
    }
}
