#!/usr/bin/env python3
"""scikit-learn reference numbers for meshml's meta-estimators (plans).

Usage (from the repository root, with scikit-learn installed):

    python tools/sklearn_meta_reference.py [OUTPUT_PATH]

OUTPUT_PATH defaults to ``models/tests/reference/sklearn_meta.json``; the Rust
test ``models/tests/it/meta_parity.rs`` reads it. Conventions follow
``tools/sklearn_reference.py``: data from ``data/``, labels encoded in sorted
order, the "mod5 split" (test rows are those with index % 5 == 0), and
logistic regression solved to machine precision (newton-cholesky) so that the
comparison does not depend on where an iterative solver stops.
"""

import json
import os
import sys

import numpy as np
import sklearn
from sklearn.ensemble import BaggingClassifier, RandomForestClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.multiclass import OneVsOneClassifier, OneVsRestClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sklearn_reference import REPO_ROOT, encode_sorted, load_csv, mod5_split, to_py  # noqa: E402

DEFAULT_OUTPUT = os.path.join(REPO_ROOT, "models", "tests", "reference", "sklearn_meta.json")


def tight_lr(**params):
    return LogisticRegression(solver="newton-cholesky", tol=1e-14, max_iter=1000, **params)


def grid(estimator, X, y, grid, cv):
    gs = GridSearchCV(estimator, grid, cv=cv).fit(X, y)
    r = gs.cv_results_
    return {
        "params": [{k: str(v) for k, v in p.items()} for p in r["params"]],
        "mean_test_score": r["mean_test_score"],
        "std_test_score": r["std_test_score"],
        "rank_test_score": r["rank_test_score"],
        "split_test_scores": [
            [r[f"split{i}_test_score"][c] for i in range(cv)] for c in range(len(r["params"]))
        ],
        "best_index": gs.best_index_,
        "train_accuracy_refit": gs.score(X, y),
    }


def main(argv):
    out_path = argv[1] if len(argv) > 1 else DEFAULT_OUTPUT
    _, Xi, iris_labels = load_csv(os.path.join(REPO_ROOT, "data", "iris.csv"))
    yi, _ = encode_sorted(iris_labels)
    _, Xd, digit_labels = load_csv(os.path.join(REPO_ROOT, "data", "digits.csv"))
    yd, _ = encode_sorted(digit_labels, numeric=True)
    train, test = mod5_split(len(yd))
    ref = {"versions": {"sklearn": sklearn.__version__, "numpy": np.__version__}}

    # GridSearchCV over C, stratified 5-fold, accuracy.
    ref["grid_iris"] = grid(tight_lr(), Xi, yi, {"C": [0.01, 0.1, 1.0, 10.0]}, 5)
    scaled = Pipeline([("standard_scaler", StandardScaler()), ("logistic_regression", tight_lr())])
    ref["grid_digits_scaled"] = grid(
        scaled, Xd, yd, {"logistic_regression__C": [0.01, 0.1, 1.0]}, 3
    )

    # Several estimators with their own grids in one search (a list of grids over a
    # one-step pipeline whose estimator is swapped).
    multi = GridSearchCV(
        Pipeline([("clf", tight_lr())]),
        [
            {"clf": [tight_lr()], "clf__C": [0.1, 1.0]},
            {"clf": [GaussianNB()], "clf__var_smoothing": [1e-9, 1e-5]},
        ],
        cv=5,
    ).fit(Xi, yi)
    r = multi.cv_results_
    ref["multi_iris"] = {
        "mean_test_score": r["mean_test_score"],
        "rank_test_score": r["rank_test_score"],
        "best_index": multi.best_index_,
    }

    # One-vs-rest logistic regression on iris: probabilities on every row.
    ovr = OneVsRestClassifier(tight_lr()).fit(Xi, yi)
    ref["ovr_iris"] = {"proba": ovr.predict_proba(Xi), "train_accuracy": ovr.score(Xi, yi)}

    # One-vs-one logistic regression: predictions on every row.
    ovo = OneVsOneClassifier(tight_lr()).fit(Xi, yi)
    ref["ovo_iris"] = {"predict": ovo.predict(Xi)}
    ovo = OneVsOneClassifier(
        Pipeline([("standard_scaler", StandardScaler()), ("logistic_regression", tight_lr())])
    ).fit(Xd, yd)
    ref["ovo_digits"] = {"predict": ovo.predict(Xd)}

    # Soft voting of logistic regression and Gaussian NB on iris.
    vote = VotingClassifier([("lr", tight_lr()), ("gnb", GaussianNB())], voting="soft").fit(Xi, yi)
    ref["voting_soft_iris"] = {"proba": vote.predict_proba(Xi)}

    # Forest and bagging on the digits mod5 split (their random draws differ from
    # meshml's, so the tests compare accuracy, over several seeds here).
    rf = [
        RandomForestClassifier(n_estimators=100, random_state=s).fit(Xd[train], yd[train]).score(Xd[test], yd[test])
        for s in range(5)
    ]
    ref["forest_digits"] = {"test_accuracy": rf}
    bag = [
        BaggingClassifier(DecisionTreeClassifier(), n_estimators=20, random_state=s)
        .fit(Xd[train], yd[train])
        .score(Xd[test], yd[test])
        for s in range(5)
    ]
    ref["bagging_digits"] = {"test_accuracy": bag}

    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as fh:
        json.dump(to_py(ref), fh, indent=1)
        fh.write("\n")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main(sys.argv)
