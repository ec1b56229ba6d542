//! Reading datasets from CSV with errors that point at the offending line and column.
//!
//! The file must have a header. The target column is chosen by name (default: the last
//! column); every other column is a feature, numeric, categorical or boolean as its cells
//! say ([`infer`]; overrides in [`CsvOptions`]). Missing cells (empty, or one of
//! [`CsvOptions::na_values`]) are NaN in the feature matrix; see [`crate::schema`] for how
//! each kind is stored.
//!
//! Memory stays bounded on any input: a record (a line, or a quoted field that spans lines)
//! longer than [`CsvOptions::max_line_bytes`] and a header wider than
//! [`CsvOptions::max_columns`] are refused with an error that names the limit, as soon as
//! the reader gets there (a file of gigabytes without a line break fails after reading the
//! limit, not after reading the file).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::dataset::{parse_int, Classes, Dataset, Target};
use crate::error::{ModelError, Result};
use crate::matrix::Matrix;
use crate::schema::{ColumnKind, DEFAULT_MAX_CATEGORIES, DEFAULT_NA_VALUES, UNKNOWN_CODE};

pub mod infer;

pub use infer::KindScan;

/// Whether the target holds class labels or continuous values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetKind {
    /// Class labels (text or integers).
    #[default]
    Classification,
    /// Real values.
    Regression,
}

/// Default cap on one CSV record: 4 MiB.
pub const DEFAULT_MAX_LINE_BYTES: u64 = 4 << 20;

/// Default cap on the columns of a header.
pub const DEFAULT_MAX_COLUMNS: usize = 65_536;

/// Options for [`read_csv`] and [`load_csv`].
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// Name of the target column; `None` means the last column.
    pub target: Option<String>,
    /// How to read the target.
    pub kind: TargetKind,
    /// Longest record read, in bytes: a line, or a quoted field that spans lines (default
    /// [`DEFAULT_MAX_LINE_BYTES`]).
    pub max_line_bytes: u64,
    /// Most columns a header may name (default [`DEFAULT_MAX_COLUMNS`]).
    pub max_columns: usize,
    /// Cells read as missing (default [`DEFAULT_NA_VALUES`]: empty, `NA`, `NaN`, `nan`,
    /// `null`, `None`).
    pub na_values: Vec<String>,
    /// Columns read as categorical whatever their cells (integer codes, say).
    pub categorical: Vec<String>,
    /// Columns read as numeric whatever their cells (a text cell is then an error).
    pub numeric: Vec<String>,
    /// Most distinct categories of one column (default [`DEFAULT_MAX_CATEGORIES`]).
    pub max_categories: usize,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            target: None,
            kind: TargetKind::default(),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_columns: DEFAULT_MAX_COLUMNS,
            na_values: DEFAULT_NA_VALUES.iter().map(|s| s.to_string()).collect(),
            categorical: Vec::new(),
            numeric: Vec::new(),
            max_categories: DEFAULT_MAX_CATEGORIES,
        }
    }
}

impl CsvOptions {
    /// Chooses the target column by name.
    pub fn with_target(mut self, name: impl Into<String>) -> Self {
        self.target = Some(name.into());
        self
    }

    /// Reads the target as class labels or as values.
    pub fn with_kind(mut self, kind: TargetKind) -> Self {
        self.kind = kind;
        self
    }
}

/// Loads a dataset from a CSV file. The file is first read as if every column were
/// numeric (one pass, the common case of a numbers-only file); at the first text cell, and
/// whenever a column is declared categorical, one pass infers the column kinds (two when a
/// column shows text after numbers) and the last reads the rows.
pub fn load_csv(path: impl AsRef<Path>, opts: &CsvOptions) -> Result<Dataset> {
    let path = path.as_ref();
    let source = path.display().to_string();
    let open = || File::open(path).map_err(|e| ModelError::io(path, e));
    if opts.categorical.is_empty() {
        match read_rows(CsvRows::new(open()?, &source, opts)?, opts) {
            Err(ModelError::TextCell { .. }) => {}
            done => return done,
        }
    }
    let kinds = infer_kinds(&mut || open(), &source, opts)?;
    read_rows(
        CsvRows::new(open()?, &source, opts)?.with_kinds(kinds)?,
        opts,
    )
}

/// Loads a CSV file in the terms of another dataset (a test file for a model fitted on a
/// training file): each feature column named like one of `like`'s is read as that column's
/// kind, so categories get the same codes (one `like` never saw becomes [`UNKNOWN_CODE`]);
/// other columns are read as numbers.
pub fn load_csv_like(path: impl AsRef<Path>, opts: &CsvOptions, like: &Dataset) -> Result<Dataset> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut rows = CsvRows::new(file, &path.display().to_string(), opts)?;
    let kinds = rows
        .feature_names()
        .iter()
        .map(|n| {
            like.feature_names()
                .iter()
                .position(|f| f == n)
                .map_or(ColumnKind::Numeric, |j| like.kind(j).clone())
        })
        .collect();
    rows = rows.with_kinds(kinds)?;
    rows.lenient = true;
    read_rows(rows, opts)
}

/// Infers the kinds of a CSV file's feature columns ([`infer`]), reading what `open` gives
/// once, or twice when a column shows text after numbers.
pub fn infer_kinds<R: Read>(
    open: &mut dyn FnMut() -> Result<R>,
    source: &str,
    opts: &CsvOptions,
) -> Result<Vec<ColumnKind>> {
    let rows = CsvRows::new(open()?, source, opts)?;
    let (scan, _) = scan_kinds(rows, opts)?;
    rescan_kinds(scan, &mut || CsvRows::new(open()?, source, opts))
}

/// The first pass of kind inference over `rows`; gives the reader back.
fn scan_kinds<R: Read>(mut rows: CsvRows<R>, opts: &CsvOptions) -> Result<(KindScan, R)> {
    let names = rows.feature_names();
    let mut scan = KindScan::new(
        &rows.source,
        &names,
        &rows.feature_cols,
        rows.target_name(),
        opts,
    )?;
    while let Some(line) = rows.next_raw()? {
        scan.observe(rows.feature_cells(), line)?;
    }
    Ok((scan, rows.into_inner()))
}

/// The second pass, when the first asks for it.
fn rescan_kinds<R: Read>(
    mut scan: KindScan,
    open: &mut dyn FnMut() -> Result<CsvRows<R>>,
) -> Result<Vec<ColumnKind>> {
    if scan.needs_rescan() {
        let mut rows = open()?;
        while rows.next_raw()?.is_some() {
            scan.observe_again(rows.feature_cells())?;
        }
    }
    Ok(scan.finish())
}

/// Copies what it reads into a buffer, so a stream read once to infer the column kinds can
/// be read again from memory.
struct Tee<R> {
    inner: R,
    copy: Vec<u8>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// The error a [`LineLimit`] gives when a record grows past its cap.
#[derive(Debug)]
struct LineTooLong {
    limit: u64,
}

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a record longer than {} bytes", self.limit)
    }
}

impl std::error::Error for LineTooLong {}

/// Gives the CSV reader at most `limit` bytes between two finished records (the reader
/// calls `record_done` after each): what keeps a file without line breaks, or
/// with a quote never closed, from growing one record without bound. The CSV reader reads
/// ahead a buffer (8 KiB), so the cap holds to within that.
#[derive(Debug)]
pub struct LineLimit<R> {
    inner: R,
    since_record: u64,
    limit: u64,
}

impl<R: Read> LineLimit<R> {
    fn new(inner: R, limit: u64) -> Self {
        Self {
            inner,
            since_record: 0,
            limit: limit.max(1),
        }
    }

    fn record_done(&mut self) {
        self.since_record = 0;
    }

    fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let room = self.limit.saturating_sub(self.since_record);
        if room == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                LineTooLong { limit: self.limit },
            ));
        }
        let take = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..take])?;
        self.since_record += n as u64;
        Ok(n)
    }
}

type Csv<R> = csv::Reader<LineLimit<R>>;

fn reader<R: Read>(rdr: R, opts: &CsvOptions) -> Csv<R> {
    csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(LineLimit::new(rdr, opts.max_line_bytes))
}

fn header<R: Read>(rdr: &mut Csv<R>, source: &str, opts: &CsvOptions) -> Result<Vec<String>> {
    let record = match rdr.headers() {
        Ok(r) => r,
        Err(e) => return Err(read_error(source, e, 1)),
    };
    if record.len() > opts.max_columns {
        return Err(ModelError::data(
            format!("{source}:1"),
            format!(
                "the header names {} columns; at most {} are read (raise the limit with --max-columns)",
                record.len(),
                opts.max_columns
            ),
        ));
    }
    let headers = record.iter().map(str::to_string).collect::<Vec<_>>();
    rdr.get_mut().record_done();
    if headers.is_empty() || headers.iter().all(String::is_empty) {
        return Err(ModelError::data(
            source,
            "the file is empty; expected a header line naming the columns",
        ));
    }
    if let Some(i) = headers.iter().position(String::is_empty) {
        return Err(ModelError::data(
            format!("{source}:1"),
            format!("column {} has an empty name in the header", i + 1),
        ));
    }
    for (i, h) in headers.iter().enumerate() {
        if headers[..i].contains(h) {
            return Err(ModelError::data(
                format!("{source}:1"),
                format!("column name '{h}' appears twice in the header"),
            ));
        }
    }
    Ok(headers)
}

/// A read error at the record that starts on `line`: a record over the cap says which cap,
/// others are the CSV reader's.
fn read_error(source: &str, e: csv::Error, line: u64) -> ModelError {
    if let csv::ErrorKind::Io(io) = e.kind() {
        if let Some(too_long) = io.get_ref().and_then(|x| x.downcast_ref::<LineTooLong>()) {
            return ModelError::data(
                format!("{source}:{line}"),
                format!(
                    "{too_long} (a file without line breaks, or a quote that is never closed?); \
                     raise the limit with --max-line-bytes"
                ),
            );
        }
    }
    csv_error(source, e)
}

fn csv_error(source: &str, e: csv::Error) -> ModelError {
    let location = match e.position() {
        Some(p) => format!("{source}:{}", p.line()),
        None => source.to_string(),
    };
    let message = match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "the line is not valid UTF-8".to_string(),
        _ => e.to_string(),
    };
    ModelError::data(location, message)
}

/// Reads the next non-blank record into `record`, checking it has `fields` fields; returns
/// its line number, or `None` at the end of the input.
fn next_record<R: Read>(
    rdr: &mut Csv<R>,
    record: &mut csv::StringRecord,
    source: &str,
    fields: usize,
) -> Result<Option<u64>> {
    loop {
        let at = rdr.position().line();
        match rdr.read_record(record) {
            Ok(false) => return Ok(None),
            Ok(true) => rdr.get_mut().record_done(),
            Err(e) => return Err(read_error(source, e, at)),
        }
        let line = record.position().map_or(0, |p| p.line());
        if record.len() == 1 && record[0].is_empty() {
            continue; // a blank line
        }
        if record.len() != fields {
            return Err(ModelError::data(
                format!("{source}:{line}"),
                format!(
                    "expected {fields} fields as in the header, found {}",
                    record.len()
                ),
            ));
        }
        return Ok(Some(line));
    }
}

/// Reads a regression target value: a finite number.
fn parse_value(s: &str, source: &str, line: u64, col: usize, name: &str) -> Result<f32> {
    let at = || format!("{source}:{line}, column '{name}' ({})", col + 1);
    let v: f32 = s
        .parse()
        .map_err(|_| ModelError::data(at(), format!("'{s}' is not a number")))?;
    if !v.is_finite() {
        return Err(ModelError::data(
            at(),
            format!("'{s}': NaN and infinite values are not supported"),
        ));
    }
    Ok(v)
}

/// Reads one feature cell of kind `kind`; `strict` refuses a category the kind does not
/// list (while reading training data, whose categories were all scanned).
#[allow(clippy::too_many_arguments)]
fn parse_cell(
    kind: &ColumnKind,
    s: &str,
    na_values: &[String],
    strict: bool,
    source: &str,
    line: u64,
    col: usize,
    name: &str,
) -> Result<f32> {
    let at = || format!("{source}:{line}, column '{name}' ({})", col + 1);
    // Each cell is parsed once; only a refused cell is looked at again, to tell text (the
    // column is categorical after all) from an infinite number.
    let v = kind.parse_cell(s, na_values).map_err(|m| {
        if *kind == ColumnKind::Numeric && s.trim().parse::<f32>().is_err() {
            ModelError::TextCell {
                location: at(),
                value: s.to_string(),
            }
        } else {
            ModelError::data(at(), m)
        }
    })?;
    if strict && v == UNKNOWN_CODE && matches!(kind, ColumnKind::Categorical { .. }) {
        return Err(ModelError::data(
            at(),
            format!("'{s}' is not one of the column's categories (did the file change while it was read?)"),
        ));
    }
    Ok(v)
}

/// A target value as read from one CSV row.
#[derive(Debug, Clone, PartialEq)]
pub enum RawTarget {
    /// A class label, as written.
    Label(String),
    /// A regression value.
    Value(f32),
}

/// Reads a CSV file row by row with bounded memory: each call parses one row's features
/// into a caller's buffer. [`read_csv`] and the storage crate's streaming ingest share it,
/// so both report bad input the same way.
#[derive(Debug)]
pub struct CsvRows<R: Read> {
    rdr: Csv<R>,
    source: String,
    headers: Vec<String>,
    feature_cols: Vec<usize>,
    target_col: usize,
    kind: TargetKind,
    record: csv::StringRecord,
    kinds: Vec<ColumnKind>,
    na_values: Vec<String>,
    /// Unknown categories become [`UNKNOWN_CODE`] instead of an error.
    lenient: bool,
}

impl<R: Read> CsvRows<R> {
    /// Reads and checks the header; `source` names the input in error messages.
    pub fn new(rdr: R, source: &str, opts: &CsvOptions) -> Result<Self> {
        let mut rdr = reader(rdr, opts);
        let headers = header(&mut rdr, source, opts)?;
        let target_col = match &opts.target {
            None => headers.len() - 1,
            Some(t) => headers.iter().position(|h| h == t).ok_or_else(|| {
                ModelError::data(
                    source,
                    format!(
                        "target column '{t}' is not in the header; columns are: {}",
                        headers.join(", ")
                    ),
                )
            })?,
        };
        if headers.len() < 2 {
            return Err(ModelError::data(
                format!("{source}:1"),
                "need at least one feature column besides the target",
            ));
        }
        let feature_cols = (0..headers.len()).filter(|&i| i != target_col).collect();
        Ok(Self {
            rdr,
            source: source.to_string(),
            headers,
            feature_cols,
            target_col,
            kind: opts.kind,
            record: csv::StringRecord::new(),
            kinds: Vec::new(),
            na_values: opts.na_values.clone(),
            lenient: false,
        })
    }

    /// Reads the feature columns as `kinds` (one per feature column, from
    /// [`infer_kinds`] or a stored schema) instead of all numeric.
    pub fn with_kinds(mut self, kinds: Vec<ColumnKind>) -> Result<Self> {
        if kinds.len() != self.feature_cols.len() {
            return Err(ModelError::Shape(format!(
                "{} column kinds for {} feature columns",
                kinds.len(),
                self.feature_cols.len()
            )));
        }
        self.kinds = kinds;
        Ok(self)
    }

    /// The kinds the feature columns are read as.
    pub fn kinds(&self) -> Vec<ColumnKind> {
        if self.kinds.is_empty() {
            vec![ColumnKind::Numeric; self.feature_cols.len()]
        } else {
            self.kinds.clone()
        }
    }

    /// Reads the next data row without parsing it; its cells are then
    /// [`CsvRows::feature_cells`]. Returns its line, or `None` at the end.
    pub fn next_raw(&mut self) -> Result<Option<u64>> {
        next_record(
            &mut self.rdr,
            &mut self.record,
            &self.source,
            self.headers.len(),
        )
    }

    /// The feature cells of the row [`CsvRows::next_raw`] read, in feature order.
    pub fn feature_cells(&self) -> impl Iterator<Item = &str> + '_ {
        self.feature_cols.iter().map(|&c| &self.record[c])
    }

    /// The reader underneath.
    fn into_inner(self) -> R {
        self.rdr.into_inner().into_inner()
    }

    /// Names of the feature columns, in file order.
    pub fn feature_names(&self) -> Vec<String> {
        self.feature_cols
            .iter()
            .map(|&c| self.headers[c].clone())
            .collect()
    }

    /// Name of the target column.
    pub fn target_name(&self) -> &str {
        &self.headers[self.target_col]
    }

    /// Position (0-based) of the target column in the file.
    pub fn target_col(&self) -> usize {
        self.target_col
    }

    /// Number of feature columns.
    pub fn n_features(&self) -> usize {
        self.feature_cols.len()
    }

    /// Bytes of input consumed so far (for progress reports).
    pub fn bytes_read(&self) -> u64 {
        self.rdr.position().byte()
    }

    /// Parses the next data row, appending its features to `x`; returns its line number and
    /// target, or `None` at the end of the input. Blank lines are skipped. On error `x` is
    /// left as it was.
    pub fn next_into(&mut self, x: &mut Vec<f32>) -> Result<Option<(u64, RawTarget)>> {
        let Some(line) = next_record(
            &mut self.rdr,
            &mut self.record,
            &self.source,
            self.headers.len(),
        )?
        else {
            return Ok(None);
        };
        let start = x.len();
        let parsed = self.parse_row(x, line);
        if parsed.is_err() {
            x.truncate(start);
        }
        parsed.map(|t| Some((line, t)))
    }

    fn parse_row(&self, x: &mut Vec<f32>, line: u64) -> Result<RawTarget> {
        let (record, source) = (&self.record, self.source.as_str());
        for (j, &c) in self.feature_cols.iter().enumerate() {
            let kind = self.kinds.get(j).unwrap_or(&ColumnKind::Numeric);
            x.push(parse_cell(
                kind,
                &record[c],
                &self.na_values,
                !self.lenient,
                source,
                line,
                c,
                &self.headers[c],
            )?);
        }
        let t = &record[self.target_col];
        let tname = &self.headers[self.target_col];
        // Only an empty cell is a missing target: `None` or `NA` may be class labels.
        if t.is_empty() {
            return Err(ModelError::data(
                format!(
                    "{source}:{line}, column '{tname}' ({})",
                    self.target_col + 1
                ),
                "missing target value",
            ));
        }
        Ok(match self.kind {
            TargetKind::Classification => RawTarget::Label(t.to_string()),
            TargetKind::Regression => {
                RawTarget::Value(parse_value(t, source, line, self.target_col, tname)?)
            }
        })
    }
}

/// Collects class labels in order of first appearance while rows stream past, then turns
/// them into the dataset's sorted [`Classes`] with the same checks as [`read_csv`].
#[derive(Debug, Default, Clone)]
pub struct LabelTable {
    labels: Vec<String>,
    first_line: Vec<u64>,
    index: std::collections::HashMap<String, u32>,
}

impl LabelTable {
    /// The provisional id of `label` (its first-appearance index), adding it if new.
    pub fn intern(&mut self, label: &str, line: u64) -> u32 {
        if let Some(&i) = self.index.get(label) {
            return i;
        }
        let i = self.labels.len() as u32;
        self.labels.push(label.to_string());
        self.first_line.push(line);
        self.index.insert(label.to_string(), i);
        i
    }

    /// Labels in first-appearance order (provisional id `i` is `labels()[i]`).
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// A table of these labels in this order (a stored dataset's label table).
    pub fn from_labels(labels: &[String]) -> Self {
        let mut t = Self::default();
        for l in labels {
            t.intern(l, 0);
        }
        t
    }

    /// The provisional id of `label`, if the table holds it.
    pub fn id_of(&self, label: &str) -> Option<u32> {
        self.index.get(label).copied()
    }

    /// The sorted classes and, for each provisional id, its class id. Fails for a single
    /// class, or for numeric labels that are not integers (a continuous target).
    /// `target_col` is the 0-based column of the target.
    pub fn finish(
        &self,
        source: &str,
        target_name: &str,
        target_col: usize,
    ) -> Result<(Classes, Vec<u32>)> {
        let numeric = self.labels.iter().all(|s| s.parse::<f64>().is_ok());
        if numeric {
            if let Some(i) = self.labels.iter().position(|s| parse_int(s).is_none()) {
                return Err(ModelError::data(
                    format!(
                        "{source}:{}, column '{target_name}' ({})",
                        self.first_line[i],
                        target_col + 1
                    ),
                    format!(
                        "target value '{}' is not a class label (it is a non-integer number); \
                         use a regressor for continuous targets",
                        self.labels[i]
                    ),
                ));
            }
        }
        let classes = Classes::from_labels(&self.labels);
        if classes.len() < 2 {
            return Err(ModelError::data(
                format!("{source}, column '{target_name}'"),
                format!(
                    "the target has a single class ('{}'); a classifier needs at least two",
                    classes.labels().first().map_or("", String::as_str)
                ),
            ));
        }
        let perm = self
            .labels
            .iter()
            .map(|l| classes.id_of(l).expect("every label is a class"))
            .collect();
        Ok((classes, perm))
    }
}

/// Reads a dataset from CSV text. `source` names the input in error messages. The column
/// kinds are inferred while a copy of the input is kept in memory, then the copy is read;
/// [`load_csv`] reads a file twice instead.
pub fn read_csv<R: Read>(rdr: R, source: &str, opts: &CsvOptions) -> Result<Dataset> {
    let rows = CsvRows::new(
        Tee {
            inner: rdr,
            copy: Vec::new(),
        },
        source,
        opts,
    )?;
    let (scan, tee) = scan_kinds(rows, opts)?;
    let copy = tee.copy;
    let kinds = rescan_kinds(scan, &mut || CsvRows::new(copy.as_slice(), source, opts))?;
    read_rows(
        CsvRows::new(copy.as_slice(), source, opts)?.with_kinds(kinds)?,
        opts,
    )
}

/// Reads every row of `rows` into a dataset.
fn read_rows<R: Read>(mut rows: CsvRows<R>, opts: &CsvOptions) -> Result<Dataset> {
    let source = rows.source.clone();
    let source = source.as_str();
    let mut x = Vec::new();
    let mut provisional: Vec<u32> = Vec::new();
    let mut values: Vec<f32> = Vec::new();
    let mut table = LabelTable::default();
    while let Some((line, t)) = rows.next_into(&mut x)? {
        match t {
            RawTarget::Label(l) => provisional.push(table.intern(&l, line)),
            RawTarget::Value(v) => values.push(v),
        }
    }
    let d = rows.n_features();
    let n = x.len() / d;
    if n == 0 {
        return Err(ModelError::data(
            source,
            "no data rows after the header line",
        ));
    }
    let target = match opts.kind {
        TargetKind::Regression => Target::Values(values),
        TargetKind::Classification => {
            let (classes, perm) = table.finish(source, rows.target_name(), rows.target_col)?;
            Target::Classes {
                ids: provisional.into_iter().map(|p| perm[p as usize]).collect(),
                classes,
            }
        }
    };
    let target_name = rows.target_name().to_string();
    Dataset::new(
        Matrix::from_vec(n, d, x)?,
        target,
        rows.feature_names(),
        target_name,
    )?
    .with_kinds(rows.kinds())
}

/// Reads feature columns for prediction: the columns named in `feature_names` are taken in
/// that order. Returns the matrix and, if the file also has a column called `target_name`,
/// its raw values. Other columns are refused (naming them), as scikit-learn refuses feature
/// names unseen in fit, unless `ignore_extra` drops them. Of `limits`, only the caps on
/// records and columns apply. All rows in memory: [`FeatureReader`] reads them in batches.
pub fn read_features<R: Read>(
    rdr: R,
    source: &str,
    feature_names: &[String],
    target_name: Option<&str>,
    limits: &CsvOptions,
    ignore_extra: bool,
) -> Result<(Matrix, Option<Vec<String>>)> {
    let mut r = FeatureReader::new(
        rdr,
        source,
        feature_names,
        target_name,
        limits,
        ignore_extra,
    )?;
    let Some((x, t)) = r.next_batch(usize::MAX)? else {
        return Err(ModelError::data(
            source,
            "no data rows after the header line",
        ));
    };
    Ok((x, t))
}

/// A CSV file's feature columns for prediction, read a batch of rows at a time (bounded
/// memory whatever the file's size); see [`read_features`] for the columns it takes.
pub struct FeatureReader<R: Read> {
    rdr: Csv<R>,
    source: String,
    headers: Vec<String>,
    cols: Vec<usize>,
    tcol: Option<usize>,
    record: csv::StringRecord,
    rows: u64,
    kinds: Vec<ColumnKind>,
    na_values: Vec<String>,
}

impl<R: Read> std::fmt::Debug for FeatureReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FeatureReader({}, {} rows read)", self.source, self.rows)
    }
}

impl<R: Read> FeatureReader<R> {
    /// Reads the header and checks it against the model's columns.
    pub fn new(
        rdr: R,
        source: &str,
        feature_names: &[String],
        target_name: Option<&str>,
        limits: &CsvOptions,
        ignore_extra: bool,
    ) -> Result<Self> {
        let mut rdr = reader(rdr, limits);
        let headers = header(&mut rdr, source, limits)?;
        let mut cols = Vec::with_capacity(feature_names.len());
        let mut missing = Vec::new();
        for f in feature_names {
            match headers.iter().position(|h| h == f) {
                Some(i) => cols.push(i),
                None => missing.push(f.as_str()),
            }
        }
        if !missing.is_empty() {
            return Err(ModelError::data(
                format!("{source}:1"),
                format!(
                    "the model needs feature column(s) {} that the header lacks; header: {}",
                    missing.join(", "),
                    headers.join(", ")
                ),
            ));
        }
        let extra: Vec<&str> = headers
            .iter()
            .filter(|h| !feature_names.contains(h) && Some(h.as_str()) != target_name)
            .map(String::as_str)
            .collect();
        if !extra.is_empty() && !ignore_extra {
            return Err(ModelError::data(
                format!("{source}:1"),
                format!(
                    "column(s) {} are not features the model was fitted on (it reads {}); to \
                     predict anyway, drop them with --ignore-extra-columns",
                    extra.join(", "),
                    feature_names.join(", ")
                ),
            ));
        }
        let tcol = target_name.and_then(|t| headers.iter().position(|h| h == t));
        Ok(Self {
            rdr,
            source: source.to_string(),
            headers,
            cols,
            tcol,
            record: csv::StringRecord::new(),
            rows: 0,
            kinds: Vec::new(),
            na_values: limits.na_values.clone(),
        })
    }

    /// Reads the columns as the model's input kinds (one per feature name): categories
    /// become their codes in the model's schema, an unseen one [`UNKNOWN_CODE`] (the
    /// model's encoder decides what to do with it), missing cells NaN.
    pub fn with_kinds(mut self, kinds: &[ColumnKind]) -> Result<Self> {
        if kinds.len() != self.cols.len() {
            return Err(ModelError::Shape(format!(
                "{} column kinds for {} features",
                kinds.len(),
                self.cols.len()
            )));
        }
        self.kinds = kinds.to_vec();
        Ok(self)
    }

    /// Whether the file has the target column (its values come with each batch).
    pub fn has_target(&self) -> bool {
        self.tcol.is_some()
    }

    /// Data rows read so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The next at most `max_rows` rows: their features and, with a target column, its raw
    /// values; `None` at the end of the file.
    pub fn next_batch(&mut self, max_rows: usize) -> Result<Option<(Matrix, Option<Vec<String>>)>> {
        let mut x = Vec::new();
        let mut targets = self.tcol.map(|_| Vec::new());
        let mut n = 0usize;
        while n < max_rows.max(1) {
            let Some(line) = next_record(
                &mut self.rdr,
                &mut self.record,
                &self.source,
                self.headers.len(),
            )?
            else {
                break;
            };
            for (j, &c) in self.cols.iter().enumerate() {
                x.push(parse_cell(
                    self.kinds.get(j).unwrap_or(&ColumnKind::Numeric),
                    &self.record[c],
                    &self.na_values,
                    false,
                    &self.source,
                    line,
                    c,
                    &self.headers[c],
                )?);
            }
            if let (Some(c), Some(t)) = (self.tcol, targets.as_mut()) {
                t.push(self.record[c].to_string());
            }
            n += 1;
        }
        if n == 0 {
            return Ok(None);
        }
        self.rows += n as u64;
        Ok(Some((Matrix::from_vec(n, self.cols.len(), x)?, targets)))
    }
}

/// The iris dataset (150 rows, 4 features, 3 species), bundled in the binary.
pub fn iris() -> Dataset {
    read_csv(
        IRIS_CSV.as_bytes(),
        "iris.csv (bundled)",
        &CsvOptions::default(),
    )
    .expect("the bundled iris data is valid")
}

/// The bundled iris CSV text.
pub const IRIS_CSV: &str = include_str!("../../../data/iris.csv");

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Dataset> {
        read_csv(text.as_bytes(), "t.csv", &CsvOptions::default())
    }

    fn err(text: &str) -> String {
        read(text).unwrap_err().to_string()
    }

    #[test]
    fn bundled_iris_has_150_rows_and_three_species() {
        let d = iris();
        assert_eq!(d.n_samples(), 150);
        assert_eq!(d.n_features(), 4);
        assert_eq!(d.feature_names()[0], "sepal_length");
        assert_eq!(d.target_name(), "species");
        let (ids, classes) = d.class_target().unwrap();
        assert_eq!(classes.labels(), ["setosa", "versicolor", "virginica"]);
        assert_eq!(ids.iter().filter(|&&c| c == 2).count(), 50);
        assert_eq!(d.x().row(0), vec![5.1, 3.5, 1.4, 0.2]);
    }

    #[test]
    fn target_by_name_in_the_middle() {
        let d = read_csv(
            "a,label,b\n1,x,2\n3,y,4\n".as_bytes(),
            "t.csv",
            &CsvOptions::default().with_target("label"),
        )
        .unwrap();
        assert_eq!(d.feature_names(), ["a", "b"]);
        assert_eq!(d.x().to_vec(), vec![1., 2., 3., 4.]);
        assert_eq!(d.classes().unwrap().labels(), ["x", "y"]);
    }

    #[test]
    fn integer_classes_and_regression_targets() {
        let d = read("a,y\n1,10\n2,9\n3,10\n").unwrap();
        assert_eq!(d.classes().unwrap().labels(), ["9", "10"]);
        assert_eq!(d.class_target().unwrap().0, &[1, 0, 1]);
        let r = read_csv(
            "a,y\n1,0.5\n2,1.5\n".as_bytes(),
            "t.csv",
            &CsvOptions::default().with_kind(TargetKind::Regression),
        )
        .unwrap();
        assert_eq!(r.target(), &Target::Values(vec![0.5, 1.5]));
    }

    #[test]
    fn kinds_are_inferred_from_the_cells() {
        // n: numbers with holes; t: text; b: booleans; m: numbers, then text (read again);
        // e: nothing at all.
        let text = "n,t,b,m,e,y\n1.5,x,True,3,,p\nNA,y,false,10,,q\n2,,TRUE,a,NaN,p\n";
        let d = read(text).unwrap();
        let kinds = d.kinds();
        assert_eq!(kinds[0], ColumnKind::Numeric);
        let ColumnKind::Categorical { categories } = &kinds[1] else {
            panic!("t is text: {:?}", kinds[1])
        };
        assert_eq!(categories.labels(), ["x", "y"]);
        assert_eq!(kinds[2], ColumnKind::Boolean);
        let ColumnKind::Categorical { categories } = &kinds[3] else {
            panic!("m is text: {:?}", kinds[3])
        };
        assert_eq!(categories.labels(), ["10", "3", "a"]);
        assert_eq!(kinds[4], ColumnKind::Numeric);
        let x = d.x().to_vec();
        assert_eq!(&x[..4], &[1.5, 0.0, 1.0, 1.0]);
        assert!(x[4].is_nan() && x[5].is_nan() && x[11].is_nan() && x[14].is_nan());
        assert_eq!((x[6], x[7], x[8], x[13]), (1.0, 0.0, 0.0, 2.0));
        assert_eq!(d.missing_counts(), vec![1, 1, 0, 0, 3]);

        // Overrides: integer codes as categories (sorted as numbers), other NA markers.
        let opts = CsvOptions {
            categorical: vec!["code".into()],
            na_values: vec!["?".into()],
            ..CsvOptions::default()
        };
        let d = read_csv(
            "code,v,y\n10,?,p\n9,NA,q\n10,1,p\n".as_bytes(),
            "t.csv",
            &opts,
        )
        .unwrap();
        let ColumnKind::Categorical { categories } = d.kind(0) else {
            panic!("code is categorical")
        };
        assert_eq!(categories.labels(), ["9", "10"]);
        assert_eq!(d.x().row(0)[0], 1.0);
        let ColumnKind::Categorical { categories } = d.kind(1) else {
            panic!("'NA' is text once only '?' is missing")
        };
        assert_eq!(categories.labels(), ["1", "NA"]);
    }

    #[test]
    fn decimal_categories_sort_by_value() {
        let opts = CsvOptions {
            categorical: vec!["p".into()],
            ..CsvOptions::default()
        };
        let d = read_csv("p,y\n10.5,a\n2.5,b\n2.50,a\n".as_bytes(), "t.csv", &opts).unwrap();
        let ColumnKind::Categorical { categories } = d.kind(0) else {
            panic!("p is categorical")
        };
        assert_eq!(
            categories.labels(),
            ["2.5", "10.5"],
            "as scikit-learn orders floats"
        );
        assert_eq!(d.x().to_vec(), vec![1., 0., 0.]);
    }

    #[test]
    fn a_column_past_the_category_cap_fails_naming_it() {
        let mut text = String::from("id,y\n");
        for i in 0..50 {
            text.push_str(&format!("u{i},{}\n", i % 2));
        }
        let opts = CsvOptions {
            max_categories: 20,
            ..CsvOptions::default()
        };
        let e = read_csv(text.as_bytes(), "t.csv", &opts)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("t.csv, column 'id': has more than 20 distinct categories"),
            "{e}"
        );
        assert!(e.contains("--max-categories"), "{e}");
    }

    #[test]
    fn bad_input_names_line_and_column() {
        assert_eq!(
            err(""),
            "t.csv: the file is empty; expected a header line naming the columns"
        );
        assert_eq!(err("a,y\n"), "t.csv: no data rows after the header line");
        assert_eq!(
            err("a,b,y\n1,2,x\n1,2\n"),
            "t.csv:3: expected 3 fields as in the header, found 2"
        );
        let numeric_b = CsvOptions {
            numeric: vec!["b".into()],
            ..CsvOptions::default()
        };
        assert_eq!(
            read_csv("a,b,y\n1,2,x\n1,zz,y\n".as_bytes(), "t.csv", &numeric_b)
                .unwrap_err()
                .to_string(),
            "t.csv:3, column 'b' (2): 'zz' is not a number (the column is given as numeric)"
        );
        assert!(err("a,y\n1,x\ninf,y\n").starts_with("t.csv:3, column 'a' (1): 'inf'"));
        assert_eq!(
            err("a,y\n1,x\nNA,\n"),
            "t.csv:3, column 'y' (2): missing target value"
        );
        let d = read("a,y\n1,None\n2,x\n").unwrap();
        assert_eq!(
            d.classes().unwrap().labels(),
            ["None", "x"],
            "a label, not missing"
        );
        let e = read_csv(
            "a,y\n1,x\n2,y\n".as_bytes(),
            "t.csv",
            &CsvOptions {
                categorical: vec!["y".into()],
                ..CsvOptions::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "t.csv: column 'y' given as categorical is the target");
        assert_eq!(
            err("a,y\n1,x\n2,x\n"),
            "t.csv, column 'y': the target has a single class ('x'); a classifier needs at least two"
        );
        assert!(err("a,y\n1,0\n2,2.5\n").starts_with("t.csv:3, column 'y' (2): target value '2.5'"));
        assert_eq!(
            err("a,a\n1,2\n"),
            "t.csv:1: column name 'a' appears twice in the header"
        );
        let e = read_csv(
            "a,y\n1,0\n2,1\n".as_bytes(),
            "t.csv",
            &CsvOptions::default().with_target("label"),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "t.csv: target column 'label' is not in the header; columns are: a, y"
        );
        assert_eq!(
            err("y\nx\n"),
            "t.csv:1: need at least one feature column besides the target"
        );
    }

    #[test]
    fn features_for_prediction_by_name() {
        let names = vec!["b".to_string(), "a".to_string()];
        let (x, t) = read_features(
            "a,b,y\n1,2,p\n3,4,q\n".as_bytes(),
            "p.csv",
            &names,
            Some("y"),
            &CsvOptions::default(),
            false,
        )
        .unwrap();
        assert_eq!(x.to_vec(), vec![2., 1., 4., 3.]);
        assert_eq!(t.unwrap(), vec!["p", "q"]);
        // A column the model was not fitted on is refused, unless dropped on request.
        let extra = "a,b,z,y\n1,2,0,p\n".as_bytes();
        let e = read_features(
            extra,
            "p.csv",
            &names,
            Some("y"),
            &CsvOptions::default(),
            false,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "p.csv:1: column(s) z are not features the model was fitted on (it reads b, a); to \
             predict anyway, drop them with --ignore-extra-columns"
        );
        let (x, _) = read_features(
            extra,
            "p.csv",
            &names,
            Some("y"),
            &CsvOptions::default(),
            true,
        )
        .unwrap();
        assert_eq!(x.to_vec(), vec![2., 1.]);
        let e = read_features(
            "a,y\n1,2\n".as_bytes(),
            "p.csv",
            &names,
            None,
            &CsvOptions::default(),
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("feature column(s) b"), "{e}");
    }

    /// A reader of `n` bytes of `b`, counting what is read from it.
    struct Endless {
        byte: u8,
        left: u64,
        read: std::rc::Rc<std::cell::Cell<u64>>,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.left as usize);
            buf[..n].fill(self.byte);
            self.left -= n as u64;
            self.read.set(self.read.get() + n as u64);
            Ok(n)
        }
    }

    fn limited(max_line_bytes: u64) -> CsvOptions {
        CsvOptions {
            max_line_bytes,
            ..CsvOptions::default()
        }
    }

    #[test]
    fn a_line_past_the_cap_is_refused_after_reading_about_the_cap() {
        // 1 GiB of zeros (no line break): refused at the header, having read ~the cap.
        let read = std::rc::Rc::new(std::cell::Cell::new(0));
        let input = Endless {
            byte: 0,
            left: 1 << 30,
            read: read.clone(),
        };
        let e = read_csv(input, "big.csv", &limited(1 << 20))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "big.csv:1: a record longer than 1048576 bytes (a file without line breaks, or a \
             quote that is never closed?); raise the limit with --max-line-bytes"
        );
        assert!(
            read.get() <= (1 << 20) + (64 << 10),
            "read {} bytes",
            read.get()
        );

        // A long data line after good ones names its line; the good ones were fine.
        // (The CSV reader reads ahead 8 KiB, so a line is caught once it is that much longer
        // than the cap.)
        let mut text = String::from("a,y\n1,p\n2,q\n3,");
        text.push_str(&"p".repeat(50_000));
        text.push('\n');
        let e = read_csv(text.as_bytes(), "t.csv", &limited(4096))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("t.csv:4: a record longer than 4096 bytes"),
            "{e}"
        );
        // The same file under the default cap reads.
        assert_eq!(
            read_csv(text.as_bytes(), "t.csv", &CsvOptions::default())
                .unwrap()
                .n_samples(),
            3
        );

        // A quote never closed: short lines, one endless record.
        let mut text = String::from("a,y\n\"");
        text.push_str(&"x\n".repeat(10_000));
        let e = read_csv(text.as_bytes(), "q.csv", &limited(4096))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("q.csv:2: a record longer than 4096 bytes"),
            "{e}"
        );
        // Prediction input is capped the same way.
        let e = read_features(
            "a,y\n".as_bytes().chain(Endless {
                byte: b'1',
                left: 1 << 24,
                read: read.clone(),
            }),
            "p.csv",
            &["a".to_string()],
            Some("y"),
            &limited(1 << 16),
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("p.csv:2: a record longer than 65536 bytes"),
            "{e}"
        );
    }

    #[test]
    fn a_header_past_the_column_cap_is_refused_naming_both_numbers() {
        let header = (0..300)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let opts = CsvOptions {
            max_columns: 256,
            ..CsvOptions::default()
        };
        let e = read_csv(format!("{header}\n").as_bytes(), "w.csv", &opts)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "w.csv:1: the header names 300 columns; at most 256 are read (raise the limit with --max-columns)"
        );
    }
}
