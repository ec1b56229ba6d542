#!/usr/bin/env python3
"""Compute scikit-learn reference numbers for the meshml Rust test-suite.

Usage (from the repository root):

    python tools/sklearn_reference.py [OUTPUT_PATH]

OUTPUT_PATH defaults to ``models/tests/reference/sklearn.json``.  The Rust
tests only read the generated JSON; Python is needed solely to regenerate it.

Conventions
-----------
* Data come from ``data/iris.csv`` and ``data/digits.csv`` and are loaded as
  float64.  Class labels are encoded in sorted order (sklearn's default), so
  iris species map to setosa=0, versicolor=1, virginica=2.
* "mod5 split": test rows are the 0-based data-row indices ``i`` with
  ``i % 5 == 0``; the train rows are all the others.  The index lists are
  stored in the JSON under ``splits``.
* Every float is written through ``json`` (i.e. ``float.__repr__``) so it
  round-trips exactly to an f64.

Everything here is deterministic: no shuffling, fixed ``random_state``.
"""

import csv
import json
import os
import sys
import warnings

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning, UndefinedMetricWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
)
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUTPUT = os.path.join(REPO_ROOT, "models", "tests", "reference", "sklearn.json")


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------
def load_csv(path):
    """Return (header, X float64 [n, d], raw label strings [n])."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    X = np.array([[float(v) for v in r[:-1]] for r in body], dtype=np.float64)
    labels = [r[-1] for r in body]
    return header, X, labels


def encode_sorted(labels, numeric=False):
    """Encode labels as 0..k-1 in sorted order of the unique values."""
    keys = [float(l) for l in labels] if numeric else list(labels)
    classes = sorted(set(keys))
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[k] for k in keys], dtype=np.int64), classes


def mod5_split(n):
    """Test = rows with i % 5 == 0, train = the rest (both sorted ascending)."""
    idx = np.arange(n)
    return idx[idx % 5 != 0], idx[idx % 5 == 0]


def to_py(x):
    """Convert numpy arrays/scalars to plain Python (lists, int, float, bool)."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, dict):
        return {k: to_py(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_py(v) for v in x]
    return x


def tight_lr(X, y, **params):
    """Same objective solved to machine precision with Newton's method.

    lbfgs (the default solver) also stops when the relative decrease of the
    loss falls below 64 * machine-epsilon, so even with tol=1e-10 its
    coefficients are only accurate to roughly 1e-5 (probabilities ~1e-6).
    The "*_tight" fields give the true optimum of the same problem
    (gradient ~1e-15) for tests that want a tighter tolerance."""
    params = {k: v for k, v in params.items() if k not in ("tol", "max_iter")}
    model = LogisticRegression(solver="newton-cholesky", tol=1e-14, max_iter=1000, **params)
    return model.fit(X, y)


def n_iter_scalar(model):
    """LogisticRegression.n_iter_ is an array of shape (1,) for lbfgs."""
    n = np.asarray(model.n_iter_).ravel()
    assert n.size == 1, n
    return int(n[0])


def fit_lr(X, y, **params):
    """Fit a LogisticRegression, recording whether it warned about convergence."""
    model = LogisticRegression(**params)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return model, converged


# --------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------
def logistic_regression_iris(X, y):
    out = {}
    strict = dict(tol=1e-10, max_iter=100000)

    # 1. multinomial, C=1.0 ; 2. multinomial, C=0.1
    for key, C in (("lr_iris_multinomial", 1.0), ("lr_iris_multinomial_c01", 0.1)):
        m, conv = fit_lr(X, y, C=C, **strict)
        t = tight_lr(X, y, C=C)
        out[key] = {
            "C": C,
            "coef": m.coef_,
            "intercept": m.intercept_,
            "proba": m.predict_proba(X),
            "n_iter": n_iter_scalar(m),
            "converged": conv,
            "coef_tight": t.coef_,
            "intercept_tight": t.intercept_,
            "proba_tight": t.predict_proba(X),
        }

    # 3. binary: versicolor (1) vs virginica (2), re-encoded as 0/1.
    rows = np.flatnonzero(y != 0)
    Xb, yb = X[rows], (y[rows] == 2).astype(np.int64)
    m, conv = fit_lr(Xb, yb, C=1.0, **strict)
    t = tight_lr(Xb, yb, C=1.0)
    out["lr_iris_binary"] = {
        "rows": rows,
        "coef": m.coef_,
        "intercept": m.intercept_,
        "proba": m.predict_proba(Xb),
        "n_iter": n_iter_scalar(m),
        "converged": conv,
        "coef_tight": t.coef_,
        "intercept_tight": t.intercept_,
        "proba_tight": t.predict_proba(Xb),
    }

    # 4. multinomial without intercept.
    m, conv = fit_lr(X, y, C=1.0, fit_intercept=False, **strict)
    t = tight_lr(X, y, C=1.0, fit_intercept=False)
    out["lr_iris_no_intercept"] = {
        "coef": m.coef_,
        "proba": m.predict_proba(X),
        "n_iter": n_iter_scalar(m),
        "converged": conv,
        "coef_tight": t.coef_,
        "proba_tight": t.predict_proba(X),
    }

    # 5. all defaults (C=1, tol=1e-4, max_iter=100).
    m, conv = fit_lr(X, y)
    pred = m.predict(X)
    out["lr_iris_default"] = {
        "predict": pred,
        "train_accuracy": accuracy_score(y, pred),
        "proba": m.predict_proba(X),
        "n_iter": n_iter_scalar(m),
        "converged": conv,
    }
    return out


def logistic_regression_digits(X, y, train, test):
    out = {}

    # 6. StandardScaler + LR(C=0.1) on all rows.
    pipe = Pipeline(
        [
            ("scaler", StandardScaler()),
            ("lr", LogisticRegression(C=0.1, tol=1e-10, max_iter=100000)),
        ]
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe.fit(X, y)
    conv = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    scaler, lr = pipe.named_steps["scaler"], pipe.named_steps["lr"]
    out["lr_digits_scaled"] = {
        "scaler_mean": scaler.mean_,
        "scaler_scale": scaler.scale_,
        "coef": lr.coef_,
        "intercept": lr.intercept_,
        "proba_first100": pipe.predict_proba(X[:100]),
        "train_accuracy": accuracy_score(y, pipe.predict(X)),
        "n_iter": n_iter_scalar(lr),
        "converged": conv,
    }
    Xs = scaler.transform(X)
    t = tight_lr(Xs, y, C=0.1)
    out["lr_digits_scaled"].update(
        {
            "coef_tight": t.coef_,
            "intercept_tight": t.intercept_,
            "proba_first100_tight": t.predict_proba(Xs[:100]),
        }
    )

    # 7. raw digits, default tol, mod5 split.
    m, conv = fit_lr(X[train], y[train], C=1.0, max_iter=1000)
    pred = m.predict(X[test])
    out["lr_digits_split"] = {
        "test_accuracy": accuracy_score(y[test], pred),
        "test_predict": pred,
        "n_iter": n_iter_scalar(m),
        "converged": conv,
    }
    return out


def gaussian_nb(Xi, yi, Xd, yd, train, test):
    out = {}

    # 8. iris, all rows.
    m = GaussianNB().fit(Xi, yi)
    out["gnb_iris"] = {
        "theta": m.theta_,
        "var": m.var_,
        "class_prior": m.class_prior_,
        "epsilon": float(m.epsilon_),
        "proba": m.predict_proba(Xi),
        "predict": m.predict(Xi),
    }

    # 9. digits, mod5 split.
    m = GaussianNB().fit(Xd[train], yd[train])
    proba = m.predict_proba(Xd[test])
    pred = m.predict(Xd[test])
    out["gnb_digits"] = {
        "test_proba": proba,
        "test_predict": pred,
        "test_accuracy": accuracy_score(yd[test], pred),
        "epsilon": float(m.epsilon_),
    }

    # 14. classification metrics on the GNB digits predictions.
    yt = yd[test]
    labels = np.arange(10)
    out["metrics_gnb_digits"] = {
        "accuracy": accuracy_score(yt, pred),
        "precision_macro": precision_score(yt, pred, average="macro"),
        "recall_macro": recall_score(yt, pred, average="macro"),
        "f1_macro": f1_score(yt, pred, average="macro"),
        "precision_weighted": precision_score(yt, pred, average="weighted"),
        "recall_weighted": recall_score(yt, pred, average="weighted"),
        "f1_weighted": f1_score(yt, pred, average="weighted"),
        "confusion_matrix": confusion_matrix(yt, pred, labels=labels),
        "log_loss": log_loss(yt, proba, labels=labels),
    }
    return out


def tree_grid(X, y, train, test, depths, leaf_sizes):
    """DecisionTreeClassifier grid on the mod5 split."""
    results = []
    for criterion in ("gini", "entropy"):
        for min_samples_leaf in leaf_sizes:
            for depth in depths:
                m = DecisionTreeClassifier(
                    criterion=criterion,
                    max_depth=depth,
                    min_samples_leaf=min_samples_leaf,
                    random_state=0,
                ).fit(X[train], y[train])
                results.append(
                    {
                        "criterion": criterion,
                        "max_depth": depth,
                        "min_samples_leaf": min_samples_leaf,
                        "test_accuracy": accuracy_score(y[test], m.predict(X[test])),
                        "train_accuracy": accuracy_score(y[train], m.predict(X[train])),
                        "depth": int(m.get_depth()),
                        "n_leaves": int(m.get_n_leaves()),
                    }
                )
    return results


def fold_test_indices(splitter, n, y=None):
    X_dummy = np.zeros((n, 1))
    return [test for _, test in splitter.split(X_dummy, y)]


def scaler_iris(X):
    s = StandardScaler().fit(X)
    return {"mean": s.mean_, "scale": s.scale_, "transformed_first5": s.transform(X[:5])}


def metrics_edge():
    """Class 1 is never predicted -> precision is ill-defined for it.

    sklearn's default zero_division="warn" scores it as 0.0 (and warns)."""
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 0, 0, 0, 2]
    out = {"y_true": y_true, "y_pred": y_pred}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for avg in ("macro", "weighted"):
            out[f"precision_{avg}"] = precision_score(y_true, y_pred, average=avg)
            out[f"recall_{avg}"] = recall_score(y_true, y_pred, average=avg)
            out[f"f1_{avg}"] = f1_score(y_true, y_pred, average=avg)
        out["precision_per_class"] = precision_score(y_true, y_pred, average=None)
        out["recall_per_class"] = recall_score(y_true, y_pred, average=None)
        out["f1_per_class"] = f1_score(y_true, y_pred, average=None)
    return out


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------
def main(argv):
    output = argv[1] if len(argv) > 1 else DEFAULT_OUTPUT

    _, Xi, iris_labels = load_csv(os.path.join(REPO_ROOT, "data", "iris.csv"))
    yi, iris_classes = encode_sorted(iris_labels)
    _, Xd, digit_labels = load_csv(os.path.join(REPO_ROOT, "data", "digits.csv"))
    yd, _ = encode_sorted(digit_labels, numeric=True)
    assert Xi.shape == (150, 4) and Xd.shape == (1797, 64)
    assert iris_classes == ["setosa", "versicolor", "virginica"]

    iris_train, iris_test = mod5_split(len(yi))
    digits_train, digits_test = mod5_split(len(yd))

    ref = {
        "versions": {
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        },
        "iris_classes": iris_classes,
        "splits": {
            "iris_train": iris_train,
            "iris_test": iris_test,
            "digits_train": digits_train,
            "digits_test": digits_test,
        },
    }
    ref.update(logistic_regression_iris(Xi, yi))
    ref.update(logistic_regression_digits(Xd, yd, digits_train, digits_test))
    ref.update(gaussian_nb(Xi, yi, Xd, yd, digits_train, digits_test))
    ref["tree_iris"] = tree_grid(Xi, yi, iris_train, iris_test, [1, 2, 3, 4, None], [1])
    ref["tree_digits"] = tree_grid(Xd, yd, digits_train, digits_test, [2, 4, 6, 8, None], [1, 5])
    ref["kfold_150_5"] = fold_test_indices(KFold(5), 150)
    ref["stratified_kfold_iris_5"] = fold_test_indices(StratifiedKFold(5), len(yi), yi)
    ref["stratified_kfold_digits_3"] = fold_test_indices(StratifiedKFold(3), len(yd), yd)
    ref["scaler_iris"] = scaler_iris(Xi)
    ref["metrics_edge"] = metrics_edge()

    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as fh:
        json.dump(to_py(ref), fh, indent=1)
        fh.write("\n")
    print(f"wrote {output} ({os.path.getsize(output)} bytes)")


if __name__ == "__main__":
    main(sys.argv)
