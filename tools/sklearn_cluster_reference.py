#!/usr/bin/env python3
"""scikit-learn reference numbers for meshml's PCA and k-means.

Usage (from the repository root, with scikit-learn installed):

    python tools/sklearn_cluster_reference.py [OUTPUT_PATH]

OUTPUT_PATH defaults to ``models/tests/reference/sklearn_cluster.json``; the Rust test
``models/tests/it/cluster_parity.rs`` reads it. Conventions follow
``tools/sklearn_reference.py``. PCA runs scikit-learn's ``covariance_eigh`` solver
(what meshml computes) and, as a cross-check, the full SVD. k-means starts from given
centres (rows of the data) so that Lloyd's iterations can be compared step for step;
k-means++ is compared by the inertia range over seeds.
"""

import json
import os
import sys

import numpy as np
import sklearn
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sklearn_reference import REPO_ROOT, load_csv, to_py  # noqa: E402

DEFAULT_OUTPUT = os.path.join(REPO_ROOT, "models", "tests", "reference", "sklearn_cluster.json")


def pca(X, **params):
    out = {}
    for solver in ["covariance_eigh", "full"]:
        p = PCA(svd_solver=solver, **params).fit(X)
        out[solver] = {
            "n_components": int(p.n_components_),
            "components": p.components_,
            "explained_variance": p.explained_variance_,
            "explained_variance_ratio": p.explained_variance_ratio_,
            "noise_variance": float(p.noise_variance_),
            "transform_head": p.transform(X[:5]),
        }
    return out


def kmeans_from(X, rows):
    init = X[rows]
    m = KMeans(n_clusters=len(rows), init=init, n_init=1, max_iter=300, tol=1e-4).fit(X)
    return {
        "init_rows": rows,
        "centers": m.cluster_centers_,
        "inertia": float(m.inertia_),
        "n_iter": int(m.n_iter_),
        "labels": m.labels_,
        "transform_head": m.transform(X[:5]),
    }


def kmeans_pp_range(X, k, seeds=20):
    inertias = [
        float(KMeans(n_clusters=k, init="k-means++", n_init=1, random_state=s).fit(X).inertia_)
        for s in range(seeds)
    ]
    return {"k": k, "min": min(inertias), "max": max(inertias), "median": float(np.median(inertias))}


def main(argv):
    output = argv[1] if len(argv) > 1 else DEFAULT_OUTPUT
    _, Xi, _ = load_csv(os.path.join(REPO_ROOT, "data", "iris.csv"))
    _, Xd, _ = load_csv(os.path.join(REPO_ROOT, "data", "digits.csv"))
    assert Xi.shape == (150, 4) and Xd.shape == (1797, 64)
    ref = {
        "versions": {"sklearn": sklearn.__version__, "numpy": np.__version__},
        "pca_iris": pca(Xi),
        "pca_iris_2_whiten": pca(Xi, n_components=2, whiten=True),
        "pca_iris_095": pca(Xi, n_components=0.95),
        "pca_digits_10": pca(Xd, n_components=10),
        "kmeans_iris": kmeans_from(Xi, [0, 50, 100]),
        "kmeans_digits": kmeans_from(Xd, list(range(0, 1000, 100))),
        "kmeans_pp_iris_3": kmeans_pp_range(Xi, 3),
        "kmeans_pp_digits_10": kmeans_pp_range(Xd, 10),
    }
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as fh:
        json.dump(to_py(ref), fh, indent=1)
        fh.write("\n")
    print(f"wrote {output} ({os.path.getsize(output)} bytes)")


if __name__ == "__main__":
    main(sys.argv)
