//! Cross-validation results of a search, as scikit-learn's `cv_results_`.

use serde::{Deserialize, Serialize};

/// Cross-validation results of a search, as scikit-learn's `cv_results_`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CvResults {
    /// Each candidate's parameters.
    pub params: Vec<Vec<(String, String)>>,
    /// Score of each candidate on each fold.
    pub split_scores: Vec<Vec<f64>>,
    /// Mean over folds.
    pub mean_test_score: Vec<f64>,
    /// Population standard deviation over folds.
    pub std_test_score: Vec<f64>,
    /// Rank (1 is best; ties share the lowest rank).
    pub rank_test_score: Vec<u32>,
    /// The best candidate (the first of those ranked 1).
    pub best_index: usize,
    /// Warnings each candidate's fits raised over its folds (a solver that stopped at
    /// `max_iter`), each once with a count; empty for a clean candidate.
    #[serde(default)]
    pub warnings: Vec<Vec<String>>,
}

impl CvResults {
    pub(crate) fn from_scores(
        params: Vec<Vec<(String, String)>>,
        split_scores: Vec<Vec<f64>>,
    ) -> Self {
        let mean: Vec<f64> = split_scores
            .iter()
            .map(|s| s.iter().sum::<f64>() / s.len() as f64)
            .collect();
        let std = split_scores
            .iter()
            .zip(&mean)
            .map(|(s, m)| {
                (s.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / s.len() as f64).sqrt()
            })
            .collect();
        let rank: Vec<u32> = mean
            .iter()
            .map(|m| 1 + mean.iter().filter(|o| *o > m).count() as u32)
            .collect();
        let best_index = rank.iter().position(|&r| r == 1).unwrap_or(0);
        Self {
            params,
            split_scores,
            mean_test_score: mean,
            std_test_score: std,
            rank_test_score: rank,
            best_index,
            warnings: Vec::new(),
        }
    }

    /// The best candidate's parameters.
    pub fn best_params(&self) -> &[(String, String)] {
        &self.params[self.best_index]
    }

    /// The best mean score.
    pub fn best_score(&self) -> f64 {
        self.mean_test_score[self.best_index]
    }

    /// A text table: rank, mean, std and parameters of every candidate, best first.
    pub fn table(&self) -> String {
        let mut order: Vec<usize> = (0..self.params.len()).collect();
        order.sort_by_key(|&i| (self.rank_test_score[i], i));
        let mut out = format!(
            "{:>4}  {:>10}  {:>8}  params\n",
            "rank", "mean score", "std"
        );
        let mut notes = Vec::new();
        for i in order {
            let p = self.params[i]
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            let warned = self.warnings.get(i).filter(|w| !w.is_empty());
            let mark = if let Some(w) = warned {
                notes.push(format!("[{}] {p}: {}\n", notes.len() + 1, w.join("; ")));
                format!("  [{}]", notes.len())
            } else {
                String::new()
            };
            out.push_str(&format!(
                "{:>4}  {:>10.4}  {:>8.4}  {p}{mark}\n",
                self.rank_test_score[i], self.mean_test_score[i], self.std_test_score[i]
            ));
        }
        if !notes.is_empty() {
            out.push_str("warnings:\n");
            for n in notes {
                out.push_str(&n);
            }
        }
        out
    }
}
