#!/usr/bin/env python3
"""scikit-learn reference numbers for meshml's histogram binning (issue 18).

Usage (from the repository root, with scikit-learn installed):

    python tools/sklearn_binning_reference.py [OUTPUT_PATH]

OUTPUT_PATH defaults to ``models/tests/reference/sklearn_binning.json``; the Rust test
``models/tests/it/binning_parity.rs`` reads it. Each case is a column of float32 values
(as meshml stores them), scikit-learn's ``_BinMapper`` fitted on it without subsampling
(meshml samples rows its own way above 200,000 rows), its thresholds and the bins of the
column. Conventions follow ``tools/sklearn_reference.py``.
"""

import json
import os
import sys

import numpy as np
import sklearn
from sklearn.ensemble._hist_gradient_boosting.binning import _BinMapper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sklearn_reference import REPO_ROOT, load_csv, to_py  # noqa: E402

DEFAULT_OUTPUT = os.path.join(REPO_ROOT, "models", "tests", "reference", "sklearn_binning.json")


def case(name, column, n_bins):
    col = np.asarray(column, dtype=np.float32).astype(np.float64)
    m = _BinMapper(n_bins=n_bins, subsample=None).fit(col.reshape(-1, 1))
    binned = m.transform(col.reshape(-1, 1))[:, 0]
    return {
        "name": name,
        "max_bins": n_bins - 1,
        "values": [None if np.isnan(v) else float(v) for v in col],
        "thresholds": [float(t) for t in m.bin_thresholds_[0]],
        "n_bins_non_missing": int(m.n_bins_non_missing_[0]),
        "bins": [int(b) for b in binned],
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUTPUT
    rng = np.random.default_rng(7)
    _, digits_x, _ = load_csv(os.path.join(REPO_ROOT, "data", "digits.csv"))
    _, iris_x, _ = load_csv(os.path.join(REPO_ROOT, "data", "iris.csv"))
    normal = rng.normal(size=3000)
    with_nan = rng.exponential(size=2000)
    with_nan[rng.random(2000) < 0.1] = np.nan
    ties = np.round(rng.normal(size=5000) * 3) / 2  # a few dozen distinct values, many ties
    cases = [
        case("iris_petal_length_255", iris_x[:, 2], 256),
        case("iris_sepal_width_8", iris_x[:, 1], 9),
        case("digits_pixel_20_255", digits_x[:, 20], 256),
        case("normal_3000_255", normal, 256),
        case("normal_3000_16", normal, 17),
        case("exponential_missing_2000_63", with_nan, 64),
        case("ties_5000_10", ties, 11),
        case("constant", np.full(50, 2.5), 256),
    ]
    doc = {"sklearn_version": sklearn.__version__, "cases": cases}
    with open(out, "w") as f:
        json.dump(to_py(doc), f)
    print(f"wrote {out} ({len(cases)} cases, scikit-learn {sklearn.__version__})")


if __name__ == "__main__":
    main()
