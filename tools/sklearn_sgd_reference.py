#!/usr/bin/env python3
"""scikit-learn reference ranges for meshml's SGD classifier and regressor.

Usage (from the repository root, with scikit-learn installed):

    python tools/sklearn_sgd_reference.py [OUTPUT_PATH]

OUTPUT_PATH defaults to ``models/tests/reference/sklearn_sgd.json``; the Rust test
``models/tests/it/sgd_parity.rs`` reads it. SGD shuffles with its own generator, so the
numbers to meet are ranges over seeds: for each setting, the test accuracy (R2 for a
regressor) and the epochs run over 20 seeds, on the mod-5 split of standardised digits
(classifier) or of the iris regression problem of ``tools/sklearn_more_reference.py``
(regressor). The scaler is fitted on the training rows.
"""

import json
import os
import sys

import numpy as np
import sklearn
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sklearn_reference import REPO_ROOT, encode_sorted, load_csv, mod5_split, to_py  # noqa: E402

DEFAULT_OUTPUT = os.path.join(REPO_ROOT, "models", "tests", "reference", "sklearn_sgd.json")
SEEDS = 20

CLASSIFIER_SETTINGS = [
    {"loss": "hinge"},
    {"loss": "log_loss"},
    {"loss": "modified_huber"},
    {"loss": "hinge", "penalty": "elasticnet", "alpha": 1e-3},
    {"loss": "log_loss", "penalty": "l1", "alpha": 1e-4},
    {"loss": "hinge", "average": True},
    {"loss": "log_loss", "learning_rate": "adaptive", "eta0": 0.1},
    {"loss": "modified_huber", "learning_rate": "invscaling", "eta0": 0.1},
]
REGRESSOR_SETTINGS = [
    {"loss": "squared_error"},
    {"loss": "huber", "epsilon": 0.5},
    {"loss": "squared_error", "penalty": "elasticnet", "alpha": 1e-2},
    {"loss": "squared_error", "average": True},
    {"loss": "squared_error", "learning_rate": "constant", "eta0": 0.001},
]


def ranges(make, X, y, train, test, score):
    scores, iters = [], []
    for seed in range(SEEDS):
        m = make(seed).fit(X[train], y[train])
        scores.append(float(score(m, X[test], y[test])))
        iters.append(int(m.n_iter_))
    return {
        "score_min": min(scores),
        "score_max": max(scores),
        "score_median": float(np.median(scores)),
        "n_iter_min": min(iters),
        "n_iter_max": max(iters),
    }


def main(argv):
    output = argv[1] if len(argv) > 1 else DEFAULT_OUTPUT
    _, Xd, labels = load_csv(os.path.join(REPO_ROOT, "data", "digits.csv"))
    yd, _ = encode_sorted(labels, numeric=True)
    _, Xi, _ = load_csv(os.path.join(REPO_ROOT, "data", "iris.csv"))
    Xr, yr = Xi[:, :3], Xi[:, 3]
    dtrain, dtest = mod5_split(len(yd))
    itrain, itest = mod5_split(len(yr))
    Xd = StandardScaler().fit(Xd[dtrain]).transform(Xd)
    Xr = StandardScaler().fit(Xr[itrain]).transform(Xr)
    ref = {"versions": {"sklearn": sklearn.__version__, "numpy": np.__version__}}
    ref["classifier_digits"] = [
        {
            "params": s,
            **ranges(
                lambda seed, s=s: SGDClassifier(random_state=seed, **s),
                Xd, yd, dtrain, dtest, lambda m, X, y: m.score(X, y),
            ),
        }
        for s in CLASSIFIER_SETTINGS
    ]
    ref["regressor_iris"] = [
        {
            "params": s,
            **ranges(
                lambda seed, s=s: SGDRegressor(random_state=seed, **s),
                Xr, yr, itrain, itest, lambda m, X, y: m.score(X, y),
            ),
        }
        for s in REGRESSOR_SETTINGS
    ]
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as fh:
        json.dump(to_py(ref), fh, indent=1)
        fh.write("\n")
    print(f"wrote {output} ({os.path.getsize(output)} bytes)")


if __name__ == "__main__":
    main(sys.argv)
