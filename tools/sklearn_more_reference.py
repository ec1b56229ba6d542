#!/usr/bin/env python3
"""scikit-learn reference numbers for meshml's regressors, L1 logistic regression,
model-based feature selection, stacking and multi-output models.

Usage (from the repository root, with scikit-learn installed):

    python tools/sklearn_more_reference.py [OUTPUT_PATH]

OUTPUT_PATH defaults to ``models/tests/reference/sklearn_more.json``; the Rust test
``models/tests/it/more_parity.rs`` reads it. Conventions follow
``tools/sklearn_reference.py``. The regression problems come from iris: the
three first measurements predict the petal width (``iris_reg``), or the sepal
measurements predict both petal measurements (multi-output). Iterative solvers
run to tight tolerances so that the comparison does not depend on where they stop.
"""

import json
import os
import sys

import numpy as np
import sklearn
from sklearn.ensemble import RandomForestRegressor, StackingClassifier
from sklearn.feature_selection import SelectFromModel
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.multioutput import MultiOutputRegressor
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sklearn_reference import REPO_ROOT, encode_sorted, load_csv, mod5_split, to_py  # noqa: E402

DEFAULT_OUTPUT = os.path.join(REPO_ROOT, "models", "tests", "reference", "sklearn_more.json")


def tight_lr(**params):
    return LogisticRegression(solver="newton-cholesky", tol=1e-14, max_iter=1000, **params)


def l1_lr(C):
    return LogisticRegression(l1_ratio=1.0, solver="saga", C=C, tol=1e-12, max_iter=200000)


def main(argv):
    out_path = argv[1] if len(argv) > 1 else DEFAULT_OUTPUT
    _, Xi, iris_labels = load_csv(os.path.join(REPO_ROOT, "data", "iris.csv"))
    yi, _ = encode_sorted(iris_labels)
    _, Xd, digit_labels = load_csv(os.path.join(REPO_ROOT, "data", "digits.csv"))
    yd, _ = encode_sorted(digit_labels, numeric=True)
    train, test = mod5_split(len(yd))
    ref = {"versions": {"sklearn": sklearn.__version__, "numpy": np.__version__}}
    Xs = StandardScaler().fit_transform(Xi)

    # L1 logistic regression on standardised iris (multinomial, saga's objective).
    ref["l1_iris"] = []
    for C in [0.05, 0.3, 2.0]:
        m = l1_lr(C).fit(Xs, yi)
        ref["l1_iris"].append({"C": C, "coef": m.coef_, "intercept": m.intercept_})
    # Binary: versicolor against virginica.
    mask = yi > 0
    m = l1_lr(0.1).fit(Xs[mask], yi[mask])
    ref["l1_binary"] = {"C": 0.1, "coef": m.coef_, "intercept": m.intercept_}

    # A pipeline with model-based feature selection inside a grid search.
    pipe = Pipeline(
        [
            ("standard_scaler", StandardScaler()),
            ("select_from_model", SelectFromModel(l1_lr(1.0))),
            ("logistic_regression", tight_lr()),
        ]
    )
    gs = GridSearchCV(
        pipe, {"select_from_model__estimator__C": [0.02, 0.1, 1.0]}, cv=5
    ).fit(Xi, yi)
    r = gs.cv_results_
    ref["select_grid_iris"] = {
        "C": [0.02, 0.1, 1.0],
        "split_test_scores": [[r[f"split{i}_test_score"][c] for i in range(5)] for c in range(3)],
        "mean_test_score": r["mean_test_score"],
        "best_index": gs.best_index_,
        "support": [
            int(n)
            for n in [
                Pipeline(pipe.steps[:2]).set_params(select_from_model__estimator__C=C).fit(Xi, yi)[1].get_support().sum()
                for C in [0.02, 0.1, 1.0]
            ]
        ],
    }

    # Regression on iris: sepal length, sepal width, petal length -> petal width.
    Xr, yr = Xi[:, :3], Xi[:, 3]
    ols = LinearRegression().fit(Xr, yr)
    ridge = Ridge(alpha=3.0).fit(Xr, yr)
    ref["linear_iris"] = {
        "ols_coef": ols.coef_,
        "ols_intercept": ols.intercept_,
        "ridge_coef": ridge.coef_,
        "ridge_intercept": ridge.intercept_,
        "ols_r2": ols.score(Xr, yr),
    }
    # Digits as regression on the digit value: constant pixel columns make the normal
    # equations singular; scikit-learn returns the minimum-norm least-squares solution.
    dig = LinearRegression().fit(Xd[train], yd[train].astype(float))
    ref["linear_digits"] = {
        "predict_test": dig.predict(Xd[test]),
        "r2_test": dig.score(Xd[test], yd[test].astype(float)),
    }
    ref["tree_reg_iris"] = []
    for depth in [1, 2, 3, 5, None]:
        t = DecisionTreeRegressor(max_depth=depth, random_state=0).fit(Xr, yr)
        ref["tree_reg_iris"].append(
            {"max_depth": depth, "predict": t.predict(Xr), "n_leaves": t.get_n_leaves()}
        )
    yd_f = yd.astype(float)
    ref["forest_reg_digits"] = {
        "test_r2": [
            RandomForestRegressor(n_estimators=30, random_state=s)
            .fit(Xd[train], yd_f[train])
            .score(Xd[test], yd_f[test])
            for s in range(5)
        ]
    }

    # Multi-output ridge: sepal measurements -> petal length and petal width.
    mo = MultiOutputRegressor(Ridge(alpha=1.0)).fit(Xi[:, :2], Xi[:, 2:])
    ref["multi_output_ridge"] = {
        "coef": [e.coef_ for e in mo.estimators_],
        "intercept": [e.intercept_ for e in mo.estimators_],
        "r2": mo.score(Xi[:, :2], Xi[:, 2:]),
    }

    # Stacking: logistic regression and Gaussian NB, a logistic regression on top.
    st = StackingClassifier(
        [("lr", tight_lr()), ("gnb", GaussianNB())], final_estimator=tight_lr(), cv=5
    ).fit(Xi, yi)
    ref["stacking_iris"] = {"proba": st.predict_proba(Xi)}
    mask = yi > 0
    st2 = StackingClassifier(
        [("lr", tight_lr()), ("gnb", GaussianNB())], final_estimator=tight_lr(), cv=5
    ).fit(Xi[mask], yi[mask])
    ref["stacking_binary"] = {"proba": st2.predict_proba(Xi[mask])}

    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as fh:
        json.dump(to_py(ref), fh, indent=1)
        fh.write("\n")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main(sys.argv)
