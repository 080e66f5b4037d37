"""The README's Python example runs as written (on a synthetic survey)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fits_builder import write_mef
from skyreg.synthetic import SurveySpec, generate_survey

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs(database_url: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks, "README.md has no Python example"
    survey = tmp_path / "survey"
    generate_survey(survey, SurveySpec(n_visits=100, width_deg=8.0, height_deg=6.0))
    raw = tmp_path / "raw"
    raw.mkdir()
    for visit in range(3):
        write_mef(raw / f"c4d_{visit}.fits", visit=700 + visit,
                  boresight=(150.1, 2.2 + 0.1 * visit))
    # Registry.connect() with no URL reads SKYREG_DATABASE_URL before using the embedded server.
    monkeypatch.setenv("SKYREG_DATABASE_URL", database_url)
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(block.replace("path/to/survey", str(survey)).replace("path/to/raw", str(raw)),
             namespace)
    ccds = namespace["ccds"]
    assert len(ccds) > 0  # type: ignore[arg-type]
    report = namespace["report"]
    assert report.ok and report.counts["ccd"].inserted == 12  # type: ignore[attr-defined]
