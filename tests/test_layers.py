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
