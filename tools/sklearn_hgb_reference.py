#!/usr/bin/env python3
"""scikit-learn reference numbers for meshml's gradient boosting (issue 18).

Usage (from the repository root, with scikit-learn 1.9 and pandas installed):

    python tools/sklearn_hgb_reference.py [OUTPUT_PATH]

OUTPUT_PATH defaults to ``models/tests/reference/sklearn_hgb.json``; the Rust test
``models/tests/it/hgb_parity.rs`` reads it. It also writes ``data/breast_cancer.csv.gz``
(scikit-learn's bundled copy of the UCI Wisconsin diagnostic table, target last).

What is recorded
----------------
* ``closed``: small generated cases (their data is in the JSON, float32 values) fitted
  without early stopping, so the binning and every split are deterministic: the raw
  predictions (``_raw_predict``) of every training row, which the leaf values make up.
  Single trees (``max_iter=1``) and a few iterations; squared, absolute, quantile and
  Poisson losses, binary and 3-class log loss, missing cells, a categorical column,
  ``l2_regularization``, ``max_depth``, ``monotonic_cst``.
* ``digits``: HistGradientBoostingClassifier(random_state=0) on digits (1,797 rows: early
  stopping is off by default), train = rows with i % 5 != 0: test accuracy and
  predictions.
* ``breast_cancer``: the same on breast_cancer.
* ``nassCDS`` / ``diamonds``: the tables' bench split (``sklearn_tables.json``'s test
  rows), text columns as pandas categories (native categorical splits, "from_dtype"),
  missing cells as NaN, random_state=0, default early stopping (on: both have more than
  10,000 rows): accuracy of ``dead`` / R² of ``price``.
"""

import gzip
import json
import os
import sys

import numpy as np
import pandas as pd
import sklearn
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sklearn_reference import REPO_ROOT, encode_sorted, load_csv, mod5_split  # noqa: E402

DEFAULT_OUTPUT = os.path.join(REPO_ROOT, "models", "tests", "reference", "sklearn_hgb.json")


def closed_data():
    rng = np.random.RandomState(0)
    n = 300
    x0 = rng.uniform(-2, 2, n)
    x1 = rng.normal(0, 1, n)
    x1[rng.rand(n) < 0.15] = np.nan
    x2 = rng.randint(0, 6, n).astype(float)
    X = np.column_stack([x0, x1, x2]).astype(np.float32).astype(np.float64)
    eff = np.array([0.0, 1.5, -1.0, 0.5, 2.0, -0.5])
    signal = np.sin(2 * X[:, 0]) + np.where(np.isnan(X[:, 1]), 1.0, X[:, 1]) + eff[x2.astype(int)]
    y_reg = (signal + rng.normal(0, 0.3, n)).astype(np.float32).astype(np.float64)
    y_bin = (signal + rng.normal(0, 0.5, n) > 0.5).astype(int)
    y_3 = np.digitize(signal + rng.normal(0, 0.5, n), [0.0, 1.5])
    y_count = rng.poisson(np.exp(0.5 * signal)).astype(float)
    return X, {"reg": y_reg, "bin": y_bin, "three": y_3, "count": y_count}


CASES = [
    # name, target, classifier?, parameters
    ("squared_one_tree", "reg", False, dict(max_iter=1, max_leaf_nodes=8, min_samples_leaf=10)),
    ("squared_l2_depth2", "reg", False,
     dict(max_iter=1, max_depth=2, l2_regularization=1.0, min_samples_leaf=5)),
    ("squared_five", "reg", False, dict(max_iter=5, learning_rate=0.3, min_samples_leaf=8)),
    ("squared_categorical", "reg", False,
     dict(max_iter=3, categorical_features=[2], min_samples_leaf=10)),
    ("squared_monotonic", "reg", False,
     dict(max_iter=5, monotonic_cst=[1, 0, 0], min_samples_leaf=10)),
    ("absolute_three", "reg", False, dict(loss="absolute_error", max_iter=3, min_samples_leaf=10)),
    ("quantile_three", "reg", False,
     dict(loss="quantile", quantile=0.8, max_iter=3, min_samples_leaf=10)),
    ("poisson_three", "count", False, dict(loss="poisson", max_iter=3, min_samples_leaf=10)),
    ("binary_one_tree", "bin", True, dict(max_iter=1, max_leaf_nodes=6, min_samples_leaf=10)),
    ("binary_five_categorical", "bin", True,
     dict(max_iter=5, categorical_features=[2], min_samples_leaf=10)),
    ("three_classes_two", "three", True, dict(max_iter=2, min_samples_leaf=10)),
]


def closed():
    X, ys = closed_data()
    out = {
        "x": [[None if np.isnan(v) else float(v) for v in row] for row in X],
        "targets": {k: [float(v) for v in y] for k, y in ys.items()},
        "cases": [],
    }
    for name, target, classify, params in CASES:
        cls = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        m = cls(early_stopping=False, random_state=0, **params).fit(X, ys[target])
        raw = m._raw_predict(X)
        out["cases"].append({
            "name": name,
            "target": target,
            "classifier": classify,
            "params": {k: v for k, v in params.items()},
            "raw": [[float(v) for v in row] for row in raw],
            "n_leaves": [int(p.get_n_leaf_nodes()) for it in m._predictors for p in it],
        })
    return out


def full_fit(X, y, Xte, yte):
    m = HistGradientBoostingClassifier(random_state=0).fit(X, y)
    pred = m.predict(Xte)
    return {
        "n_iter": int(m.n_iter_),
        "accuracy": float((pred == yte).mean()),
        "predictions": [int(v) for v in pred],
    }


def digits():
    _, X, labels = load_csv(os.path.join(REPO_ROOT, "data", "digits.csv"))
    y, _ = encode_sorted(labels, numeric=True)
    tr, te = mod5_split(len(y))
    return full_fit(X[tr], y[tr], X[te], y[te])


def breast_cancer():
    b = load_breast_cancer()
    X = b.data.astype(np.float32)
    path = os.path.join(REPO_ROOT, "data", "breast_cancer.csv.gz")
    cols = [c.replace(" ", "_") for c in b.feature_names] + ["diagnosis"]
    names = {0: "malignant", 1: "benign"}
    with gzip.open(path, "wt", newline="") as fh:
        fh.write(",".join(cols) + "\n")
        for row, t in zip(X, b.target):
            fh.write(",".join(str(v) for v in row) + "," + names[int(t)] + "\n")
    X = X.astype(np.float64)
    # meshml sorts the labels: benign = 0, malignant = 1
    y = np.array([0 if names[int(t)] == "benign" else 1 for t in b.target])
    tr, te = mod5_split(len(y))
    rec = full_fit(X[tr], y[tr], X[te], y[te])
    rec["classes"] = ["benign", "malignant"]
    return rec


def table(name, target, tables_ref):
    df = pd.read_csv(os.path.join(REPO_ROOT, "data", "tables", name + ".csv.gz"))
    y = df[target]
    X = df.drop(columns=[target])
    for c in X.columns:
        if X[c].dtype == object:
            X[c] = X[c].astype("category")
    test = np.array(tables_ref[name]["pipeline"]["test_rows"])
    train = np.setdiff1d(np.arange(len(df)), test)
    if y.dtype == object:
        m = HistGradientBoostingClassifier(random_state=0).fit(X.iloc[train], y.iloc[train])
        score = float((m.predict(X.iloc[test]) == y.iloc[test]).mean())
        key = "accuracy"
    else:
        m = HistGradientBoostingRegressor(random_state=0).fit(X.iloc[train], y.iloc[train])
        score = float(m.score(X.iloc[test], y.iloc[test]))
        key = "r2"
    return {key: score, "n_iter": int(m.n_iter_), "target": target}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUTPUT
    with open(os.path.join(REPO_ROOT, "models", "tests", "reference", "sklearn_tables.json")) as fh:
        tables_ref = json.load(fh)
    ref = {
        "versions": {"sklearn": sklearn.__version__, "numpy": np.__version__,
                     "pandas": pd.__version__},
        "closed": closed(),
        "digits": digits(),
        "breast_cancer": breast_cancer(),
        "nassCDS": table("nassCDS", "dead", tables_ref),
        "diamonds": table("diamonds", "price", tables_ref),
    }
    with open(out, "w") as fh:
        json.dump(ref, fh, separators=(",", ":"))
        fh.write("\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
