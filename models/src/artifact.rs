//! Model artifacts: a fitted model with everything needed to use and trace it, in a
//! versioned, checksummed MessagePack file (`.mlm`).
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `MESHMLM\0` |
//! | 4 | format version (u32) |
//! | 8 | payload length (u64) |
//! | 32 | BLAKE3 hash of the payload |
//! | n | payload: the [`ModelArtifact`] as MessagePack with field names |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::{Classes, Dataset};
use crate::error::{ModelError, Result};
use crate::estimator::{Estimator, FittedModel};
use crate::matrix::Matrix;
use crate::schema::ColumnKind;
use crate::traits::Classifier;

/// The artifact format this build writes and the newest it reads.
///
/// v2 stores decision trees column by column; a v1 artifact of any other model still
/// reads. v3 adds the kinds of the input columns (categories of text columns); a model of
/// numeric columns only is still written as v2, so older builds read it.
pub const ARTIFACT_FORMAT_VERSION: u32 = 3;

/// The version an artifact of numbers-only input is written with.
const NUMERIC_FORMAT_VERSION: u32 = 2;
const MAGIC: &[u8; 8] = b"MESHMLM\0";
const HEADER_LEN: usize = 8 + 4 + 8 + 32;

/// Where a model came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Provenance {
    /// Seconds since the Unix epoch when the model was fitted.
    pub created_at_unix: u64,
    /// The meshml version that fitted it.
    pub meshml_version: String,
    /// The training data (a file path or a dataset name).
    pub dataset: Option<String>,
    /// Rows used for fitting.
    pub n_samples: usize,
    /// The seed used for splits and randomised estimators.
    pub seed: Option<u64>,
    /// The job that produced it, when fitted on a mesh.
    pub job: Option<String>,
}

impl Provenance {
    /// Provenance stamped with the current time and this crate's version.
    pub fn now(dataset: Option<String>, n_samples: usize, seed: Option<u64>) -> Self {
        Self {
            created_at_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            meshml_version: env!("CARGO_PKG_VERSION").to_string(),
            dataset,
            n_samples,
            seed,
            job: None,
        }
    }
}

/// A fitted model and its metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelArtifact {
    /// The format version the artifact was written with.
    pub format_version: u32,
    /// Estimator kind and parameters.
    pub estimator: Estimator,
    /// Fitted state.
    pub model: FittedModel,
    /// Feature column names, in the order the model expects them.
    pub feature_names: Vec<String>,
    /// What each feature column holds (categories of text columns); empty when every
    /// column is numeric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feature_kinds: Vec<ColumnKind>,
    /// Name of the target column.
    pub target_name: String,
    /// Class labels, indexed by class id (none for a regressor).
    pub classes: Classes,
    /// Evaluation figures (e.g. `test_accuracy`).
    pub metrics: BTreeMap<String, f64>,
    /// Where it came from.
    pub provenance: Provenance,
}

impl ModelArtifact {
    /// Wraps a model fitted on `data`.
    pub fn new(
        estimator: Estimator,
        model: FittedModel,
        data: &Dataset,
        provenance: Provenance,
    ) -> Result<Self> {
        // A clusterer's classes are its clusters, whatever the data's target.
        let classes = if model.is_clusterer() {
            Classes::range(model.n_classes())
        } else {
            data.classes().cloned().unwrap_or_else(|| Classes::range(0))
        };
        // A multi-output model reads the columns that are not its targets.
        let feature_names = match &model {
            FittedModel::MultiOutput(m) => m.features.clone(),
            _ => data.feature_names().to_vec(),
        };
        let feature_kinds: Vec<ColumnKind> = feature_names
            .iter()
            .map(|n| {
                let j = data.feature_names().iter().position(|f| f == n);
                j.map_or(ColumnKind::Numeric, |j| data.kind(j).clone())
            })
            .collect();
        let numeric = feature_kinds.iter().all(|k| *k == ColumnKind::Numeric);
        Ok(Self {
            format_version: if numeric {
                NUMERIC_FORMAT_VERSION
            } else {
                ARTIFACT_FORMAT_VERSION
            },
            estimator,
            model,
            feature_names,
            feature_kinds: if numeric { Vec::new() } else { feature_kinds },
            target_name: data.target_name().to_string(),
            classes,
            metrics: BTreeMap::new(),
            provenance,
        })
    }

    /// The name of the predictions' column: the target's, or `cluster` for a clusterer
    /// (whose predictions are not the target).
    pub fn prediction_column(&self) -> &str {
        if self.model.is_clusterer() {
            "cluster"
        } else {
            &self.target_name
        }
    }

    /// What each feature column holds, in the order of [`ModelArtifact::feature_names`].
    pub fn feature_kinds(&self) -> Vec<ColumnKind> {
        if self.feature_kinds.is_empty() {
            vec![ColumnKind::Numeric; self.feature_names.len()]
        } else {
            self.feature_kinds.clone()
        }
    }

    /// The estimator's name.
    pub fn kind(&self) -> String {
        self.estimator.name()
    }

    /// Predicted class labels for the rows of `x`.
    pub fn predict_labels(&self, x: &Matrix) -> Result<Vec<String>> {
        Ok(self
            .model
            .predict(x)?
            .into_iter()
            .map(|c| self.classes.label(c).to_string())
            .collect())
    }

    /// Encodes the artifact.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let payload = rmp_serde::to_vec_named(self)?;
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.format_version.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(blake3::hash(&payload).as_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Decodes an artifact; `origin` names it in errors.
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Self> {
        let fail = |message: String| ModelError::Artifact {
            path: origin.to_path_buf(),
            message,
        };
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(fail("not a meshml model artifact (bad magic bytes)".into()));
        }
        if bytes.len() < HEADER_LEN {
            return Err(fail(format!(
                "truncated: {} bytes is shorter than the header",
                bytes.len()
            )));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version > ARTIFACT_FORMAT_VERSION {
            return Err(fail(format!(
                "written in artifact format v{version} by a newer meshml; this build reads up to v{ARTIFACT_FORMAT_VERSION}: upgrade meshml"
            )));
        }
        if version == 0 {
            return Err(fail("unsupported artifact format v0".into()));
        }
        let len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        let payload = &bytes[HEADER_LEN..];
        if payload.len() as u64 != len {
            return Err(fail(format!(
                "corrupt or truncated: header announces {len} payload bytes, found {}",
                payload.len()
            )));
        }
        if blake3::hash(payload).as_bytes() != &bytes[20..52] {
            return Err(fail("corrupt: checksum mismatch".into()));
        }
        let art: ModelArtifact = rmp_serde::from_slice(payload).map_err(|e| {
            if version < ARTIFACT_FORMAT_VERSION {
                fail(format!(
                    "written in artifact format v{version} by an older meshml, whose tree layout this build does not read ({e}): fit the model again"
                ))
            } else {
                fail(format!("corrupt: cannot decode the payload: {e}"))
            }
        })?;
        if art.format_version != version {
            return Err(fail(
                "corrupt: header and payload disagree on the format version".into(),
            ));
        }
        Ok(art)
    }

    /// Writes the artifact atomically (a temporary file renamed into place).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = self.to_bytes()?;
        let tmp: PathBuf = {
            let mut name = path
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_default();
            name.push(".tmp");
            path.with_file_name(name)
        };
        std::fs::write(&tmp, &bytes).map_err(|e| ModelError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e))
    }

    /// Reads an artifact from a file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traits::Fit;

    fn artifact() -> ModelArtifact {
        let data = crate::io::iris();
        let est = Estimator::from_name("gaussian_nb").unwrap();
        let model = est.fit(&data).unwrap();
        let mut a = ModelArtifact::new(
            est,
            model,
            &data,
            Provenance::now(Some("iris".into()), 150, None),
        )
        .unwrap();
        a.metrics.insert("train_accuracy".into(), 0.96);
        a
    }

    #[test]
    fn round_trip_through_a_file() {
        let a = artifact();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.mlm");
        a.save(&p).unwrap();
        let b = ModelArtifact::load(&p).unwrap();
        assert_eq!(a, b);
        assert_eq!(b.kind(), "gaussian_nb");
        let x = crate::io::iris().x().select_rows(&[0, 149]).unwrap();
        assert_eq!(b.predict_labels(&x).unwrap(), ["setosa", "virginica"]);
    }

    #[test]
    fn corrupt_newer_and_foreign_files_are_refused_clearly() {
        let bytes = artifact().to_bytes().unwrap();
        let p = Path::new("m.mlm");
        let msg = |b: &[u8]| ModelArtifact::from_bytes(b, p).unwrap_err().to_string();

        let mut flipped = bytes.clone();
        let last = flipped.len() - 10;
        flipped[last] ^= 0x40;
        assert_eq!(
            msg(&flipped),
            "model artifact m.mlm: corrupt: checksum mismatch"
        );

        let mut newer = bytes.clone();
        newer[8..12].copy_from_slice(&(ARTIFACT_FORMAT_VERSION + 1).to_le_bytes());
        assert!(msg(&newer).contains("newer meshml"), "{}", msg(&newer));

        assert!(msg(&bytes[..bytes.len() - 1]).contains("truncated"));
        assert!(msg(b"col1,col2\n1,2\n").contains("not a meshml model artifact"));
        assert!(msg(&bytes[..30]).contains("truncated"));
    }
}
