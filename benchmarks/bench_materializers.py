"""DataFrame storage: parquet vs Arrow IPC/feather against the raw parquet floor, same run.

The floor is what a user would write by hand: ``df.to_parquet(path)`` + ``pd.read_parquet(path)``.
The candidates are the formats a materializer could use (raw calls), and the last rows are the
real ``pandas.dataframe`` materializer through an fsspec filesystem, as a step's output goes
(``select`` + ``save`` + ``get`` + ``load``), without and with the sha256 the artifact store
adds. Medians of --repeat runs; nothing here asserts a time.

    python benchmarks/bench_materializers.py [--rows 1000000] [--cols 10] [--repeat 5]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def folder_sha256(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def size_mb(path: Path) -> float:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6
    return path.stat().st_size / 1e6


def cases(df: Any, tmp: Path) -> dict[str, tuple[Callable[[], Any], Callable[[], Any], Path]]:
    import fsspec
    import pandas as pd
    import pyarrow.feather as feather

    from zenml_bridge.materializers import get, select

    fs = fsspec.filesystem("file")
    folder = tmp / "artifact"

    def save() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        select(df).save(df, str(folder), fs)

    def save_hash() -> None:
        save()
        folder_sha256(folder)

    def load() -> Any:
        return get("pandas.dataframe").load(str(folder), fs)

    def load_hash() -> Any:
        folder_sha256(folder)
        return load()

    p = {name: tmp / name for name in ("a.parquet", "b.parquet", "c.arrow", "d.arrow", "e.arrow")}
    return {
        "FLOOR df.to_parquet/read_parquet": (
            lambda: df.to_parquet(p["a.parquet"]),
            lambda: pd.read_parquet(p["a.parquet"]),
            p["a.parquet"],
        ),
        "parquet, uncompressed": (
            lambda: df.to_parquet(p["b.parquet"], compression=None),
            lambda: pd.read_parquet(p["b.parquet"]),
            p["b.parquet"],
        ),
        "feather (Arrow IPC), uncompressed": (
            lambda: feather.write_feather(df, p["c.arrow"], compression="uncompressed"),
            lambda: feather.read_feather(p["c.arrow"]),
            p["c.arrow"],
        ),
        "feather (Arrow IPC), lz4": (
            lambda: feather.write_feather(df, p["d.arrow"], compression="lz4"),
            lambda: feather.read_feather(p["d.arrow"]),
            p["d.arrow"],
        ),
        "feather (Arrow IPC), zstd": (
            lambda: feather.write_feather(df, p["e.arrow"], compression="zstd"),
            lambda: feather.read_feather(p["e.arrow"]),
            p["e.arrow"],
        ),
        f"{OURS} pandas.dataframe (fsspec)": (save, load, folder),
        f"{OURS} + sha256 of the folder (store)": (save_hash, load_hash, folder),
    }


#: Rows of zenml-bridge's own materializer (checked type-exact), the others by hand.
OURS = "materializer"


def run(df: Any, repeat: int, title: str) -> None:
    import pandas as pd

    tmp = Path(tempfile.mkdtemp(prefix="bench_materializers_"))
    try:
        print(f"\n{title}")
        print(f"{'format':44} {'write ms':>9} {'read ms':>8} {'total':>8} {'x floor':>8} {'MB':>7}")
        floor = None
        for name, (write, read, path) in cases(df, tmp).items():
            write()  # first call: imports and page cache out of the measurement
            back = read()
            note = ""
            if name.startswith(OURS):  # the materializer promises a type-exact round trip
                pd.testing.assert_frame_equal(back, df)
            else:  # hand-written formats may change dtypes (pandas 3: object -> str on read)
                pd.testing.assert_frame_equal(back, df, check_dtype=False)
                changed = [str(c) for c in df.columns if back[c].dtype != df[c].dtype]
                note = f"  (dtype changed: {', '.join(changed)})" if changed else ""
            w, r = median_ms(write, repeat), median_ms(read, repeat)
            floor = floor or (w + r)
            print(
                f"{name:44} {w:9.1f} {r:8.1f} {w + r:8.1f} {(w + r) / floor:8.2f} "
                f"{size_mb(path):7.1f}{note}"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    import pyarrow

    rng = np.random.default_rng(0)
    floats = pd.DataFrame(
        rng.random((args.rows, args.cols)), columns=[f"c{i}" for i in range(args.cols)]
    )
    print(
        f"pandas {pd.__version__}, pyarrow {pyarrow.__version__}, numpy {np.__version__}, "
        f"{os.cpu_count()} CPUs; medians of {args.repeat} runs after one warm-up"
    )
    run(floats, args.repeat, f"{args.rows:,} x {args.cols} float64 (random, incompressible)")
    # A more typical table: small ints, repeated labels, prices with few distinct values.
    typical = pd.DataFrame(
        {
            "user": rng.integers(0, 5_000, args.rows),
            "label": pd.Series(rng.choice(["a", "bb", "ccc"], args.rows)).astype(object),
            "price": rng.integers(0, 200, args.rows) / 4,
            "flag": rng.random(args.rows) > 0.9,
        }
    )
    run(typical, args.repeat, f"{args.rows:,} rows of ints, strings, floats, bools (compressible)")


if __name__ == "__main__":
    main()
