"""How skyreg scales: run_benchmarks.py at several survey sizes, a growth table and a plot.

Usage::

    python benchmarks/scaling_benchmark.py --visits 1000 10000 50000 --plot docs/scaling.png

Each size runs ``run_benchmarks.py`` in its own process (fresh embedded server, or a fresh
database on ``--db``), with file URIs for every CCD so the file archive is loaded too. The
table gives the ingest rate, the query medians of every entry point (Python and SQL), the bulk
join and the size per CCD; the last column is the growth of each median from the second-largest
to the largest size (target: at most 2x from 1.9 M to 9.5 M CCDs). The plot (matplotlib,
``pip install -e '.[bench]'``) shows the same medians against the number of CCDs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def run(visits: int, queries: int, db: str | None, out: Path, constant_depth: bool
        ) -> dict[str, Any]:
    command = [sys.executable, str(HERE / "run_benchmarks.py"), "--visits", str(visits),
               "--queries", str(queries), "--with-files", "--json", str(out)]
    if constant_depth:
        # 300 deg² per 10,000 visits: every size is ~300 visits deep, as the default field
        # is at 10,000 visits; the survey grows in area, as a real one does.
        command += ["--area", str(visits * 0.03)]
    if db:
        command += ["--db", db]
    print(f"== {visits:,} visits", file=sys.stderr, flush=True)
    subprocess.run(command, check=True)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def table(results: list[dict[str, Any]]) -> str:
    sizes = [r["ccds"] for r in results]
    lines = ["| measurement | " + " | ".join(f"{n / 1e6:.2f} M CCDs" for n in sizes)
             + " | growth, last step |",
             "|---|" + "---|" * len(sizes) + "---|"]

    def row(name: str, values: list[float], fmt: str, growth: bool = True) -> None:
        cells = " | ".join(fmt.format(v) for v in values)
        ratio = f"{values[-1] / values[-2]:.2f}x" if growth and len(values) > 1 and values[-2] \
            else ""
        lines.append(f"| {name} | {cells} | {ratio} |")

    row("ingest, CCDs/s", [r["ingest_ccds_per_second"] for r in results], "{:,.0f}")
    row("bytes per CCD (ccd + ccd_pixel)", [r["bytes_per_ccd"] for r in results], "{:,.0f}")
    row("database, GiB", [r["database_bytes"] / 2**30 for r in results], "{:.2f}")
    for kind in results[0]["queries"]:
        row(f"{kind}, median ms", [r["queries"][kind]["median_ms"] for r in results], "{:.2f}")
        row(f"{kind}, p95 ms", [r["queries"][kind]["p95_ms"] for r in results], "{:.2f}",
            growth=False)
        row(f"{kind}, rows", [r["queries"][kind]["mean_rows"] for r in results], "{:,.0f}")
    for kind in results[0]["bulk_join"]:
        row(f"bulk join: {kind}, median s",
            [r["bulk_join"][kind]["median_s"] for r in results], "{:.2f}")
        row(f"bulk join: {kind}, pairs",
            [r["bulk_join"][kind]["mean_pairs"] for r in results], "{:,.0f}")
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ccds = [r["ccds"] for r in results]
    figure, (queries, ingest) = plt.subplots(1, 2, figsize=(13, 6.5))
    queries.set_prop_cycle(color=plt.get_cmap("tab20").colors)
    for kind in results[0]["queries"]:
        style = "--" if kind.startswith("SQL") else "-"
        queries.plot(ccds, [r["queries"][kind]["median_ms"] for r in results], style,
                     marker="o", label=kind)
    queries.set(xscale="log", yscale="log", xlabel="CCDs in the registry",
                ylabel="median latency, ms", title="Query medians (warm)")
    queries.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    queries.grid(True, which="both", alpha=0.3)
    ingest.plot(ccds, [r["ingest_ccds_per_second"] for r in results], marker="o",
                label="manifest ingest, CCDs/s")
    rates = [r["ingest_ccds_per_second"] for r in results]
    ingest.set(xscale="log", xlabel="CCDs in the registry", ylabel="CCDs/s",
               title="Ingest rate (file archive on)", ylim=(0, max(rates) * 1.25))
    ingest.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visits", type=int, nargs="+", default=[1000, 10_000, 50_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--db", help="PostgreSQL URL (default: embedded server per size)")
    parser.add_argument("--constant-depth", action="store_true",
                        help="grow the area with the visits (default: one fixed 300 deg² field)")
    parser.add_argument("--plot", type=Path, help="write the growth plot here (PNG)")
    parser.add_argument("--json", type=Path, help="write all results here")
    parser.add_argument("--from-json", type=Path, nargs="+",
                        help="tabulate and plot earlier run_benchmarks.py JSON files instead")
    args = parser.parse_args()
    if args.from_json:
        results = [json.loads(path.read_text()) for path in args.from_json]
    else:
        work = Path(tempfile.mkdtemp(prefix="skyreg-scaling-"))
        results = [run(v, args.queries, args.db, work / f"{v}.json", args.constant_depth)
                   for v in args.visits]
    results.sort(key=lambda r: r["ccds"])
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
