"""Columnar results: ResultTable behaviour, and ``columns=`` values equal to per-row lookups."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
import pyarrow as pa
import pytest
from sqlalchemy import text

from manifest_builder import box, survey_spec, write_manifest
from skyreg import (
    CcdRef,
    NotFoundError,
    PatchRef,
    QueryError,
    Registry,
    ResultTable,
    TractRef,
)
from skyreg.search.columns import EXTRA_COLUMNS, spec_of
from skyreg.search.results import make_column

# -- the table itself (no database) ----------------------------------------------------------


def _table() -> ResultTable[CcdRef]:
    rows = [("Cam", 2, 1, "r", 61000.5, None, [1.0, 2.0, 3.0]),
            ("Cam", 1, 7, "g", 61000.25, "s3://b/1/7.fits", [4.0, 5.0, 6.0, 7.0]),
            ("Cam", 1, 3, "g", 61000.25, "s3://b/1/3.fits", [8.0, 9.0, 10.0])]
    extras = [spec_of(name) for name in ("band", "mjd_start", "uri", "footprint_ra")]
    return ResultTable.from_rows(CcdRef, rows, extras)


def test_rows_are_sorted_named_tuples_and_columns_are_arrays() -> None:
    table = _table()
    assert len(table) == 3 and bool(table)
    assert list(table) == [CcdRef("Cam", 1, 3), CcdRef("Cam", 1, 7), CcdRef("Cam", 2, 1)]
    assert table[0] == CcdRef("Cam", 1, 3) and table[-1].visit == 2
    assert isinstance(table[0], CcdRef) and type(table[0].visit) is int
    assert table.columns == ("instrument", "visit", "detector", "band", "mjd_start", "uri",
                             "footprint_ra")
    assert table["visit"].dtype == np.int64 and table["visit"].tolist() == [1, 1, 2]
    assert table["band"].tolist() == ["g", "g", "r"]
    assert table["uri"].tolist() == ["s3://b/1/3.fits", "s3://b/1/7.fits", None]
    assert table["footprint_ra"][1].tolist() == [4.0, 5.0, 6.0, 7.0]
    with pytest.raises(KeyError, match="no column 'nosuch'"):
        table["nosuch"]


def test_slices_masks_and_positions_keep_every_column() -> None:
    table = _table()
    sliced = table[1:]
    assert isinstance(sliced, ResultTable) and sliced.columns == table.columns
    assert list(sliced) == list(table)[1:] and sliced["mjd_start"].tolist() == [61000.25, 61000.5]
    green = table[table["band"] == "g"]
    assert list(green) == [CcdRef("Cam", 1, 3), CcdRef("Cam", 1, 7)]
    assert green["uri"].tolist() == ["s3://b/1/3.fits", "s3://b/1/7.fits"]
    picked = table[[2, 0]]
    assert list(picked) == [CcdRef("Cam", 2, 1), CcdRef("Cam", 1, 3)]
    assert picked["footprint_ra"][0].tolist() == [1.0, 2.0, 3.0]
    assert len(table[[]]) == 0 and table[[]].columns == table.columns
    with pytest.raises(IndexError, match="boolean mask of 3"):
        table[np.array([True, False])]
    # A table made of columns alone (as a mask makes one) gives the same rows.
    from_columns = ResultTable(CcdRef, None, {name: table[name] for name in table.columns})
    assert from_columns == table and list(from_columns) == list(table)


def test_equality_and_repr() -> None:
    table = _table()
    assert table == _table() and table != table[:2]
    assert table[:2] == [CcdRef("Cam", 1, 3), CcdRef("Cam", 1, 7)]  # like the old lists
    keys_only = ResultTable.from_rows(CcdRef, [tuple(row) for row in table])
    assert keys_only != table and keys_only == list(table)
    text_of = repr(table)
    assert text_of.startswith("<ResultTable of 3 CcdRef rows; columns: instrument, visit")
    assert "('Cam', 1, 3, 'g', 61000.25, 's3://b/1/3.fits', [3 values])" in text_of


def test_conversions_keep_types_units_and_missing_values() -> None:
    table = _table()
    astropy_table = table.to_table()
    assert astropy_table.colnames == list(table.columns)
    assert astropy_table["mjd_start"].unit == u.day
    assert astropy_table["footprint_ra"].unit == u.deg
    assert astropy_table["uri"].mask.tolist() == [False, False, True]
    assert astropy_table["visit"].tolist() == [1, 1, 2]
    arrow = table.to_arrow()
    assert arrow.schema.field("visit").type == pa.int64()
    assert arrow.schema.field("footprint_ra").type == pa.list_(pa.float64())
    assert arrow.schema.field("mjd_start").metadata == {b"unit": b"d"}
    assert arrow.column("uri").to_pylist() == ["s3://b/1/3.fits", "s3://b/1/7.fits", None]
    frame = table.to_pandas()
    assert list(frame.columns) == list(table.columns) and frame["detector"].tolist() == [3, 7, 1]
    assert table.to_dicts()[2] == {"instrument": "Cam", "visit": 2, "detector": 1, "band": "r",
                                   "mjd_start": 61000.5, "uri": None,
                                   "footprint_ra": [1.0, 2.0, 3.0]}


def test_empty_tables_convert_with_their_columns() -> None:
    empty = ResultTable.from_rows(PatchRef, [], [spec_of("cell_x"), spec_of("outer_ra")])
    assert len(empty) == 0 and not empty and list(empty) == []
    assert empty.to_table().colnames == ["skymap", "tract", "patch", "cell_x", "outer_ra"]
    assert empty.to_arrow().num_rows == 0 and len(empty.to_pandas()) == 0
    assert ResultTable.from_rows(TractRef, []).to_table().colnames == ["skymap", "tract"]


def test_missing_numbers_are_masked() -> None:
    column = make_column([1, None, 3], spec_of("hdu"))
    assert np.ma.isMaskedArray(column) and column.tolist() == [1, None, 3]


# -- columns= against the database ----------------------------------------------------------


def _ccds() -> list[tuple[list[float], list[float]]]:
    return [box(10.0 + 0.25 * (i % 8), -5.0 + 0.25 * (i // 8), 0.1, angle=7.0 * i)
            for i in range(48)]


@pytest.fixture
def survey(registry: Registry, tmp_path: Path) -> Iterator[Registry]:
    tracts = [box(10.9, -4.4, 1.2)]
    patches = [[box(10.3 + 0.6 * (p % 3), -5.0 + 0.6 * (p // 3), 0.3) for p in range(9)]]
    spec = survey_spec(_ccds(), per_visit=8, tract_polygons=tracts, patch_polygons=patches)
    for i, row in enumerate(spec.ccds):
        if i % 3:  # every third CCD has no file
            row["uri"] = f"s3://bucket/raw/{row['visit']}/{row['detector']}.fits"
            row["size_bytes"] = 5000 + i
    registry.ingest_manifest(write_manifest(tmp_path / "survey", spec))
    yield registry


def _one(registry: Registry, sql: str, **params: Any) -> Any:
    with registry.engine.connect() as connection:
        return connection.execute(text(sql), params).one_or_none()


VISIT_FIELDS = {"band": "band", "physical_filter": "physical_filter", "day_obs": "day_obs",
                "seq_num": "seq_num", "exposure_time": "exposure_time",
                "mjd_start": "mjd_tai_start", "mjd_end": "mjd_tai_end",
                "boresight_ra": "boresight_ra", "boresight_dec": "boresight_dec",
                "rotation_deg": "rotation_deg"}


def test_ccd_columns_equal_per_row_lookups(survey: Registry) -> None:
    names = [*EXTRA_COLUMNS["ccd"]]
    found = survey.find_ccds(cone=(10.9, -4.1, 0.6), columns=names, dataset_type="raw")
    assert len(found) > 10 and survey.find_ccds(cone=(10.9, -4.1, 0.6)) == list(found)
    assert found.columns == (*CcdRef._fields, *names)
    assert any(uri is None for uri in found["uri"]) and any(found["uri"])
    for i, ref in enumerate(found):
        key = {"i": ref.instrument, "v": ref.visit, "d": ref.detector}
        visit = _one(survey, "SELECT * FROM visit WHERE instrument = :i AND visit = :v", **key)
        for column, field in VISIT_FIELDS.items():
            assert found[column][i] == getattr(visit, field), (ref, column)
        ccd = _one(survey, "SELECT ra, dec FROM ccd WHERE instrument = :i AND visit = :v "
                           "AND detector = :d", **key)
        assert found["footprint_ra"][i].tolist() == list(ccd.ra)
        assert found["footprint_dec"][i].tolist() == list(ccd.dec)
        file = _one(survey, "SELECT uri, hdu, size_bytes, checksum FROM ccd_dataset WHERE "
                            "dataset_type = 'raw' AND instrument = :i AND visit = :v AND "
                            "detector = :d", **key)
        record = dict(zip(found.columns, found.records()[i], strict=True))
        expected = (None, None, None, None) if file is None else tuple(file)
        assert (record["uri"], record["hdu"], record["size_bytes"],
                record["checksum"]) == expected


def test_columns_follow_filters_and_stored_regions(survey: Registry) -> None:
    found = survey.find_ccds(patch=("testmap", 0, 4), band="g", columns=["band", "mjd_end"])
    assert found and set(found["band"]) == {"g"}
    assert survey.find_ccds(patch=("testmap", 0, 4), band="g") == list(found)
    assert "mjd_end" in found.to_table().colnames


def test_tile_columns_equal_per_row_lookups(survey: Registry) -> None:
    ccd = survey.find_ccds(cone=(10.9, -4.4, 0.3))[0]
    patches = survey.find_patches(ccd=ccd, columns=[*EXTRA_COLUMNS["patch"]])
    assert patches and survey.find_patches(ccd=ccd) == list(patches)
    for i, ref in enumerate(patches):
        row = _one(survey, "SELECT * FROM patch WHERE skymap = :s AND tract = :t AND "
                           "patch = :p", s=ref.skymap, t=ref.tract, p=ref.patch)
        for column in EXTRA_COLUMNS["patch"]:
            value = patches[column][i]
            stored = getattr(row, column)
            if isinstance(value, np.ndarray):
                assert value.tolist() == list(stored), column
            else:
                assert value == stored or (value is None and stored is None), column
    tracts = survey.find_tracts(cone=(10.9, -4.4, 0.1), columns="ra_center,dec_center,outer")
    assert list(tracts) == [TractRef("testmap", 0)]
    row = _one(survey, "SELECT * FROM tract WHERE skymap = 'testmap' AND tract = 0")
    assert tracts["ra_center"][0] == row.ra_center and tracts["dec_center"][0] == row.dec_center
    assert tracts["outer_ra"][0].tolist() == list(row.outer_ra)


def test_dataset_columns_equal_per_row_lookups(survey: Registry) -> None:
    for spatial in ({"cone": (10.9, -4.1, 0.5)}, {}):
        files = survey.find_datasets("raw", columns=["mjd_start", "exposure_time",
                                                     "footprint"], **spatial)
        assert files and survey.find_datasets("raw", **spatial) == list(files)
        for i, ref in enumerate(files):
            visit = _one(survey, "SELECT mjd_tai_start, exposure_time FROM visit WHERE "
                                 "instrument = :i AND visit = :v", i=ref.instrument,
                         v=ref.visit)
            assert files["mjd_start"][i] == visit.mjd_tai_start
            assert files["exposure_time"][i] == visit.exposure_time
            ccd = _one(survey, "SELECT ra FROM ccd WHERE instrument = :i AND visit = :v AND "
                               "detector = :d", i=ref.instrument, v=ref.visit, d=ref.detector)
            assert files["footprint_ra"][i].tolist() == list(ccd.ra)


def test_bad_columns_are_refused_with_the_valid_names(survey: Registry) -> None:
    with pytest.raises(ValueError, match=r"no column 'colour'; valid: band, physical_filter"):
        survey.find_ccds(cone=(10.9, -4.1, 0.5), columns=["band", "colour"])
    with pytest.raises(QueryError, match="no column 'mjd_start'; valid: cell_x"):
        survey.find_patches(cone=(10.9, -4.1, 0.5), columns=["mjd_start"])
    with pytest.raises(QueryError, match="dataset_type="):
        survey.find_ccds(cone=(10.9, -4.1, 0.5), columns=["uri"])
    with pytest.raises(QueryError, match="'deepCoadd' holds patch images"):
        survey.find_ccds(cone=(10.9, -4.1, 0.5), columns=["uri"], dataset_type="deepCoadd")
    with pytest.raises(QueryError, match="ask for some with columns="):
        survey.find_ccds(cone=(10.9, -4.1, 0.5), dataset_type="raw")
    with pytest.raises(QueryError, match="no column 'mjd_start'"):
        survey.find_datasets("deepCoadd", columns=["mjd_start"])


def test_tables_concatenate_like_lists() -> None:
    table = _table()
    both = table[:1] + table[2:]
    assert isinstance(both, ResultTable) and list(both) == [table[0], table[2]]
    assert both["uri"].tolist() == ["s3://b/1/3.fits", None]
    assert table[:1] + [CcdRef("X", 0, 0)] == [table[0], CcdRef("X", 0, 0)]  # noqa: RUF005
    assert [CcdRef("X", 0, 0)] + table[:1] == [CcdRef("X", 0, 0), table[0]]  # noqa: RUF005
    with pytest.raises(TypeError, match="cannot concatenate"):
        table + ResultTable.from_rows(CcdRef, [])


def test_stored_footprint_searches_equal_the_pixel_path(survey: Registry) -> None:
    """Patch/tract → CCDs and CCD → patches/tracts read the overlap relations; with every
    extra column, the file columns and each filter they give what the pixel candidates and the
    exact test give for the same polygon (as ``region=``)."""
    names = [*EXTRA_COLUMNS["ccd"]]
    first = _one(survey, "SELECT instrument, band, mjd_tai_start, mjd_tai_end FROM visit "
                         "ORDER BY visit LIMIT 1")
    last = _one(survey, "SELECT band FROM visit WHERE band <> :b ORDER BY visit LIMIT 1",
                b=first.band)
    filters: list[dict[str, Any]] = [
        {}, {"band": first.band}, {"instrument": first.instrument},
        {"time": (first.mjd_tai_start, first.mjd_tai_end)},
        {"band": [first.band, last.band], "instrument": first.instrument,
         "time": (first.mjd_tai_start - 1.0, first.mjd_tai_end)},
    ]
    stored: list[tuple[str, tuple[Any, ...]]] = [("tract", ("testmap", 0))]
    stored += [("patch", ("testmap", 0, p)) for p in range(9)]
    compared = 0
    for kind, key in stored:
        for inner in (False, True):
            polygon = (survey.patch_region(*key, inner=inner) if kind == "patch"
                       else survey.tract_region(*key, inner=inner))
            for given in filters:
                by_relation = survey.find_ccds(**{kind: key}, inner=inner, columns=names,
                                               dataset_type="raw", **given)
                by_pixels = survey.find_ccds(region=polygon, columns=names, dataset_type="raw",
                                             **given)
                assert by_relation == by_pixels, (kind, key, inner, given)
                assert survey.find_ccds(**{kind: key}, inner=inner, **given) == list(by_pixels)
                compared += len(by_pixels)
    assert compared > 100
    tiles = 0
    for ref in survey.find_ccds(cone=(10.9, -4.4, 2.0)):
        footprint = survey.ccd_region(*ref)
        for inner in (False, True):
            for skymap in (None, "testmap"):
                patches = survey.find_patches(ccd=ref, inner=inner, skymap=skymap,
                                              columns=[*EXTRA_COLUMNS["patch"]])
                assert patches == survey.find_patches(region=footprint, inner=inner,
                                                      skymap=skymap,
                                                      columns=[*EXTRA_COLUMNS["patch"]])
                tracts = survey.find_tracts(ccd=ref, inner=inner, skymap=skymap,
                                            columns=[*EXTRA_COLUMNS["tract"]])
                assert tracts == survey.find_tracts(region=footprint, inner=inner,
                                                    skymap=skymap,
                                                    columns=[*EXTRA_COLUMNS["tract"]])
                tiles += len(patches) + len(tracts)
    assert tiles > 50


def test_stored_footprint_searches_refuse_unknown_and_malformed_keys(survey: Registry) -> None:
    with pytest.raises(NotFoundError, match=r"patch \('testmap', 0, 99\)"):
        survey.find_ccds(patch=("testmap", 0, 99), columns=["band"])
    with pytest.raises(NotFoundError, match=r"tract \('nosuch', 0\)"):
        survey.find_ccds(tract=("nosuch", 0))
    with pytest.raises(NotFoundError, match=r"CCD \('Cam', 99, 0\)"):
        survey.find_patches(ccd=("Cam", 99, 0))
    with pytest.raises(QueryError, match=r"patch: expected \(skymap, tract, patch\)"):
        survey.find_ccds(patch=("testmap", 0))
    with pytest.raises(QueryError, match=r"ccd: expected \(instrument, visit, detector\)"):
        survey.find_tracts(ccd=("Cam", "one", 0))
    with pytest.raises(QueryError, match="give exactly one search region"):
        survey.find_ccds(patch=("testmap", 0, 1), cone=(10.9, -4.4, 0.1))
