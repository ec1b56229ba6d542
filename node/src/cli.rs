//! Command-line definitions.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
pub use meshml_client::status::StatusArgs;

use crate::config::NodeConfig;

/// meshml: scikit-learn-style machine learning on a peer-to-peer compute mesh.
#[derive(Debug, Parser)]
#[command(name = "meshml", version, about, long_about = None)]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work on this machine only, without a mesh (the small-data case).
    #[command(subcommand)]
    Local(LocalCommand),
    /// Datasets in this node's data directory: store, list, show, export, remove.
    Dataset(DatasetArgs),
    /// Run a long-running mesh node (until SIGINT or SIGTERM).
    Node(NodeArgs),
    /// Show the mesh as a node sees it (through its HTTP API).
    Status(StatusArgs),
    /// Run a job on the mesh (fit, grid search, ...) and print its result.
    Fit(meshml_client::fit::FitCmd),
    /// List the mesh's jobs.
    Jobs(meshml_client::fit::JobsCmd),
    /// Show or cancel a job.
    Job(meshml_client::fit::JobCmd),
    /// Predict every row of a dataset on the mesh (each chunk where it is stored).
    Predict(meshml_client::predict::PredictCmd),
    /// List the model registry: versions, aliases, copies.
    Models(meshml_client::predict::ModelsCmd),
    /// Manage a model: point an alias at a version.
    Model(meshml_client::predict::ModelCmd),
    /// A three-node mesh in this process on bundled data: replicate a dataset, run a grid
    /// search and a one-vs-rest job with progress, print the results.
    Demo(DemoArgs),
    /// Pre-shared keys for private clusters.
    #[command(subcommand)]
    Secret(SecretCommand),
}

/// `meshml node ...`
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// Data directory (identity key, datasets); default $MESHML_DATA_DIR, else ~/.meshml.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on (repeatable).
    #[arg(
        long,
        value_name = "MULTIADDR",
        default_value = "/ip4/0.0.0.0/tcp/7000"
    )]
    pub listen: Vec<String>,
    /// A peer to join through, `/ip4/ADDR/tcp/PORT/p2p/PEER_ID` (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<String>,
    /// Pre-shared key file: only nodes with the same key can connect (see `meshml secret new`).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// HTTP API address.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub http: String,
    /// Bearer token file for the HTTP API; required when --http is not a loopback address.
    #[arg(long, value_name = "FILE")]
    pub http_token_file: Option<PathBuf>,
    /// Cluster name (nodes only form a cluster with the same name).
    #[arg(long, default_value = "meshml")]
    pub cluster: String,
    /// Form the cluster once this many nodes (this one included) see each other.
    #[arg(long, default_value_t = 1)]
    pub expect: usize,
    /// Look this long (milliseconds) for an existing cluster to join before forming one.
    #[arg(long, default_value_t = 2000)]
    pub form_window_ms: u64,
    /// The driver removes a member unreachable this long (milliseconds).
    #[arg(long, default_value_t = 30_000)]
    pub remove_after_ms: u64,
    /// Turn off mDNS discovery.
    #[arg(long)]
    pub no_mdns: bool,
    /// Heartbeat interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub heartbeat_ms: u64,
    /// A peer silent this long (milliseconds) is reported gone.
    #[arg(long, default_value_t = 5000)]
    pub peer_timeout_ms: u64,
    /// A peer gone this long (milliseconds) is forgotten: out of the peer table and the
    /// routing table, never redialed.
    #[arg(long, default_value_t = 600_000)]
    pub forget_after_ms: u64,
    /// Tasks this node runs at once (default: its cores).
    #[arg(long)]
    pub slots: Option<usize>,
    /// Memory for datasets materialised for tasks, MiB (least recently used go first).
    #[arg(long, default_value_t = 1024)]
    pub cache_mb: u64,
    /// Memory for models loaded to serve predictions, MiB (least recently used go first).
    #[arg(long, default_value_t = 1024)]
    pub model_cache_mb: u64,
    /// Memory a fit may take for its training data, MiB: a job whose dataset is larger runs
    /// data-parallel, in passes over the chunks where they are stored (default: half the
    /// memory available at start).
    #[arg(long)]
    pub train_memory_mb: Option<f64>,
    /// Read back every stored chunk this often (seconds) and replace copies that fail their
    /// check from another holder; a pass also runs shortly after start. 0 turns it off.
    #[arg(long, default_value_t = 86_400)]
    pub scrub_every_s: u64,
    /// The scrubber reads at most this many MiB per second.
    #[arg(long, default_value_t = 64)]
    pub scrub_mb_s: u64,
    /// Largest prediction request body, MiB (larger ones are refused with 413).
    #[arg(long, default_value_t = 16)]
    pub max_request_mb: u64,
}

impl NodeArgs {
    /// The node configuration these flags give (see [`NodeConfig`] for the defaults).
    pub fn config(&self) -> NodeConfig {
        let mb = |m: u64| m.saturating_mul(1 << 20);
        NodeConfig {
            data_dir: self.data_dir.clone(),
            listen: self.listen.clone(),
            bootstrap: self.bootstrap.clone(),
            secret_file: self.secret_file.clone(),
            http: self.http.clone(),
            http_token_file: self.http_token_file.clone(),
            cluster: self.cluster.clone(),
            expect: self.expect,
            form_window: Duration::from_millis(self.form_window_ms),
            remove_after: Duration::from_millis(self.remove_after_ms),
            mdns: !self.no_mdns,
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            peer_timeout: Duration::from_millis(self.peer_timeout_ms),
            forget_after: Duration::from_millis(self.forget_after_ms),
            slots: self.slots,
            cache_bytes: mb(self.cache_mb),
            model_cache_bytes: mb(self.model_cache_mb),
            train_memory_bytes: self
                .train_memory_mb
                .map(|m| (m.max(0.0) * f64::from(1u32 << 20)) as u64),
            scrub_every: (self.scrub_every_s > 0).then(|| Duration::from_secs(self.scrub_every_s)),
            scrub_bytes_per_s: mb(self.scrub_mb_s),
            max_request_bytes: usize::try_from(mb(self.max_request_mb)).unwrap_or(usize::MAX),
        }
    }
}

/// `meshml secret ...`
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Print a new random pre-shared key (save it to a file, copy it to every node).
    New,
}

/// `meshml dataset ...`
#[derive(Debug, Args)]
pub struct DatasetArgs {
    /// The node's data directory (default: $MESHML_DATA_DIR, else ~/.meshml).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: DatasetCommand,
}

/// `meshml dataset ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Store a CSV (with a header) or Parquet file as a dataset of content-addressed chunks.
    Put {
        /// CSV file with a header, or a .parquet file.
        file: PathBuf,
        /// Dataset name (letters, digits, '.', '_', '-'); default: the file's name.
        #[arg(long)]
        name: Option<String>,
        /// Rows per chunk.
        #[arg(long, default_value_t = meshml_storage::ingest::DEFAULT_CHUNK_ROWS)]
        chunk_rows: usize,
        /// Target column name (default: the last column).
        #[arg(long)]
        target: Option<String>,
        /// Read the target as real values instead of class labels.
        #[arg(long)]
        regression: bool,
        /// Store it on the mesh through the node at --node, with this many copies of each
        /// chunk (instead of in the local data directory).
        #[arg(long)]
        replicas: Option<usize>,
        /// The node to store it through.
        #[arg(long, default_value = "http://127.0.0.1:7070")]
        node: String,
        /// Bearer token file, for a node that requires one.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Caps on what is read (a node storing it on the mesh applies its defaults).
        #[command(flatten)]
        limits: CsvLimits,
    },
    /// List datasets (in the data directory, or on the mesh with --node).
    Ls {
        /// Where the datasets are.
        #[command(flatten)]
        mesh: MeshTarget,
    },
    /// Show a dataset's columns, classes and chunks (on the mesh: the chunks' holders).
    Show {
        /// Dataset name.
        name: String,
        /// Where the dataset is.
        #[command(flatten)]
        mesh: MeshTarget,
    },
    /// Write a dataset as CSV or Parquet (from the mesh: streamed from the holders).
    Export {
        /// Dataset name.
        name: String,
        /// Output file (default: standard output); written whole or not at all.
        #[arg(long)]
        out: Option<PathBuf>,
        /// csv or parquet (default: from the --out file's extension, else csv).
        #[arg(long, value_parser = ["csv", "parquet"])]
        format: Option<String>,
        /// Where the dataset is.
        #[command(flatten)]
        mesh: MeshTarget,
    },
    /// Remove a dataset (chunks shared with another dataset stay; on the mesh, every holder
    /// frees its copies).
    Rm {
        /// Dataset name.
        name: String,
        /// Where the dataset is.
        #[command(flatten)]
        mesh: MeshTarget,
    },
}

/// `--node` for the dataset commands that work either on the local data directory or,
/// with it, on the mesh.
#[derive(Debug, Clone, Args)]
pub struct MeshTarget {
    /// Work on the mesh through the node at this URL (e.g. http://127.0.0.1:7070) instead
    /// of the local data directory.
    #[arg(long, value_name = "URL")]
    pub node: Option<String>,
    /// Bearer token file, for a node that requires one.
    #[arg(long, value_name = "FILE", requires = "node")]
    pub token_file: Option<PathBuf>,
}

/// `meshml local ...`
#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Fit a model on a CSV file, report test accuracy and a confusion matrix, save it.
    Fit(FitArgs),
    /// Predict with a saved model.
    Predict(PredictArgs),
    /// List the estimators and their parameters.
    Estimators,
}

/// How a CSV file is read: caps that keep memory bounded whatever it holds, and the column
/// types (inferred from the cells unless given).
#[derive(Debug, Clone, Args)]
pub struct CsvLimits {
    /// Longest CSV record read, in bytes (a line, or a quoted field spanning lines).
    #[arg(long, value_name = "BYTES", default_value_t = meshml_models::io::DEFAULT_MAX_LINE_BYTES)]
    pub max_line_bytes: u64,
    /// Most columns a CSV header may name.
    #[arg(long, value_name = "N", default_value_t = meshml_models::io::DEFAULT_MAX_COLUMNS)]
    pub max_columns: usize,
    /// Read these columns as categorical whatever their cells (integer codes, say);
    /// comma-separated, repeatable.
    #[arg(long, value_name = "COLUMNS", value_delimiter = ',')]
    pub categorical: Vec<String>,
    /// Read these columns as numbers (a text cell is then an error); comma-separated.
    #[arg(long, value_name = "COLUMNS", value_delimiter = ',')]
    pub numeric: Vec<String>,
    /// Cells read as missing, comma-separated, instead of NA, NaN, nan, null and None (an
    /// empty cell is always missing).
    #[arg(long, value_name = "VALUES", value_delimiter = ',')]
    pub na_values: Option<Vec<String>>,
    /// Most distinct categories one column may have.
    #[arg(long, value_name = "N", default_value_t = meshml_models::schema::DEFAULT_MAX_CATEGORIES)]
    pub max_categories: usize,
}

impl Default for CsvLimits {
    fn default() -> Self {
        Self {
            max_line_bytes: meshml_models::io::DEFAULT_MAX_LINE_BYTES,
            max_columns: meshml_models::io::DEFAULT_MAX_COLUMNS,
            categorical: Vec::new(),
            numeric: Vec::new(),
            na_values: None,
            max_categories: meshml_models::schema::DEFAULT_MAX_CATEGORIES,
        }
    }
}

impl CsvLimits {
    /// `opts` with these caps and column types.
    pub fn apply(&self, opts: meshml_models::io::CsvOptions) -> meshml_models::io::CsvOptions {
        let na_values = match &self.na_values {
            Some(v) => std::iter::once(String::new())
                .chain(v.iter().cloned())
                .collect(),
            None => opts.na_values,
        };
        meshml_models::io::CsvOptions {
            max_line_bytes: self.max_line_bytes,
            max_columns: self.max_columns,
            categorical: self.categorical.clone(),
            numeric: self.numeric.clone(),
            na_values,
            max_categories: self.max_categories,
            ..opts
        }
    }
}

/// Arguments of `meshml local fit`.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// CSV file with a header; the bundled iris data when omitted.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Target column name (default: the last column).
    #[arg(long)]
    pub target: Option<String>,
    /// Estimator name; `a+b` makes a pipeline (e.g. standard_scaler+logistic_regression).
    #[arg(long, default_value = "logistic_regression")]
    pub model: String,
    /// A parameter as NAME=VALUE with scikit-learn's names (repeatable), e.g. --set C=0.5.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub set: Vec<String>,
    /// Fraction of rows held out for testing, in [0, 1): 0 trains on every row and
    /// evaluates on none.
    #[arg(long, default_value_t = 0.2)]
    pub test_size: f64,
    /// Evaluate on this CSV file instead of holding rows out (a fixed train/test split):
    /// it has the training file's feature columns (by name) and target column.
    #[arg(long, value_name = "FILE", conflicts_with = "test_size")]
    pub test_data: Option<PathBuf>,
    /// Read the target as real values and fit a regressor (scored with R² and MAE).
    #[arg(long)]
    pub regression: bool,
    /// Seed for the split and for randomised estimators.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Split without keeping class proportions.
    #[arg(long)]
    pub no_stratify: bool,
    /// Where to save the model (default: `DATA_NAME.mlm` in the current directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Caps on what is read.
    #[command(flatten)]
    pub limits: CsvLimits,
}

/// Arguments of `meshml local predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A model saved by `meshml local fit` or downloaded by `meshml model get`.
    #[arg(long)]
    pub model: PathBuf,
    /// CSV with the model's feature columns (by name); the bundled iris data when neither
    /// this nor --dataset is given.
    #[arg(long, conflicts_with = "dataset")]
    pub data: Option<PathBuf>,
    /// Predict every row of a stored dataset instead, chunk by chunk.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Data directory holding --dataset (default: $MESHML_DATA_DIR, else ~/.meshml).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Write predictions here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Add one probability column per class.
    #[arg(long)]
    pub proba: bool,
    /// Predict even though the data has columns the model was not fitted on (they are
    /// dropped); refused otherwise, as scikit-learn refuses unseen feature names.
    #[arg(long)]
    pub ignore_extra_columns: bool,
    /// Caps on what is read.
    #[command(flatten)]
    pub limits: CsvLimits,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_flags_default_to_the_config_defaults() {
        let cli = Cli::try_parse_from(["meshml", "node"]).unwrap();
        let Command::Node(args) = cli.command else {
            panic!("a node command")
        };
        assert_eq!(args.config(), NodeConfig::default());
    }

    #[test]
    fn node_flags_map_onto_the_config() {
        let cli = Cli::try_parse_from([
            "meshml",
            "node",
            "--no-mdns",
            "--heartbeat-ms",
            "250",
            "--scrub-every-s",
            "0",
            "--max-request-mb",
            "2",
            "--slots",
            "3",
        ])
        .unwrap();
        let Command::Node(args) = cli.command else {
            panic!("a node command")
        };
        let c = args.config();
        assert!(!c.mdns);
        assert_eq!(c.heartbeat, Duration::from_millis(250));
        assert_eq!(c.scrub_every, None);
        assert_eq!(c.max_request_bytes, 2 << 20);
        assert_eq!(c.slots, Some(3));
    }
}

/// `meshml demo ...`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Nodes in the mesh.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Where the nodes keep their data (default: a temporary directory, removed after).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}
