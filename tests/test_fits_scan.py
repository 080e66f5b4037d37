"""scan_file: records from each built-in profile, HDU selection rules, problems, checksums."""

from __future__ import annotations

import hashlib
import pathlib
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS

from fits_builder import (
    compress,
    set_raw_card,
    write_calexp,
    write_compressed,
    write_mef,
    write_not_fits,
    write_truncated,
)
from skyreg.fits import (
    ProfileError,
    load_profile,
    scan_coadd_file,
    scan_file,
)
from skyreg.fits.profiles import parse_profile
from skyreg.geometry.polygons import polygon_from_vertices, unit_vectors

DOC = Path(__file__).parents[1] / "docs" / "instrument-profiles.md"
LSST_VISIT = 2024080100012


def _contains_image(path: Path, hdu: int, ra: list[float], dec: list[float]) -> bool:
    with fits.open(path) as hdul, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header = hdul[hdu].header
        wcs = WCS(header)
        width, height = header["NAXIS1"], header["NAXIS2"]
    xs, ys = np.meshgrid(np.arange(0.5, width + 0.51, 0.5), np.arange(0.5, height + 0.51, 0.5))
    world = wcs.all_pix2world(np.stack([xs.ravel(), ys.ravel()], axis=1), 1)
    xyz = unit_vectors(world[:, 0], world[:, 1])
    return bool(polygon_from_vertices(ra, dec).contains(xyz[:, 0], xyz[:, 1], xyz[:, 2]).all())


def test_decam_mef(tmp_path: Path) -> None:
    path = write_mef(tmp_path / "decam.fits", "DECam", visit=812345, detectors=[1, 2, 3],
                     band="Y", mjd=60300.1, exptime=90.0, boresight=(359.9, -30.0),
                     distortion="tpv")
    scan = scan_file(path)
    assert scan.problems == [] and scan.profile == "DECam" and scan.format == "fits"
    assert scan.size == path.stat().st_size
    assert [r.detector for r in scan.records] == [1, 2, 3]
    record = scan.records[0]
    assert (record.instrument, record.visit, record.band) == ("DECam", 812345, "y")
    assert record.physical_filter.startswith("Y DECam")
    assert record.detector_name == "S1" and record.extname == "S1"
    # MJD-OBS is UTC; records hold TAI (37 s ahead since 2017).
    assert record.mjd_tai_start == pytest.approx(60300.1 + 37 / 86400, abs=1e-9)
    assert record.mjd_tai_end - record.mjd_tai_start == pytest.approx(90 / 86400)
    assert record.day_obs == 20231221  # 02:24 UTC belongs to the night of the 21st
    assert record.seq_num == 812345
    assert record.boresight_ra == pytest.approx(359.9, abs=1e-4)
    assert record.boresight_dec == pytest.approx(-30.0, abs=1e-4)
    assert record.rotation_deg is None
    assert record.wcs_summary.naxis1 == 64 and record.wcs_summary.ctype[0] == "RA---TPV"
    for r in scan.records:
        assert _contains_image(path, r.hdu, r.footprint_ra, r.footprint_dec)


def test_hsc_and_lsstcam(tmp_path: Path) -> None:
    hsc = scan_file(write_mef(tmp_path / "hsc.fits", "HSC", visit=12346, detectors=[49],
                              band="i", rotation_deg=30.0, mjd=57000.5))
    assert hsc.problems == [] and hsc.profile == "HSC"
    r = hsc.records[0]
    assert (r.instrument, r.visit, r.detector, r.band, r.physical_filter) == (
        "HSC", 12346, 49, "i", "HSC-I")
    assert r.rotation_deg == pytest.approx(30.0)
    assert r.day_obs == 20141209
    expected = Time(57000.5, format="mjd", scale="utc").tai.mjd
    assert r.mjd_tai_start == pytest.approx(expected, abs=1e-8)

    lsst = scan_file(write_mef(tmp_path / "lsst.fits", "LSSTCam", visit=LSST_VISIT,
                               detectors=[94, 0, 188], band="z", rotation_deg=-10.0))
    assert lsst.problems == [] and lsst.profile == "LSSTCam"
    assert [(r.detector, r.detector_name) for r in lsst.records] == [
        (94, "R22_S11"), (0, "R01_S00"), (188, "R43_S22")]
    r = lsst.records[0]
    assert (r.visit, r.day_obs, r.seq_num, r.band, r.physical_filter) == (
        LSST_VISIT, 20240801, 12, "z", "z_57")
    assert r.mjd_tai_start == 60300.1  # TIMESYS = TAI: no conversion
    assert r.rotation_deg == pytest.approx(350.0)


def test_profile_by_name_and_mismatch(tmp_path: Path) -> None:
    path = write_mef(tmp_path / "d.fits", "DECam", detectors=[1])
    assert scan_file(path, profile="decam").records
    scan = scan_file(path, profile="HSC")
    assert not scan.records
    assert scan.problems[0].reason == "missing keyword EXP-ID (visit)"
    with pytest.raises(ProfileError, match="unknown instrument profile"):
        scan_file(path, profile="NoSuchCam")
    unknown = write_mef(tmp_path / "u.fits", "DECam", detectors=[1],
                        extra_primary={"INSTRUME": "Mystery"})
    scan = scan_file(unknown)
    assert scan.problems[0].hdu is None
    assert "no built-in instrument profile matches" in scan.problems[0].reason


def test_calexp_uses_image_plane_only(tmp_path: Path) -> None:
    scan = scan_file(write_calexp(tmp_path / "calexp.fits"))
    assert scan.problems == []
    assert scan.skipped == [(2, "auxiliary plane MASK"), (3, "auxiliary plane VARIANCE")]
    assert [(r.hdu, r.extname, r.detector) for r in scan.records] == [(1, "IMAGE", 94)]


def test_compressed_image(tmp_path: Path) -> None:
    scan = scan_file(write_compressed(tmp_path / "ccd.fits.fz", detector=5))
    assert scan.problems == []
    (record,) = scan.records
    assert record.detector == 5
    assert (record.wcs_summary.naxis1, record.wcs_summary.naxis2) == (64, 128)


@pytest.mark.parametrize("kind", ["gzip", "bzip2"])
def test_whole_file_compression_reads_like_the_plain_file(tmp_path: Path, kind: Any) -> None:
    plain = write_mef(tmp_path / "decam.fits", "DECam", visit=812345, detectors=[1, 2, 3],
                      boresight=(359.9, -30.0), distortion="tpv")
    with fits.open(plain) as hdul:
        hdul.writeto(tmp_path / "sum.fits", checksum=True)
    expected = scan_file(tmp_path / "sum.fits")
    packed = compress(tmp_path / "sum.fits", kind)
    scan = scan_file(packed)
    assert scan.problems == [] and scan.records == expected.records
    assert scan.format == {"gzip": "fits.gz", "bzip2": "fits.bz2"}[kind]
    assert scan.size == packed.stat().st_size < expected.size
    # header: the FITS cards, the same value as the uncompressed file's; sha256: stored bytes.
    assert scan.checksum is not None and scan.checksum == expected.checksum
    digest = hashlib.sha256(packed.read_bytes()).hexdigest()
    assert scan_file(packed, checksum="sha256").checksum == f"sha256:{digest}"
    cut = tmp_path / f"cut.{kind}"
    cut.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    (problem,) = scan_file(cut).problems
    assert problem.reason.startswith("truncated: the ") and "stream ends" in problem.reason


def test_bad_files_one_line_each(tmp_path: Path) -> None:
    def reasons(path: Path) -> list[tuple[int | None, str]]:
        scan = scan_file(path)
        return [(p.hdu, p.reason) for p in scan.problems]

    assert reasons(write_not_fits(tmp_path / "text.fits")) == [(None, "not a FITS file")]
    (tmp_path / "empty.fits").write_bytes(b"")
    assert reasons(tmp_path / "empty.fits") == [(None, "not a FITS file (empty)")]
    truncated = scan_file(write_truncated(tmp_path / "cut.fits"))
    assert truncated.records == [] and truncated.problems[0].hdu == 1
    assert re.fullmatch(r"truncated: header of HDU 1 ends after card \d+ without an END card",
                        truncated.problems[0].reason)
    data_cut = write_mef(tmp_path / "datacut.fits", detectors=[1, 2])
    data_cut.write_bytes(data_cut.read_bytes()[:-2000])
    assert reasons(data_cut)[0][1].startswith("truncated: data of HDU 2")
    assert reasons(tmp_path / "missing.fits")[0][1].startswith("unreadable")

    missing = write_mef(tmp_path / "nokey.fits", detectors=[1, 2], drop_keywords=["CCDNUM"])
    assert reasons(missing) == [(1, "missing keyword CCDNUM (detector)"),
                                (2, "missing keyword CCDNUM (detector)")]
    folded = scan_file(write_mef(tmp_path / "fold.fits", detectors=[1, 2, 3],
                                 bad_wcs_detectors=[2]))
    assert [r.detector for r in folded.records] == [1, 3]
    assert folded.problems[0].hdu == 2
    assert folded.problems[0].reason.startswith("WCS does not invert")
    assert str(folded.problems[0]).startswith(f"{tmp_path / 'fold.fits'}[2]: WCS does not")


def test_image_without_wcs_rule(tmp_path: Path) -> None:
    # A CCD (its detector keyword is there) without a celestial WCS is a problem: the file is
    # refused rather than registered without it.
    mixed = scan_file(write_mef(tmp_path / "mixed.fits", detectors=[1, 2], no_wcs_detectors=[2]))
    assert [(p.hdu, p.reason) for p in mixed.problems] == [(2, "no celestial WCS")]
    assert mixed.skipped == []
    none = scan_file(write_mef(tmp_path / "none.fits", detectors=[1], no_wcs_detectors=[1]))
    assert [(p.hdu, p.reason) for p in none.problems] == [(1, "no celestial WCS")]
    # An image that is not a CCD of the profile (no CCDNUM) and has no WCS is passed over,
    # and counted, next to the CCDs; alone it is a problem, so a file never gives nothing.
    path = write_mef(tmp_path / "focus.fits", detectors=[1, 2])
    with fits.open(path) as hdul:
        focus = fits.ImageHDU(np.zeros((8, 8), dtype=np.int16), name="FOCUS")
        fits.HDUList([*hdul, focus]).writeto(path, overwrite=True)
    scan = scan_file(path)
    assert scan.problems == [] and [r.detector for r in scan.records] == [1, 2]
    assert scan.skipped == [(3, "no celestial WCS and no detector keyword")]
    lone = tmp_path / "lone.fits"
    with fits.open(path) as hdul:
        fits.HDUList([hdul[0], hdul[3]]).writeto(lone)
    assert [(p.hdu, p.reason) for p in scan_file(lone).problems] == [(1, "no celestial WCS")]


@pytest.mark.parametrize(("keyword", "text", "reason"), [
    ("CRVAL1", "NaN", "invalid WCS: CRVAL1 = NaN is not a number"),
    ("CRPIX2", "1E999", "invalid WCS: CRPIX2 = inf is not finite"),
    ("CD1_1", "'0.001'", "invalid WCS: CD1_1 = '0.001' is not a number"),
])
def test_unusable_wcs_values_are_problems(tmp_path: Path, keyword: str, text: str,
                                          reason: str) -> None:
    """wcslib passes over such cards and uses its defaults: the CCD would land elsewhere."""
    path = set_raw_card(write_mef(tmp_path / "w.fits", detectors=[1, 2]), 2, keyword, text)
    scan = scan_file(path)
    assert [(p.hdu, p.reason) for p in scan.problems] == [(2, reason)]


def test_unparsable_cards_are_problems_not_exceptions(tmp_path: Path) -> None:
    path = set_raw_card(write_mef(tmp_path / "t.fits", detectors=[1]), 0, "MJD-OBS", "NaN")
    (problem,) = scan_file(path).problems
    assert problem.reason == "keyword MJD-OBS value 'NaN' is not a valid FITS value (mjd_start)"
    path = set_raw_card(write_mef(tmp_path / "e.fits", detectors=[1]), 1, "EXTNAME", "N4 x")
    (problem,) = scan_file(path).problems
    assert problem.reason == "keyword EXTNAME value 'N4 x' is not a valid FITS value"
    path = write_mef(tmp_path / "r.fits", "LSSTCam", visit=LSST_VISIT, detectors=[1])
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["MJD-END"] = hdul[0].header["MJD-BEG"] - 0.01
    (problem,) = scan_file(path).problems
    assert problem.reason.startswith("exposure ends (MJD ") and "before it starts" in \
        problem.reason


def test_checksums(tmp_path: Path) -> None:
    path = write_mef(tmp_path / "a.fits", detectors=[1])
    assert scan_file(path).checksum is None
    assert scan_file(path, checksum="none").checksum is None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert scan_file(path, checksum="sha256").checksum == f"sha256:{digest}"
    with fits.open(path) as hdul:
        hdul.writeto(tmp_path / "b.fits", checksum=True)
    first = scan_file(tmp_path / "b.fits").checksum
    assert first is not None and first.startswith("fits-checksum:sha1:")
    with fits.open(tmp_path / "b.fits") as hdul:
        hdul[1].data = hdul[1].data + 1
        hdul.writeto(tmp_path / "c.fits", checksum=True)
    assert scan_file(tmp_path / "c.fits").checksum not in (None, first)


def test_pixel_data_is_never_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_mef(tmp_path / "big.fits", detectors=range(12), shape=(1024, 2048),
                     data="sparse")
    assert path.stat().st_size > 50_000_000
    read_bytes = 0
    original = pathlib.Path.open

    class Counting:
        def __init__(self, stream: Any) -> None:
            self.stream = stream

        def read(self, size: int = -1) -> bytes:
            nonlocal read_bytes
            data = self.stream.read(size)
            read_bytes += len(data)
            return data

        def __getattr__(self, name: str) -> Any:
            return getattr(self.stream, name)

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *args: object) -> None:
            self.stream.close()

    def counting_open(self: Path, *args: Any, **kwargs: Any) -> Counting:
        return Counting(original(self, *args, **kwargs))

    monkeypatch.setattr(pathlib.Path, "open", counting_open)
    scan = scan_file(path)
    assert len(scan.records) == 12
    assert read_bytes < 13 * 3 * 2880 + 1000  # headers only: a few blocks per HDU


def test_coadd_mode(tmp_path: Path) -> None:
    path = write_mef(tmp_path / "coadd.fits", detectors=[1], extra_primary={"BAND": "g"},
                     drop_keywords=["EXPNUM", "CCDNUM"])
    scan = scan_coadd_file(path)
    assert scan.problems == []
    (record,) = scan.records
    assert record.band == "g" and len(record.footprint_ra) >= 4


def _doc_profile() -> str:
    text = DOC.read_text()
    found = re.search(r"<!-- example-profile -->\s*```yaml\n(.*?)```", text, re.S)
    assert found, "docs/instrument-profiles.md lacks the example profile"
    return found.group(1)


def test_documented_example_profile(tmp_path: Path) -> None:
    profile_path = tmp_path / "mycam.yaml"
    profile_path.write_text(_doc_profile())
    profile = load_profile(profile_path)
    path = write_mef(tmp_path / "mycam.fits", "DECam", detectors=[7],
                     extra_primary={"INSTRUME": "MyCam", "RUNID": "run-00042",
                                    "FILTNAME": "Sloan r'", "OBSSTART": "2024-03-01T23:59:00"},
                     drop_keywords=["EXPNUM", "FILTER", "MJD-OBS", "DATE-OBS"])
    with fits.open(path, mode="update") as hdul:
        hdul[1].header["CHIPID"] = "chip07"
    scan = scan_file(path, profile=str(profile_path))
    assert scan.problems == [], scan.problems
    (r,) = scan.records
    assert (r.instrument, r.visit, r.detector, r.detector_name, r.band) == (
        "MyCam", 42, 7, "chip07", "r")
    assert r.day_obs == 20240301 and r.seq_num == 42
    assert r.mjd_tai_start == pytest.approx(Time("2024-03-01T23:59:00", scale="utc").tai.mjd)
    assert scan_file(path, profile=profile).records == scan.records


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"colour": 1}, r"example\.yaml: colour: unknown key"),
        ({"fields": {"visit": "EXPNUM"}}, r"example\.yaml: fields\.detector: required field"),
        ({"fields.band": {"keywords": "F", "regex": "("}}, r"fields\.band\.regex: invalid regex"),
        ({"fields.band": {"keywords": "F", "type": "int"}}, r"fields\.band\.type: 'int' gives"),
        ({"fields.seq_num": {"template": "{visit}"}, "fields.visit": {"template": "{seq_num}"}},
         r"circular dependency"),
        ({"fields.band": {"template": "{h.__class__}"}}, r"attribute access"),
    ],
)
def test_profile_validation_names_file_and_key(patch: dict[str, Any], message: str) -> None:
    import yaml

    data = yaml.safe_load(_doc_profile())
    for key, value in patch.items():
        if key.startswith("fields."):
            data["fields"][key.split(".", 1)[1]] = value
        else:
            data[key] = value
    with pytest.raises(ProfileError, match=message):
        parse_profile(yaml.safe_dump(data), "example.yaml")


def test_lsstcam_unknown_detector_is_a_problem(tmp_path: Path) -> None:
    path = write_mef(tmp_path / "l.fits", "LSSTCam", visit=LSST_VISIT, detectors=[3])
    with fits.open(path, mode="update") as hdul:
        hdul[1].header["CCDSLOT"] = "S99"
    (problem,) = scan_file(path).problems
    assert problem.reason == (
        "keyword template value 'R01_S99' is not in the profile's map (detector)"
    )
