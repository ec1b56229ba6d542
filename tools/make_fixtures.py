#!/usr/bin/env python3
"""Writes the Parquet fixtures of storage/tests (run with pyarrow installed, e.g. the
peers venv): iris.parquet (the bundled iris data, 4 row groups of <= 40 rows, snappy) and
iris_null.parquet (the same with one missing petal_width, in data row 77); and
chunk_pyarrow.arrows, a chunk-shaped Arrow IPC stream written by pyarrow (a nullable float
column, dictionary-encoded text with a null, a nullable boolean, dictionary labels)."""
import csv
import os

import pyarrow as pa
import pyarrow.parquet as pq

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "storage", "tests", "fixtures")


def main():
    with open(os.path.join(HERE, "..", "data", "iris.csv")) as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    cols = {h: [r[i] for r in body] for i, h in enumerate(header)}
    arrays = {h: pa.array([float(v) for v in cols[h]], pa.float64()) for h in header[:-1]}
    arrays[header[-1]] = pa.array(cols[header[-1]], pa.string())
    table = pa.table(arrays)
    os.makedirs(OUT, exist_ok=True)
    pq.write_table(table, os.path.join(OUT, "iris.parquet"), row_group_size=40, compression="snappy")
    pw = [float(v) for v in cols["petal_width"]]
    pw_null = pw[:76] + [None] + pw[77:]
    table = table.set_column(header.index("petal_width"), "petal_width", pa.array(pw_null, pa.float64()))
    pq.write_table(table, os.path.join(OUT, "iris_null.parquet"), row_group_size=40, compression="snappy")

    write_chunk()


def write_chunk():
    x = pa.array([1.5, None, -0.0], pa.float32())
    c = pa.DictionaryArray.from_arrays(pa.array([1, None, 0], pa.int8()), pa.array(["a", "c"]))
    f = pa.array([True, False, None])
    y = pa.DictionaryArray.from_arrays(pa.array([1, 0, 1], pa.int32()), pa.array(["yes", "no"]))
    batch = pa.record_batch([x, c, f, y], names=["x", "colour", "flag", "y"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    with open(os.path.join(OUT, "chunk_pyarrow.arrows"), "wb") as out:
        out.write(sink.getvalue().to_pybytes())


if __name__ == "__main__":
    main()
