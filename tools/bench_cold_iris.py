#!/usr/bin/env python3
"""Cold start of the small-data case, whole process, fork to exit: `meshml local fit` on
bundled iris against `python -c` doing the same with scikit-learn (read CSV, stratified
80/20 split, LogisticRegression fit, predict, confusion matrix). The two commands alternate,
RUNS times each; medians and their ratio are printed.

usage: bench_cold_iris.py MESHML_BINARY [RUNS]   (run with the peers venv's python)
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
IRIS = os.path.join(HERE, "..", "data", "iris.csv")
SKLEARN = f"""
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split
d = pd.read_csv({IRIS!r})
X, y = d.drop(columns='species').to_numpy(), d['species'].to_numpy()
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=42)
m = LogisticRegression().fit(Xtr, ytr)
print(pd.DataFrame(confusion_matrix(yte, m.predict(Xte)), index=m.classes_, columns=m.classes_))
"""


def wall(cmd, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    t = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main():
    binary = os.path.abspath(sys.argv[1])
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    with tempfile.TemporaryDirectory() as cwd:
        meshml = [binary, "local", "fit", "--out", "iris.mlm"]
        sk = [sys.executable, "-c", SKLEARN]
        wall(meshml, cwd), wall(sk, cwd)  # warm the page cache for both
        a, b = [], []
        for _ in range(runs):
            a.append(wall(meshml, cwd))
            b.append(wall(sk, cwd))
    ma, mb = statistics.median(a), statistics.median(b)
    print(f"meshml local fit        median {ma * 1e3:8.1f} ms  (min {min(a) * 1e3:.1f}, max {max(a) * 1e3:.1f}, n={runs})")
    print(f"python -c scikit-learn  median {mb * 1e3:8.1f} ms  (min {min(b) * 1e3:.1f}, max {max(b) * 1e3:.1f}, n={runs})")
    print(f"ratio meshml / scikit-learn = {ma / mb:.4f}")


if __name__ == "__main__":
    main()
