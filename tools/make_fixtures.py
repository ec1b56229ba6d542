#!/usr/bin/env python3
"""Writes the Parquet fixtures of storage/tests (run with pyarrow installed, e.g. the
peers venv): iris.parquet (the bundled iris data, 4 row groups of <= 40 rows, snappy) and
iris_null.parquet (the same with one missing petal_width, in data row 77)."""
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


if __name__ == "__main__":
    main()
