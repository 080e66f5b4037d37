"""Benchmark postage stamps: 1,000 objects x 20 coadds, uncompressed and RICE, vs astrocut.

Usage::

    python benchmarks/stamps_benchmark.py                      # 4k x 4k coadds, all variants
    python benchmarks/stamps_benchmark.py --variants plain rice64 --repeat 3
    python benchmarks/stamps_benchmark.py --rss                 # also 4k vs 12k peak RSS

It registers a one-tract discrete sky map whose single patch is ``--patch-pixels`` square,
writes 20 coadds of it (5 bands x 4 coadd kinds; IMAGE float32 noise, MASK int32, VARIANCE
float32, as Rubin's deepCoadd) per variant under ``benchmarks/data/`` (kept between runs),
ingests them, and times ``Registry.postage_stamps`` for 1,000 objects in groups of ~50
(64 x 64 stamps, all planes: 20,000 stamps), warm page cache, best of ``--repeat``. Planning
(registry lookups only) is timed on its own. ``astrocut.fits_cut`` (optional: ``pip install
'skyreg[bench]'``) is timed on a sample of the same stamps and extrapolated. Prints a table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from skyreg import Registry
from skyreg.skymaps import DiscreteDefinition

DATA = Path(__file__).resolve().parent / "data" / "stamps"
BANDS = ("u", "g", "r", "i", "z")
KINDS = ("deepCoadd", "goodSeeingCoadd", "psfMatchedCoadd", "templateCoadd")
SCALE_ARCSEC = 0.2
#: Compression of each variant: None, or (tile rows, tile columns); 0 = whole row.
VARIANTS = {"plain": None, "rice64": (64, 64), "rice128": (128, 128), "rows": (1, 0)}


def definition(pixels: int) -> DiscreteDefinition:
    """One tract of exactly one patch of ``pixels`` x ``pixels``."""
    half = pixels * SCALE_ARCSEC / 3600.0 / 2.0
    return DiscreteDefinition(ra_deg=(150.0,), dec_deg=(2.0,), radius_deg=half * 0.98,
                              pixel_scale_arcsec=SCALE_ARCSEC, patch_inner_pixels=pixels,
                              patch_border_pixels=100, tract_overlap_deg=half * 0.01)


def _type(kind: str, variant: str) -> str:
    return kind if variant == "plain" else f"{kind}_{variant}"


def write_coadds(reg: Registry, skymap: str, pixels: int, variant: str, count: int) -> Path:
    """Write (once) and ingest ``count`` coadds of the single patch for one variant."""
    from astropy.io import fits

    folder = DATA / f"{pixels}" / variant
    wcs, shape = reg.patch_wcs(skymap, 0, 0)
    header = wcs.to_header()
    rng = np.random.default_rng(1)
    planes: dict[str, np.ndarray] | None = None
    pairs = [(k, b) for k in KINDS for b in BANDS][:count]
    for kind, band in pairs:
        path = folder / kind / f"{kind}_{band}.fits"
        if path.exists():
            continue
        if planes is None:
            planes = {"IMAGE": rng.standard_normal(shape, dtype=np.float32),
                      "MASK": rng.integers(0, 4, shape, dtype=np.int32),
                      "VARIANCE": (1.0 + 0.01 * rng.standard_normal(shape)).astype(np.float32)}
        path.parent.mkdir(parents=True, exist_ok=True)
        header["FILTER"] = band
        tmp = path.with_suffix(".tmp")
        tiles = VARIANTS[variant]
        if tiles is None:
            hdus = [fits.ImageHDU(data, header=header, name=name) for name, data in planes.items()]
            fits.HDUList([fits.PrimaryHDU(), *hdus]).writeto(tmp, overwrite=True)
        else:
            import fitsio

            dims = [tiles[0], tiles[1] or shape[1]]
            with fitsio.FITS(str(tmp), "rw", clobber=True) as out:
                out.write(None)
                for name, data in planes.items():
                    cards = [{"name": k, "value": header[k]} for k in header]
                    out.write(data, extname=name, header=cards, compress="RICE",
                              tile_dims=dims)
        tmp.rename(path)
    for kind in {k for k, _ in pairs}:
        dataset_type = _type(kind, variant)
        reg.register_dataset_type(dataset_type, "patch")
        report = reg.ingest_fits(folder / kind, recursive=True, dataset_type=dataset_type,
                                 skymap=skymap, jobs=2)
        assert report.ok, report.problem_lines()
    return folder


def objects(reg: Registry, skymap: str, n: int, group: int, stamp: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n positions in groups of ~group, each group within ~150 pixels, away from the edges."""
    wcs, shape = reg.patch_wcs(skymap, 0, 0)
    rng = np.random.default_rng(7)
    groups = np.arange(n) // group
    centres = rng.uniform(stamp + 200, np.array(shape[::-1]) - stamp - 200,
                          size=(groups.max() + 1, 2))
    xy = centres[groups] + rng.normal(0.0, 60.0, size=(n, 2))
    ra, dec = wcs.all_pix2world(xy[:, 0], xy[:, 1], 0)
    return ra, dec, groups


def _time(call: object, repeat: int) -> tuple[float, float, object]:
    best_wall, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        result = None  # a processing loop holds one batch at a time
        wall, cpu = time.perf_counter(), time.process_time()
        result = call()  # type: ignore[operator]
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, result


def _astrocut(folder: Path, ra: np.ndarray, dec: np.ndarray, stamp: int, sample: int
              ) -> float | None:
    """Seconds per stamp (all three planes) for astrocut.fits_cut, from a sample."""
    try:
        import warnings

        from astrocut import fits_cut
        from astropy.coordinates import SkyCoord
    except ImportError:
        return None
    path = next(iter(sorted((folder / KINDS[0]).glob("*.fits"))))
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(sample):
            fits_cut([str(path)], SkyCoord(ra[i], dec[i], unit="deg"), stamp,
                     extension=[1, 2, 3], memory_only=True)
    return (time.perf_counter() - started) / sample


def _readers(folder: Path, stamp: int, count: int = 100) -> tuple[float, float]:
    """Seconds for ``count`` random cutouts of one compressed IMAGE plane: fitsio, astropy."""
    import fitsio
    from astropy.io import fits

    path = str(next(iter(sorted((folder / KINDS[0]).glob("*.fits")))))
    rng = np.random.default_rng(3)
    with fitsio.FITS(path) as f:
        height, width = f[1].get_dims()
        corners = rng.integers(0, [height - stamp, width - stamp], size=(count, 2))
        best_fitsio = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            cut = [f[1][y:y + stamp, x:x + stamp] for y, x in corners.tolist()]
            best_fitsio = min(best_fitsio, time.perf_counter() - started)
    with fits.open(path) as hdus:
        section = hdus[1].section
        best_astropy = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            other = [section[y:y + stamp, x:x + stamp] for y, x in corners.tolist()]
            best_astropy = min(best_astropy, time.perf_counter() - started)
    assert all(np.array_equal(a, b) for a, b in zip(cut, other, strict=True))
    return best_fitsio, best_astropy


def _rss_child(url: str, pixels: int, n: int, group: int, stamp: int) -> None:
    """In a fresh interpreter: stamps from 2 coadds; prints RSS before and the peak."""
    import json
    import tracemalloc

    import psutil

    with Registry.connect(url) as reg:
        skymap = f"bench{pixels}"
        ra, dec, groups = objects(reg, skymap, n, group, stamp)
        reg.plan_stamps((ra, dec), size=stamp, skymap=skymap)  # imports and caches warm
        start = psutil.Process().memory_info().rss
        tracemalloc.start()
        result = reg.postage_stamps((ra, dec), size=stamp, dataset_types=[KINDS[0]],
                                    bands=list(BANDS[:2]), skymap=skymap, groups=groups)
        stamps = len(result)
        heap = tracemalloc.get_traced_memory()[1]
    # VmHWM, not ru_maxrss: the latter survives exec and would report the parent's peak.
    status = Path("/proc/self/status").read_text()
    peak = int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("VmHWM:"))) * 1024
    print(json.dumps({"start": start, "peak": peak, "stamps": stamps, "heap": heap}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", help="PostgreSQL URL (default: the embedded server)")
    parser.add_argument("--patch-pixels", type=int, default=4000)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--group", type=int, default=50)
    parser.add_argument("--stamp", type=int, default=64)
    parser.add_argument("--coadds", type=int, default=20)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--astrocut-sample", type=int, default=30)
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rss", action="store_true",
                        help="also peak RSS for 4k and 12k coadds (2 coadds each, writes 3.5 GB)")
    args = parser.parse_args()
    if args.rss_child:
        _rss_child(args.db, args.rss_child, args.objects, args.group, args.stamp)
        return
    rows: list[tuple[str, str]] = []
    with Registry.connect(args.db) as reg:
        url = reg.engine.url.render_as_string(hide_password=False)
        skymap = f"bench{args.patch_pixels}"
        reg.register_skymap(skymap, definition(args.patch_pixels))
        ra, dec, groups = objects(reg, skymap, args.objects, args.group, args.stamp)
        folders = {v: write_coadds(reg, skymap, args.patch_pixels, v, args.coadds)
                   for v in args.variants}
        types = [_type(k, "plain") for k in KINDS]
        first = time.perf_counter()
        plan = reg.plan_stamps((ra, dec), size=args.stamp, dataset_types=types, skymap=skymap,
                               groups=groups)
        first = time.perf_counter() - first
        wall, cpu, plan = _time(lambda: reg.plan_stamps(
            (ra, dec), size=args.stamp, dataset_types=types, skymap=skymap, groups=groups),
            max(args.repeat, 5))
        rows.append((f"plan, {args.objects} objects ({len(plan.tasks)} files, "  # type: ignore[attr-defined]
                     f"{plan.pairs} pairs)", f"{wall * 1000:.1f} ms (CPU {cpu * 1000:.1f} ms; "  # type: ignore[attr-defined]
                     f"first call {first * 1000:.1f} ms)"))
        per_stamp = {}
        for variant in args.variants:
            types = [_type(k, variant) for k in KINDS]

            def run(types: list[str] = types) -> object:
                return reg.postage_stamps((ra, dec), size=args.stamp, dataset_types=types,
                                          skymap=skymap, groups=groups)

            run()  # warm the page cache
            # Row tiles decompress whole rows per group: slow, measured once.
            wall, cpu, result = _time(run, 1 if variant == "rows" else args.repeat)
            n = len(result)  # type: ignore[arg-type]
            per_stamp[variant] = wall / max(n, 1)
            rows.append((f"{variant}: {n} stamps x 3 planes, end to end",
                         f"{wall:.3f} s (CPU {cpu:.3f} s), {n / wall:,.0f} stamps/s"))
            if VARIANTS[variant] is not None:
                fitsio_s, astropy_s = _readers(folders[variant], args.stamp)
                rows.append((f"{variant}: 100 single {args.stamp}x{args.stamp} cutouts, one plane",
                             f"fitsio {fitsio_s * 1000:.1f} ms, astropy .section "
                             f"{astropy_s * 1000:.1f} ms"))
            if variant == "plain":
                wall, cpu, _ = _time(lambda r=result: r.to_fits(DATA / "out.fits"), 1)  # type: ignore[attr-defined]
                size = (DATA / "out.fits").stat().st_size / 1e6
                rows.append(("plain: to_fits (one HDU per stamp and plane)",
                             f"{wall:.2f} s (CPU {cpu:.2f} s), {size:.0f} MB"))
                (DATA / "out.fits").unlink()
        if "plain" in folders and args.astrocut_sample:
            seconds = _astrocut(folders["plain"], ra, dec, args.stamp, args.astrocut_sample)
            if seconds is None:
                rows.append(("astrocut.fits_cut", "not installed"))
            else:
                total = seconds * args.objects * args.coadds
                rows.append((f"astrocut.fits_cut, {args.astrocut_sample} calls extrapolated",
                             f"{seconds * 1000:.1f} ms/stamp -> {total:.1f} s for "
                             f"{args.objects * args.coadds} ({seconds / per_stamp['plain']:.0f}x "
                             "slower)"))
    if args.rss:
        import json
        import subprocess

        for pixels in (4000, 12000):
            with Registry.connect(url) as reg:
                reg.register_skymap(f"bench{pixels}", definition(pixels))
                write_coadds(reg, f"bench{pixels}", pixels, "plain", 2)
            done = subprocess.run(
                [sys.executable, __file__, "--db", url, "--rss-child", str(pixels),
                 "--objects", str(args.objects), "--group", str(args.group),
                 "--stamp", str(args.stamp)], check=True, capture_output=True, text=True)
            got = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append((f"peak RSS, 2 coadds of {pixels}x{pixels} ({got['stamps']} stamps)",
                         f"{got['peak'] / 2**20:.0f} MiB (before the call "
                         f"{got['start'] / 2**20:.0f} MiB); heap peak "
                         f"{got['heap'] / 2**20:.0f} MiB"))
    width = max(len(name) for name, _ in rows)
    print(f"{'measurement':<{width}}  result")
    print(f"{'-' * width}  {'-' * 40}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"\n{os.cpu_count()} cores; python {sys.version.split()[0]}; data in {DATA}")


if __name__ == "__main__":
    main()
