//! Column kinds inferred from a CSV file's cells, in bounded memory.
//!
//! A column is numeric when every cell that is not missing is a number, boolean when every
//! such cell is `true` or `false` (any case), and categorical otherwise (pandas' rule: one
//! text cell makes the column text); a column with no cell at all is numeric. Overrides
//! (`--categorical`, `--numeric`) win. Only the categories of categorical columns are kept,
//! at most [`CsvOptions::max_categories`] per column and [`MAX_CATEGORY_BYTES`] in all, so a
//! column with a value per row fails as soon as it passes the cap. A column that shows text
//! only after numbers needs its numbers as categories too: the caller reads the file a
//! second time for those columns ([`KindScan::needs_rescan`]).

use std::collections::HashSet;

use super::CsvOptions;
use crate::dataset::Classes;
use crate::error::{ModelError, Result};
use crate::schema::{parse_bool_cell, ColumnKind};

/// Most bytes of category text kept while inferring kinds, over all columns.
pub const MAX_CATEGORY_BYTES: usize = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forced {
    Numeric,
    Categorical,
}

#[derive(Debug, Default)]
struct ColumnScan {
    forced: Option<Forced>,
    seen: bool,
    numeric: bool,
    boolean: bool,
    /// The categories so far, when the column holds text (or is declared categorical).
    distinct: Option<HashSet<String>>,
    /// Text after numbers: the numbers must be read again as categories.
    rescan: bool,
}

/// Infers the kinds of a file's feature columns from its cells (see the module docs).
#[derive(Debug)]
pub struct KindScan {
    source: String,
    names: Vec<String>,
    /// 1-based position of each feature column in the file, for messages.
    positions: Vec<usize>,
    cols: Vec<ColumnScan>,
    na_values: Vec<String>,
    max_categories: usize,
    bytes: usize,
}

impl KindScan {
    /// A scan of the feature columns `names` (file positions `positions`, 0-based); checks
    /// that every column named in an override exists and is not the target.
    pub fn new(
        source: &str,
        names: &[String],
        positions: &[usize],
        target: &str,
        opts: &CsvOptions,
    ) -> Result<Self> {
        let mut cols: Vec<ColumnScan> = names
            .iter()
            .map(|_| ColumnScan {
                numeric: true,
                boolean: true,
                ..ColumnScan::default()
            })
            .collect();
        for (list, forced) in [
            (&opts.categorical, Forced::Categorical),
            (&opts.numeric, Forced::Numeric),
        ] {
            for name in list {
                let Some(j) = names.iter().position(|n| n == name) else {
                    let why = if name == target {
                        "is the target".to_string()
                    } else {
                        format!("is not in the header; columns are: {}", names.join(", "))
                    };
                    return Err(ModelError::data(
                        source,
                        format!("column '{name}' given as {} {why}", forced.word()),
                    ));
                };
                if cols[j].forced.is_some_and(|f| f != forced) {
                    return Err(ModelError::data(
                        source,
                        format!("column '{name}' is given as both categorical and numeric"),
                    ));
                }
                cols[j].forced = Some(forced);
                if forced == Forced::Categorical {
                    cols[j].distinct = Some(HashSet::new());
                }
            }
        }
        Ok(Self {
            source: source.to_string(),
            names: names.to_vec(),
            positions: positions.iter().map(|p| p + 1).collect(),
            cols,
            na_values: opts.na_values.clone(),
            max_categories: opts.max_categories,
            bytes: 0,
        })
    }

    fn is_na(&self, s: &str) -> bool {
        self.na_values.iter().any(|na| na == s)
    }

    /// Takes one row's feature cells (in feature order), read on `line`.
    pub fn observe<'a>(&mut self, cells: impl Iterator<Item = &'a str>, line: u64) -> Result<()> {
        for (j, s) in cells.enumerate() {
            if self.is_na(s) {
                continue;
            }
            let number = s.parse::<f32>().is_ok();
            let col = &mut self.cols[j];
            match col.forced {
                Some(Forced::Numeric) => {
                    if !number {
                        let (name, pos) = (&self.names[j], self.positions[j]);
                        return Err(ModelError::data(
                            format!("{}:{line}, column '{name}' ({pos})", self.source),
                            format!("'{s}' is not a number (the column is given as numeric)"),
                        ));
                    }
                    continue;
                }
                Some(Forced::Categorical) => {}
                None => {
                    if col.numeric && !number && col.seen {
                        // Numbers first, then text: those numbers are categories too.
                        col.rescan = true;
                    }
                    col.numeric &= number;
                    col.boolean &= parse_bool_cell(s).is_some();
                    col.seen = true;
                    if col.numeric || col.rescan {
                        continue;
                    }
                    col.distinct.get_or_insert_with(HashSet::new);
                }
            }
            self.add_category(j, s)?;
        }
        Ok(())
    }

    fn add_category(&mut self, j: usize, s: &str) -> Result<()> {
        let set = self.cols[j].distinct.as_mut().expect("collecting");
        if set.contains(s) {
            return Ok(());
        }
        if set.len() >= self.max_categories {
            return Err(ModelError::data(
                format!("{}, column '{}'", self.source, self.names[j]),
                format!(
                    "has more than {} distinct categories (an id or free text?); drop the \
                     column, declare it numeric with --numeric, or raise the cap with \
                     --max-categories",
                    self.max_categories
                ),
            ));
        }
        self.bytes += s.len() + 32;
        if self.bytes > MAX_CATEGORY_BYTES {
            return Err(ModelError::data(
                format!("{}, column '{}'", self.source, self.names[j]),
                format!(
                    "the categories of all text columns take more than {} MiB; drop \
                     high-cardinality text columns or declare them numeric",
                    MAX_CATEGORY_BYTES >> 20
                ),
            ));
        }
        set.insert(s.to_string());
        Ok(())
    }

    /// True when a column showed text after numbers: pass every row again through
    /// [`KindScan::observe_again`] before [`KindScan::finish`].
    pub fn needs_rescan(&self) -> bool {
        self.cols.iter().any(|c| c.rescan)
    }

    /// Takes one row's feature cells on the second reading: only the columns that need
    /// their numbers as categories look at them.
    pub fn observe_again<'a>(&mut self, cells: impl Iterator<Item = &'a str>) -> Result<()> {
        for (j, s) in cells.enumerate() {
            if !self.cols[j].rescan || self.is_na(s) {
                continue;
            }
            self.cols[j].distinct.get_or_insert_with(HashSet::new);
            self.add_category(j, s)?;
        }
        Ok(())
    }

    /// The kind of each feature column.
    pub fn finish(self) -> Vec<ColumnKind> {
        self.cols
            .into_iter()
            .map(|c| match (c.forced, c.distinct) {
                (Some(Forced::Numeric), _) => ColumnKind::Numeric,
                _ if c.forced.is_none() && (!c.seen || c.numeric) => ColumnKind::Numeric,
                _ if c.forced.is_none() && c.boolean => ColumnKind::Boolean,
                (_, distinct) => {
                    let labels: Vec<String> = distinct.unwrap_or_default().into_iter().collect();
                    ColumnKind::Categorical {
                        categories: Classes::from_labels(&labels),
                    }
                }
            })
            .collect()
    }
}

impl Forced {
    fn word(self) -> &'static str {
        match self {
            Forced::Numeric => "numeric",
            Forced::Categorical => "categorical",
        }
    }
}
