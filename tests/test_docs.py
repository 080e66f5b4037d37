"""The README's examples run as written on the demo's data, and each search finds something."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fits_builder import write_mef
from skyreg import Registry
from skyreg.cli.main import cli, demo_spec
from skyreg.synthetic import generate_survey

README = Path(__file__).resolve().parent.parent / "README.md"

#: Commands that answer with rows. The others in the README (ingest, skymap register, sql)
#: name the reader's own files or open a shell.
SEARCHES = {"ccds", "patches", "tracts", "datasets"}
FINDERS = ("find_ccds", "find_patches", "find_tracts", "find_datasets")


def readme_shell_searches() -> list[list[str]]:
    """The search commands of the README's bash blocks, as argument lists (comments dropped)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["skyreg"] and (words[1] in SEARCHES or words[1:3] == ["db", "status"]):
                commands.append(words[1:])
    return commands


@pytest.fixture(scope="module")
def demo_url(database_factory: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[str]:
    survey = generate_survey(tmp_path_factory.mktemp("demo") / "survey", demo_spec())
    url = database_factory()
    with Registry.connect(url) as registry:
        registry.ingest_manifest(survey.out_dir)
    yield url


def test_readme_shell_searches_answer_on_the_demo_data(demo_url: str) -> None:
    commands = readme_shell_searches()
    assert len(commands) >= 9, commands
    runner = CliRunner()
    for words in commands:
        result = runner.invoke(cli, ["--db", demo_url, *words], catch_exceptions=False)
        assert result.exit_code == 0, (words, result.stderr)
        assert "warning:" not in result.stderr, (words, result.stderr)
        rows = json.loads(runner.invoke(cli, ["--db", demo_url, *words, "--format", "json"],
                                        catch_exceptions=False).stdout)
        assert (rows["ccds"] if isinstance(rows, dict) else len(rows)) >= 1, words


def test_readme_python_example_runs(database_url: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert blocks, "README.md has no Python example"
    survey = tmp_path / "survey"
    generate_survey(survey, demo_spec())
    raw = tmp_path / "raw"
    raw.mkdir()
    for visit in range(3):
        write_mef(raw / f"c4d_{visit}.fits", visit=700 + visit,
                  boresight=(150.1, 2.2 + 0.1 * visit))
    # Registry.connect() with no URL reads SKYREG_DATABASE_URL before using the embedded server.
    monkeypatch.setenv("SKYREG_DATABASE_URL", database_url)
    answers: list[tuple[str, int]] = []
    for name in FINDERS:
        original = getattr(Registry, name)

        def recording(self: Registry, *args: Any, _original: Any = original,
                      _name: str = name, **kwargs: Any) -> Any:
            result = _original(self, *args, **kwargs)
            answers.append((f"{_name}({args}, {kwargs})", len(result)))
            return result

        monkeypatch.setattr(Registry, name, recording)
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(block.replace("path/to/survey", str(survey)).replace("path/to/raw", str(raw)),
             namespace)
    assert len(answers) >= 6
    assert all(count > 0 for _, count in answers), answers
    report = namespace["report"]
    assert report.ok and report.counts["ccd"].inserted == 12  # type: ignore[attr-defined]
