#!/usr/bin/env python3
"""scikit-learn's side of `cargo bench -p meshml-models --bench forest`: a 10-tree
RandomForestClassifier(random_state=0) fitted on synth200k train, predict_proba of its 40k
test rows with n_jobs=1, seven times; prints the sorted times, the median and the mean node
count per tree.

    /tmp/peers/venv/bin/python tools/sklearn_forest_predict.py   # PEERS_DATA=/tmp/peers/data
"""
import os
import time

import numpy as np
from sklearn.ensemble import RandomForestClassifier

DATA = os.environ.get("PEERS_DATA", "/tmp/peers/data")


def load(name):
    return np.loadtxt(os.path.join(DATA, name), delimiter=",", skiprows=1, dtype=np.float32)


train, test = load("synth200k_train.csv"), load("synth200k_test.csv")
model = RandomForestClassifier(n_estimators=10, random_state=0, n_jobs=1)
model.fit(train[:, :-1], train[:, -1])
x = test[:, :-1]
times = []
for _ in range(7):
    t = time.perf_counter()
    model.predict_proba(x)
    times.append(time.perf_counter() - t)
nodes = sum(e.tree_.node_count for e in model.estimators_) / len(model.estimators_)
print("times_s", sorted(times), "median_s", float(np.median(times)), "nodes_per_tree", nodes)
