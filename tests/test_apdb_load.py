"""``skyreg catalog load-apdb DIR``: Parquet in, versions chained, re-runs idempotent, bad
rows refused by file, row and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner
from lsst.sphgeom import Angle, Circle, LonLat, UnitVector3d

from apdb_builder import ccd_frames, random_objects
from skyreg import Registry
from skyreg.cli.main import cli
from skyreg.synthetic.apdb_catalogs import Box, dia_objects

T0 = 60000.0


def _run(url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--db", url, *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _write_directory(root: Path) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Two versions of 300 objects, their sources and forced sources of two visits."""
    root.mkdir()
    ids, ra, dec = random_objects(300, Box(40.0, 40.3, -2.0, -1.7), seed=8)
    rng = np.random.default_rng(8)
    versions = pd.concat([dia_objects(ids, ra, dec, rng, validity_start=T0 + 5),
                          dia_objects(ids, ra, dec, rng, validity_start=T0)])
    # Optional columns may be absent: they load as NULL.
    versions = versions.drop(columns=["g_psfFluxMean", "raErr"])
    first = ccd_frames(1, 5, T0, ids, ra, dec, seed=1)
    second = ccd_frames(2, 5, T0 + 5, ids, ra, dec, seed=2)
    sources = pd.concat([first.sources, second.sources], ignore_index=True)
    forced = pd.concat([first.forced, second.forced], ignore_index=True)
    versions.to_parquet(root / "DiaObject.parquet", index=False)
    sources.to_parquet(root / "DiaSource.parquet", index=False)
    forced.to_parquet(root / "DiaForcedSource.parquet", index=False)
    return ids, sources, forced


def test_load_apdb_directory_and_rerun(database_url: str, tmp_path: Path) -> None:
    _ids, sources, forced = _write_directory(tmp_path / "apdb")
    code, out, err = _run(database_url, "catalog", "load-apdb", str(tmp_path / "apdb"),
                          "--no-progress")
    assert code == 0, err
    assert "DiaObject: 600 rows read, 600 stored, 0 already stored" in out
    assert f"DiaSource: {len(sources)} rows read, {len(sources)} stored" in out
    code, out, err = _run(database_url, "catalog", "load-apdb", str(tmp_path / "apdb"))
    assert code == 0, err
    assert "DiaObject: 600 rows read, 0 stored, 600 already stored" in out
    assert f"DiaForcedSource: {len(forced)} rows read, 0 stored, {len(forced)} already" in out
    with Registry.connect(database_url) as registry:
        apdb = registry.apdb
        assert apdb.count("DiaObject") == 600 and apdb.count("DiaSource") == len(sources)
        region = Circle(UnitVector3d(LonLat.fromDegrees(40.15, -1.85)), Angle.fromDegrees(1))
        latest = apdb.get_dia_objects(region)
        assert len(latest) == 300 and (latest["validityStartMjdTai"] == T0 + 5).all()
        assert latest["g_psfFluxMean"].isna().all() and latest["raErr"].isna().all()
        older = apdb._select("DiaObject", ['"validityEndMjdTai" IS NOT NULL'])
        assert (older["validityEndMjdTai"] == T0 + 5).all() and len(older) == 300
        assert apdb.contains_visit_detector(1, 5) and apdb.contains_visit_detector(2, 5)


def test_bad_rows_are_refused_by_file_row_and_column(database_url: str,
                                                     tmp_path: Path) -> None:
    _ids, sources, forced = _write_directory(tmp_path / "apdb")
    bad = sources.copy()
    bad.loc[3, "dec"] = 91.0
    bad.loc[7, "diaSourceId"] = bad.loc[6, "diaSourceId"]
    table = pa.Table.from_pandas(bad, preserve_index=False)
    band = table.column_names.index("band")
    table = table.set_column(band, "band", pa.array(["toolong", *bad["band"].tolist()[1:]]))
    pq.write_table(table, tmp_path / "apdb" / "DiaSource.parquet")
    forced.drop(columns=["diaObjectId"]).to_parquet(tmp_path / "apdb" / "DiaForcedSource.parquet")
    code, out, err = _run(database_url, "catalog", "load-apdb", str(tmp_path / "apdb"),
                          "--no-progress")
    assert code == 1
    assert "refused: DiaSource.parquet: row 0: column 'band': DiaSource: longer than 1" in err
    assert "refused: DiaSource.parquet: row 3: column 'dec'" in err
    assert "row 7: column 'diaSourceId'" in err and "appears twice" in err
    assert "refused: DiaForcedSource.parquet: column 'diaObjectId': DiaForcedSource: " \
           "required column 'diaObjectId' is missing" in err
    assert "error: 4 rows refused" in err
    assert f"DiaSource: {len(sources)} rows read, {len(sources) - 3} stored" in out
    # A changed row of a loaded key is refused, the others are skipped.
    changed = sources.copy()
    changed.loc[10, "psfFlux"] = -5.0
    changed.to_parquet(tmp_path / "apdb" / "DiaSource.parquet", index=False)
    (tmp_path / "apdb" / "DiaObject.parquet").unlink()
    (tmp_path / "apdb" / "DiaForcedSource.parquet").unlink()
    code, out, err = _run(database_url, "catalog", "load-apdb", str(tmp_path / "apdb"))
    assert code == 1
    key = int(changed.loc[10, "diaSourceId"])
    assert f"row 10: column 'diaSourceId': diaSourceId={key} is stored with other values" in err
    (tmp_path / "empty").mkdir()
    code, _, err = _run(database_url, "catalog", "load-apdb", str(tmp_path / "empty"))
    assert code == 1 and "holds none of DiaObject.parquet" in err
    (tmp_path / "apdb" / "DiaObject.parquet").write_text("not parquet")
    code, _, err = _run(database_url, "catalog", "load-apdb", str(tmp_path / "apdb"))
    assert "refused: DiaObject.parquet: not a readable Parquet file" in err
