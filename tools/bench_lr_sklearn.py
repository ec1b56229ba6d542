#!/usr/bin/env python3
"""scikit-learn side of tools/bench_lr.sh: LogisticRegression(max_iter=1000) fit on a train
CSV, scored on a test CSV, single-threaded. Prints one JSON line per repetition, in the
format of ../shared/bench (bench, tool, dataset, fit_s, accuracy).

usage: bench_lr_sklearn.py TRAIN.csv TEST.csv DATASET [REPEATS]
"""
import json
import os
import sys
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
import sklearn  # noqa: E402


def load(path):
    a = np.loadtxt(path, delimiter=",", skiprows=1)
    return a[:, :-1], a[:, -1].astype(np.int64)


def main():
    train, test, name = sys.argv[1:4]
    repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    Xtr, ytr = load(train)
    Xte, yte = load(test)
    for _ in range(repeats):
        t = time.perf_counter()
        m = LogisticRegression(max_iter=1000).fit(Xtr, ytr)
        fit_s = time.perf_counter() - t
        acc = float((m.predict(Xte) == yte).mean())
        print(json.dumps({"bench": "fit", "tool": "sklearn", "dataset": name,
                          "model": "logistic_regression", "fit_s": round(fit_s, 6),
                          "accuracy": round(acc, 6), "n_iter": int(np.max(m.n_iter_)),
                          "sklearn": sklearn.__version__}), flush=True)


if __name__ == "__main__":
    main()
