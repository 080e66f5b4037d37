"""The loader after crashes and with any planner statistics, on a real server.

A rolled-back run leaves tables that are empty but vacuumed (``reltuples = 0``), and so is a
fresh registry once autovacuum or an ``ANALYZE`` has seen it. Plans must not depend on that:
the insert step never joins the table it fills, a killed client's backend stops promptly, and
the exclusive locks of a bulk load last no longer than its inserts.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text

from manifest_builder import box, survey_spec, write_manifest
from skyreg import Registry
from skyreg.ingest.loader import INGEST_LOCK_KEY
from skyreg.synthetic.survey import SurveySpec, generate_survey
from test_ingest import small_spec, table_counts

REGISTRY_TABLES = ("instrument", "detector", "visit", "ccd", "ccd_pixel", "skymap", "tract",
                   "tract_pixel", "patch", "patch_pixel", "ccd_dataset", "patch_dataset")


def _vacuum_analyze(url: str) -> None:
    """What autovacuum does to the empty tables a rolled-back run leaves: reltuples = 0."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for table in REGISTRY_TABLES:
            connection.execute(text(f"VACUUM (ANALYZE) {table}"))
    engine.dispose()


@pytest.fixture
def insert_plans(registry: Registry) -> Iterator[list[tuple[str, list[str]]]]:
    """(target, EXPLAIN lines) of every INSERT into a registry table the loader runs.

    EXPLAIN runs on the loader's own connection, inside its transaction, just before the
    statement: the plan is the one the statement gets, with the staging tables as they are.
    """
    plans: list[tuple[str, list[str]]] = []

    def explain(connection: Any, cursor: Any, statement: str, parameters: Any,
                context: Any, executemany: bool) -> None:
        found = re.match(r"\s*INSERT INTO (\w+)", statement)
        if found is None or found.group(1) not in REGISTRY_TABLES or executemany:
            return
        with connection.connection.driver_connection.cursor() as explaining:
            explaining.execute("EXPLAIN " + statement, parameters)
            plans.append((found.group(1), [row[0] for row in explaining.fetchall()]))

    engine: Engine = registry.engine
    event.listen(engine, "before_cursor_execute", explain)
    yield plans
    event.remove(engine, "before_cursor_execute", explain)


def _reads_target(target: str, plan: list[str]) -> list[str]:
    """Plan lines below the Insert node that scan (or join against) the target itself."""
    return [line for line in plan[1:]
            if re.search(rf"\bon {target}\b", line) or "Anti Join" in line]


def test_insert_plans_never_read_the_target_whatever_the_statistics(
        registry: Registry, database_url: str, tmp_path: Path,
        insert_plans: list[tuple[str, list[str]]]) -> None:
    _vacuum_analyze(database_url)  # empty tables that the planner knows to be empty
    registry.ingest_manifest(write_manifest(tmp_path / "a", small_spec(40)))
    first = list(insert_plans)
    assert {target for target, _ in first} >= {"visit", "ccd", "ccd_pixel", "patch"}
    _vacuum_analyze(database_url)  # small tables, about to grow a lot
    report = registry.ingest_manifest(write_manifest(tmp_path / "b", small_spec(400)))
    assert report.counts["ccd"].inserted == 360
    later = insert_plans[len(first):]
    assert {target for target, _ in later} >= {"visit", "ccd", "ccd_pixel"}
    for target, plan in insert_plans:
        assert not _reads_target(target, plan), "\n".join(plan)


_SLEEPING_LOAD = """
import sys
from sqlalchemy import create_engine, text
from skyreg.ingest.loader import load
engine = create_engine(sys.argv[1])
def before(connection):
    print("locked", flush=True)
    connection.execute(text("SELECT pg_sleep(120)"))  # stands for a long INSERT
load(engine, [], before=before)
"""


def _backends(engine: Engine, like: str) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND query LIKE :like"), {"like": like}).scalars())


def _wait_until(condition: Callable[[], bool], seconds: float) -> float:
    """Seconds until ``condition()`` held; fails the test after ``seconds``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            pytest.fail(f"condition not met after {seconds} s")
        time.sleep(0.02)
    return time.monotonic() - started


def test_killed_clients_statement_stops_and_frees_the_ingest_lock(
        registry: Registry, database_url: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", _SLEEPING_LOAD, database_url],
                             stdout=subprocess.PIPE, text=True)
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        _wait_until(lambda: bool(_backends(engine, "SELECT pg_sleep%")), 30)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        # The server notices the closed connection while the statement runs, cancels it
        # and releases the ingest lock (without that: two more minutes).
        _wait_until(lambda: not _backends(engine, "SELECT pg_sleep%"), 5)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                      {"key": INGEST_LOCK_KEY}).scalar_one()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        engine.dispose()


def _insert_phase_backend(engine: Engine) -> bool:
    """Whether an ingest backend is inserting into a registry table: INSERT, or the TRUNCATE
    and COPY of a batch copied straight into an empty table, or their DDL."""
    return any(_backends(engine, pattern) for pattern in (
        "INSERT INTO ccd%", "INSERT INTO patch%", "ALTER TABLE%", "TRUNCATE%", 'COPY "ccd"%',
        'COPY "patch"%'))


@pytest.mark.slow
def test_rerun_after_kill_and_vacuum_takes_the_time_of_a_clean_run(
        database_factory: Callable[[], str], tmp_path: Path) -> None:
    # 28,350 CCDs and 8,400 patches: with a nested-loop anti join against the growing table
    # (the plan the old insert got from these statistics) the re-run took 11.8 s against a
    # clean run's 3.3 s on an idle machine, and read 16 million pages against 0.5 million.
    root = tmp_path / "survey"
    generate_survey(root, SurveySpec(n_visits=150, width_deg=8.0, height_deg=6.0))
    crashed, clean = database_factory(), database_factory()
    Registry.connect(crashed).close()
    engine = create_engine(crashed, isolation_level="AUTOCOMMIT")
    env = {**os.environ, "SKYREG_HOME": str(tmp_path / "home")}
    child = subprocess.Popen([sys.executable, "-m", "skyreg", "--db", crashed, "ingest",
                              "manifest", "--no-progress", str(root)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        _wait_until(lambda: _insert_phase_backend(engine) or child.poll() is not None, 120)
        assert child.poll() is None, "the ingest ended before it was killed"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        killed = time.monotonic()
        _wait_until(lambda: not _backends(engine, "%"), 10)
        backend_gone = time.monotonic() - killed
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        engine.dispose()
    assert table_counts(crashed)["ccd"] == 0
    _vacuum_analyze(crashed)

    runs = {}
    for name, url in (("re-run", crashed), ("clean run", clean)):
        pages = _pages_read(url)
        with Registry.connect(url) as registry:
            seconds = registry.ingest_manifest(root).seconds
        runs[name] = (seconds, _pages_read(url) - pages)
    print(f"backend gone {backend_gone:.1f} s after the kill; "
          + "; ".join(f"{name} {s:.1f} s, {p:,} pages read" for name, (s, p) in runs.items()))
    after, expected = table_counts(crashed), table_counts(clean)
    after.pop("ccd_id_seq"), expected.pop("ccd_id_seq")  # the killed run used up some ids
    assert after == expected
    (rerun, rerun_pages), (fresh, fresh_pages) = runs["re-run"], runs["clean run"]
    # Pages read do not depend on the machine's load; seconds do, hence the wider margin.
    assert rerun_pages < 1.5 * fresh_pages, runs
    assert rerun < 2 * fresh + 3.0, runs


def _pages_read(url: str) -> int:
    """Shared-buffer page reads (hits and misses) in that database so far, by all backends.

    Waits for the other backends to end first: they flush their counts as they exit.
    (Autocommit: each statement gets a fresh snapshot of the statistics.)
    """
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        _wait_until(lambda: not connection.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")).scalar_one(), 10)
        pages = connection.execute(text(
            "SELECT blks_hit + blks_read FROM pg_stat_database "
            "WHERE datname = current_database()")).scalar_one()
    engine.dispose()
    return int(pages)


_EXCLUSIVE_LOCKS = text("""
    SELECT a.state, a.query FROM pg_locks l
    JOIN pg_stat_activity a USING (pid)
    JOIN pg_class c ON c.oid = l.relation
    WHERE l.mode = 'AccessExclusiveLock' AND l.granted AND c.relpersistence = 'p'
      AND a.datname = current_database() AND a.pid <> pg_backend_pid()
""")


def test_exclusive_locks_are_taken_only_for_the_inserts(
        registry: Registry, database_url: str, tmp_path: Path) -> None:
    # A bulk load into empty tables rebuilds their indexes, which takes exclusive locks that
    # block readers. Staging (COPY of every kind) must be over before the first is taken.
    ccds = [box(10.0 + 0.05 * (i % 100), -5.0 + 0.05 * (i // 100), 0.02) for i in range(5000)]
    tiles = [[box(10.0 + 0.01 * (i % 200), -5.0 + 0.01 * (i // 200), 0.004)
              for i in range(20_000)]]
    spec = survey_spec(ccds, tract_polygons=[box(12.5, -2.5, 3.0)], patch_polygons=tiles)
    root = write_manifest(tmp_path / "m", spec)
    samples: list[tuple[float, str, str]] = []
    done = threading.Event()

    def ingest() -> None:
        try:
            registry.ingest_manifest(root)
        finally:
            done.set()

    worker = threading.Thread(target=ingest)
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as monitor:
        worker.start()
        while not done.is_set():
            for state, query in monitor.execute(_EXCLUSIVE_LOCKS):
                samples.append((time.monotonic(), state, query))
            time.sleep(0.005)
    worker.join()
    engine.dispose()
    assert table_counts(database_url)["patch"] == 20_000
    assert samples, "no exclusive lock seen: the test did not watch a bulk load"
    # The COPYs of the inserting step stream rows laid out before the locks: the overlap
    # pairs (prepare_overlaps), and the tiles copied straight into their empty tables (the
    # rows of the insert itself, FREEZE). No staging COPY happens under the locks.
    copies = {query for _, state, query in samples
              if state == "active" and query.startswith("COPY")}
    while_copying = {query[:60] for query in copies
                     if not query.startswith(('COPY "ccd_patch_overlap" (',
                                              'COPY "ccd_tract_overlap" ('))
                     and not (query.startswith(('COPY "patch" (', 'COPY "patch_pixel" ('))
                              and "FREEZE" in query)}
    assert not while_copying, while_copying
    # Between two statements of the insert step the client answers at once; a long idle
    # time under the lock would be client-side work (pixel coverage, say). The bound leaves
    # room for a busy machine's scheduling delays.
    longest, since = 0.0, None
    for moment, state, _ in samples:
        if not state.startswith("idle"):
            since = None
            continue
        since = moment if since is None else since
        longest = max(longest, moment - since)
    assert longest < 2.0, longest
