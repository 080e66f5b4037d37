"""The package layers of ``[tool.importlinter]`` hold: no lower layer imports a higher one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_layers_are_kept() -> None:
    pytest.importorskip("importlinter")
    command = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([command, str(ROOT / "pyproject.toml")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_ingest_does_not_import_the_registry() -> None:
    """Spelled out because it is the rule most tempting to break: ingest sits below the
    registry facade and reaches the searches through skyreg.search."""
    for path in (ROOT / "src" / "skyreg" / "ingest").rglob("*.py"):
        assert "skyreg.registry" not in path.read_text(), path


def test_importing_the_searches_builds_no_sql() -> None:
    """Statements are composed and compiled on first use, never at import."""
    code = (
        "import skyreg.registry, skyreg.search.ccds, skyreg.search.tiles, "
        "skyreg.search.datasets, skyreg.ingest.coadd_ingest\n"
        "from skyreg.search import sql\n"
        "assert sql.compiled.cache_info().currsize == 0, sql.compiled.cache_info()\n"
        "assert sql._dialect.cache_info().currsize == 0\n"
        "from skyreg.search import statements\n"
        "text = sql.compiled(statements.ccd_candidates, statements.CcdFilters())\n"
        "assert 'unnest' in text and sql.compiled.cache_info().currsize == 1\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
