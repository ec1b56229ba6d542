#!/usr/bin/env python3
"""Every number of two meshml model artifacts (`.mlm`), side by side.

  compare_models.py GOT.mlm WANT.mlm [PATH_PART=TOL ...]

Reads both artifacts (the 52-byte header, then MessagePack), walks their fitted models in
parallel and prints, for every list of numbers, its path and the largest difference
relative to the largest magnitude in WANT's list (a scale-free figure: 1e-4 means every
entry is within 1e-4 of the list's scale). Principal components compare up to the sign of
each component. Each PATH_PART=TOL asserts that every path containing PATH_PART is within
TOL (exit status 1 otherwise, or when the models differ in shape).
"""
import struct
import sys

import msgpack

HEADER = 8 + 4 + 8 + 32


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:8] != b"MESHMLM\0":
        sys.exit(f"{path}: not a meshml artifact")
    (n,) = struct.unpack("<Q", raw[12:20])
    return msgpack.unpackb(raw[HEADER:HEADER + n], raw=False)


def numbers(v):
    return isinstance(v, list) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)


def rel(got, want, row=None):
    scale = max(abs(x) for x in want) or 1.0
    if row:  # up to the sign of each row of `row` entries
        worst = 0.0
        for i in range(0, len(want), row):
            g, w = got[i:i + row], want[i:i + row]
            same = max(abs(a - b) for a, b in zip(g, w))
            flip = max(abs(a + b) for a, b in zip(g, w))
            worst = max(worst, min(same, flip))
        return worst / scale
    return max(abs(a - b) for a, b in zip(got, want)) / scale


def walk(got, want, path, out):
    if isinstance(want, dict):
        if not isinstance(got, dict) or got.keys() != want.keys():
            out.append((path, None))
            return
        for k in want:
            if k == "components" and numbers(want[k]) and numbers(want.get("mean")):
                g, w = got[k], want[k]
                out.append((f"{path}.{k}", rel(g, w, len(want["mean"])) if len(g) == len(w) else None))
            else:
                walk(got[k], want[k], f"{path}.{k}", out)
    elif numbers(want):
        out.append((path, rel(got, want) if numbers(got) and len(got) == len(want) else None))
    elif isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            out.append((path, None))
            return
        for i, (g, w) in enumerate(zip(got, want)):
            walk(g, w, f"{path}[{i}]", out)
    elif isinstance(want, float) and isinstance(got, (int, float)):
        out.append((path, abs(got - want) / (abs(want) or 1.0)))


def main():
    got, want = load(sys.argv[1]), load(sys.argv[2])
    tols = [a.split("=", 1) for a in sys.argv[3:]]
    out = []
    walk(got["model"], want["model"], "model", out)
    ok = True
    for path, d in out:
        tol = [float(t) for part, t in tols if part in path]
        bad = d is None or any(d > t for t in tol)
        ok &= not bad
        shown = "shapes differ" if d is None else f"{d:.3g}"
        print(f"  {path}: {shown}{'  > ' + str(min(tol)) if bad and tol else ''}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
