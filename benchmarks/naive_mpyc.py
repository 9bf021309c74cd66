"""The baseline: one grouped count/mean/stddev query written directly with MPyC.

What a team would write without mpc-gateway, in the style of MPyC's demos: every
party runs this script as its own process, once per query::

    python benchmarks/naive_mpyc.py -M3 -I0 -P localhost:11365 -P localhost:11366 \\
        -P localhost:11367 --data bank-a.parquet --where "exposure > 1000" --group-by sector \\
        --groups agriculture,construction,...

Each party reads its filtered values with DuckDB, secret-shares them as secure
fixed-point arrays, and the parties compute per group the count, the mean
(``sum * (2**e/n) * 2**-e``, as ``mpyc.statistics.mean`` does) and the sample
variance over ``y = x - mean`` (two passes, as ``mpyc.statistics.variance``
does), with secure arrays instead of lists (lists are ~40x slower). The mean
and variance are opened to every party; the square root is taken in the clear
(the same information, and it saves ~50 secure comparisons per group).

Parties: m processes on one host, plain TCP on loopback (no TLS). Inputs: every
party's filtered values of ``--column``, one secure array per party. Output: the
count, mean and standard deviation per group, opened to every party; party 0
prints them as one JSON line with its timings. Leakage: beyond the output, every
party learns every other party's number of matching rows per group (the array
shapes must be public to share them). Threshold: t = (m-1)//2, passive.

Fixed point: ``--frac-bits`` (default 32) fractional bits; the bit length is
derived from the public row counts and ``--max-value`` (the column's declared
bound) so that the sum of squares cannot overflow.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

STARTED = time.perf_counter()

import duckdb  # noqa: E402
import numpy as np  # noqa: E402

# This script is an MPyC program in its own process: mpyc parsing sys.argv is what we want.
from mpyc.runtime import mpc  # noqa: E402, TID251


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="this party's Parquet file")
    parser.add_argument("--column", default="exposure")
    parser.add_argument("--where", default="TRUE", help="SQL filter, run locally")
    parser.add_argument("--group-by", default="sector")
    parser.add_argument("--groups", required=True, help="comma-separated group domain")
    parser.add_argument("--max-value", type=float, default=1e8, help="public bound on |value|")
    parser.add_argument("--frac-bits", type=int, default=32)
    return parser.parse_args()


def _local_values(args: argparse.Namespace, groups: list[str]) -> list[np.ndarray]:
    """This party's filtered values, one float array per group, in ``groups`` order."""
    sql = (
        f'SELECT "{args.group_by}", "{args.column}" FROM read_parquet(?) '
        f"WHERE {args.where} ORDER BY 1"
    )
    frame = duckdb.connect().execute(sql, [args.data]).df()
    by_group = dict(tuple(frame.groupby(args.group_by, observed=True)[args.column]))
    return [by_group[g].to_numpy(float) if g in by_group else np.zeros(0) for g in groups]


def _bit_length(total_rows: int, max_value: float, frac_bits: int) -> int:
    """Enough bits for sum((x - mean)**2) over every row, plus the fractional part."""
    return frac_bits + math.ceil(math.log2(max(total_rows, 2) * max_value**2)) + 3


def _divide(value: Any, n: int) -> Any:
    """Secure ``value / n`` for a public n, as mpyc.statistics.mean divides (f bits of 2**e/n)."""
    e = n.bit_length() - 1
    return value * (2**e / n) * 2**-e


def _moments(x: Any, n: int) -> list[Any]:
    """Secure mean and sample variance of the secure fixed-point array ``x`` of n values."""
    mean = _divide(mpc.np_sum(x), n)
    if n < 2:
        return [mean, mean * 0]
    y = x - mean
    return [mean, _divide(y @ y, n - 1)]


async def _joint(local: list[np.ndarray], args: argparse.Namespace) -> list[list[Any]]:
    """Per group: [count, mean, stddev] over every party's values."""
    sizes = await mpc.transfer([len(v) for v in local])  # sizes[party][group]
    counts = [sum(party[g] for party in sizes) for g in range(len(local))]
    secfxp = mpc.SecFxp(_bit_length(sum(counts), args.max_value, args.frac_bits), args.frac_bits)
    mine = np.concatenate(local)
    parts = []
    for i, party_sizes in enumerate(sizes):
        placeholder = mine if i == mpc.pid else np.zeros(sum(party_sizes))
        parts.append(mpc.input(secfxp.array(placeholder, integral=False), senders=i))
    offsets = [np.cumsum([0, *party_sizes]) for party_sizes in sizes]
    secure = []
    for g, n in enumerate(counts):
        if n == 0:
            continue
        pieces = [p[o[g] : o[g + 1]] for p, o in zip(parts, offsets) if o[g + 1] > o[g]]
        x = pieces[0] if len(pieces) == 1 else mpc.np_concatenate(pieces)
        secure.extend(_moments(x, n))
    opened = iter(await mpc.output(secure)) if secure else iter(())
    rows = []
    for n in counts:
        mean, var = (next(opened), next(opened)) if n else (None, None)
        rows.append([n, mean, math.sqrt(max(var, 0.0)) if n > 1 else None])
    return rows


async def main() -> None:
    args = _arguments()
    groups = args.groups.split(",")
    local = _local_values(args, groups)
    loaded = time.perf_counter()
    await mpc.start()
    connected = time.perf_counter()
    rows = await _joint(local, args)
    computed = time.perf_counter()
    await mpc.shutdown()
    if mpc.pid == 0:
        timings = {
            "imports_and_load_s": loaded - STARTED,  # after the interpreter started
            "connect_s": connected - loaded,
            "mpc_s": computed - connected,
            "shutdown_s": time.perf_counter() - computed,
        }
        result = {"groups": dict(zip(groups, rows)), "timings": timings}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    mpc.run(main())
    sys.exit(0)
