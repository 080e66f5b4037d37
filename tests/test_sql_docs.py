"""Every ```sql block of docs/sql.md runs without error on a small synthetic registry."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from skyreg import Registry
from skyreg.synthetic import SurveySpec, generate_survey

DOC = Path(__file__).resolve().parent.parent / "docs" / "sql.md"
BLOCKS = re.findall(r"```sql\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


@pytest.fixture(scope="module")
def conn(database_factory: Any, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[psycopg.Connection[Any]]:
    # The demo's field: COSMOS, so tract 9813 and visit 2027010100042 exist.
    root = tmp_path_factory.mktemp("docs") / "survey"
    generate_survey(root, SurveySpec(n_visits=60, seed=1, width_deg=8.0, height_deg=6.0))
    url = database_factory()
    with Registry.connect(url) as registry:
        registry.ingest_manifest(root)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1),
                         autocommit=True) as connection:
        yield connection


def test_doc_has_examples() -> None:
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_sql_block_runs(conn: psycopg.Connection[Any], block: str) -> None:
    for statement in (s.strip() for s in block.split(";")):
        if statement:
            rows = conn.execute(statement).fetchall()
            if "skyreg_" in statement and "EXPLAIN" not in statement:
                assert rows, f"no rows from an example:\n{statement}"
