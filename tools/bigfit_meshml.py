#!/usr/bin/env python3
"""One data-parallel meshml fit for tools/bench_bigfit.sh, as a peer benchmark record.

  bigfit_meshml.py MESHML NODE DATASET TEST_DATASET [TOOL FIT_ARGS...]

Runs `meshml fit` through NODE (by default logistic regression, C=1, max_iter=100, as the
peers; or the model and `--set`s in FIT_ARGS, recorded as TOOL) and prints one JSON line:
fit_s (the job's wall time, submission to result), accuracy on TEST_DATASET, the passes over
the data and their overhead beyond the members' compute.
"""
import json
import re
import subprocess
import sys
import time


def main():
    meshml, node, dataset, test = sys.argv[1:5]
    tool = sys.argv[5] if len(sys.argv) > 5 else "meshml-dp-mesh3"
    fit = sys.argv[6:] or ["--model", "logistic_regression", "--set", "C=1",
                           "--set", "max_iter=100"]
    t = time.time()
    out = subprocess.run(
        [meshml, "fit", "--node", node, "--dataset", dataset, *fit, "--test-dataset", test,
         "--name", "bigfit"],
        check=True, capture_output=True, text=True).stdout
    wall = time.time() - t
    print(out, file=sys.stderr)
    rec = {"bench": "big_fit_lr", "tool": tool, "dataset": dataset,
           "fit_s": wall,
           "accuracy": float(re.search(r"accuracy on '[^']+': ([0-9.]+)", out).group(1)),
           "mode": re.search(r"^mode: (.*)$", out, re.M).group(1)}
    m = re.search(r"passes over the data: (\d+) in ([0-9.]+)s.*a pass: ([0-9.]+) ms, ([0-9.]+) ms", out)
    if m:
        rec.update(passes=int(m.group(1)), job_s=float(m.group(2)),
                   pass_ms=float(m.group(3)), overhead_ms=float(m.group(4)))
    print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
