#!/usr/bin/env python3
"""The peer for meshml's online-prediction benchmark: a FastAPI + scikit-learn server with
the same request and response shape as `POST /v1/models/{name}/predict`.

    python tools/serve_fastapi.py PORT [WORKERS]

The model is scikit-learn's LogisticRegression(max_iter=1000) fitted on synth200k's train
rows (../shared/bench data), cached in $PEERS_MODELS/lr_synth200k.pkl (default
/tmp/peers/models) as ../shared/bench/bench_predict.py caches it.
"""
import os
import pickle
import sys

import numpy as np

DATA = os.environ.get("PEERS_DATA", "/tmp/peers/data")
MODELS = os.environ.get("PEERS_MODELS", "/tmp/peers/models")
PATH = os.path.join(MODELS, "lr_synth200k.pkl")


def model():
    if os.path.exists(PATH):
        with open(PATH, "rb") as f:
            return pickle.load(f)
    from sklearn.linear_model import LogisticRegression

    X = np.load(os.path.join(DATA, "synth200k_X.npy"))
    y = np.load(os.path.join(DATA, "synth200k_y.npy"))
    idx = np.load(os.path.join(DATA, "synth200k_train_idx.npy"))
    m = LogisticRegression(max_iter=1000).fit(X[idx], y[idx])
    os.makedirs(MODELS, exist_ok=True)
    with open(PATH, "wb") as f:
        pickle.dump(m, f, protocol=4)
    return m


from fastapi import FastAPI  # noqa: E402
from pydantic import BaseModel  # noqa: E402

app = FastAPI()
MODEL = model()


class Body(BaseModel):
    instances: list[list[float]]


@app.post("/v1/models/lr/predict")
def predict(body: Body):
    X = np.asarray(body.instances, dtype=np.float64)
    pred = MODEL.predict(X)
    return {"model": "lr", "version": 1, "predictions": [str(p) for p in pred]}


if __name__ == "__main__":
    import uvicorn

    port = int(sys.argv[1])
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    uvicorn.run("serve_fastapi:app", host="127.0.0.1", port=port, workers=workers, log_level="warning")
