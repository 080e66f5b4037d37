"""The embedded server's memory settings follow the machine (and a container's limit)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skyreg.db import machine_memory
from skyreg.db.embedded.cluster import memory_settings

GIB = 2**30


@pytest.mark.parametrize(("memory", "shared", "cache"), [
    (0, "256MB", "2048MB"),             # unknown: what the server had before
    (512 * 2**20, "256MB", "2048MB"),   # a small machine keeps the floor
    (4 * GIB, "1024MB", "2048MB"),      # a quarter; the planner assumes half cached
    (6 * GIB, "1536MB", "3072MB"),
    (24 * GIB, "2048MB", "12288MB"),    # capped
    (256 * GIB, "2048MB", "131072MB"),
])
def test_settings_scale_with_memory(memory: int, shared: str, cache: str) -> None:
    assert memory_settings(memory) == {"shared_buffers": shared, "effective_cache_size": cache}


def physical() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def test_usable_memory_is_physical_memory_without_a_limit(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    unlimited = tmp_path / "memory.max"
    unlimited.write_text("max\n")
    monkeypatch.setattr(machine_memory, "_CGROUP_LIMITS", (unlimited, tmp_path / "absent"))
    assert machine_memory.usable_memory() == physical()


def test_a_cgroup_limit_caps_usable_memory(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    limit = tmp_path / "memory.max"
    limit.write_text(f"{GIB}\n")
    huge = tmp_path / "memory.limit_in_bytes"  # cgroup v1 writes a huge number for none
    huge.write_text("9223372036854771712\n")
    monkeypatch.setattr(machine_memory, "_CGROUP_LIMITS", (huge, limit))
    assert machine_memory.usable_memory() == min(GIB, physical())
