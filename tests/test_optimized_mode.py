"""Errors do not depend on ``assert``: representative failures under ``python -O``.

``-O`` strips assert statements, so a check written as one silently disappears in production
setups that run optimised. Each path below must still end in a SkyregError naming the input
(or, on the command line, a one-line error and a non-zero status).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from manifest_builder import box, survey_spec, write_manifest

SCRIPT = textwrap.dedent("""
    import math, sys
    assert False, "asserts are stripped under -O; this line must not raise"
    from skyreg import Registry
    from skyreg.errors import SkyregError
    from skyreg.geometry.hull import hull_vertices
    from skyreg.geometry.polygons import decode_polygon, polygon_from_vertices
    from skyreg.registry import parse_pixelization

    def expect(words, call, *args, **kwargs):
        try:
            call(*args, **kwargs)
        except SkyregError as err:
            assert_text = str(err)
            if words not in assert_text:
                sys.exit(f"{call.__name__}: {assert_text!r} lacks {words!r}")
            print("ok", words)
            return
        sys.exit(f"{call.__name__}{args}: no SkyregError")

    expect("pixelization 'htm20'", parse_pixelization, "htm20")
    expect("not an encoded polygon", decode_polygon, b"xyz")
    expect("not convex", polygon_from_vertices, [10, 11, 10, 11], [0, 0, 1, 1])
    expect("hemisphere", hull_vertices, [0, 120, 240, 0], [0, 0, 0, 10])
    with Registry.connect(sys.argv[1]) as registry:
        registry.ingest_manifest(sys.argv[2])
        expect("time: the range ends", registry.find_ccds, cone=(20, 1, 1), time=(2, 1))
        expect("give exactly one search region", registry.find_ccds)
        expect("description: contains a NUL", registry.register_dataset_type, "x", "ccd", "\\0")
        expect("is not in the registry", registry.find_patches, ccd=("TestCam", 1000, 99))
        expect("skymap: expected a name", registry.find_patches, cone=(1, 2, 3), skymap=5)
    from click.testing import CliRunner
    from skyreg.cli.main import cli
    for args, status, words in (
            (["db", "upgrade", "--pixelization", "htm20"], 1, "error: pixelization 'htm20'"),
            (["ccds", "--point", "1", "2", "--cone", "1", "2", "3"], 2, "give one search region"),
            (["ccds", "--cone", "1", "2", "3", "--time", "5", "4"], 1, "error: time: ")):
        result = CliRunner().invoke(cli, ["--db", sys.argv[1], *args])
        if result.exit_code != status or words not in result.stderr or result.exception and \
                not isinstance(result.exception, SystemExit):
            sys.exit(f"{args}: status {result.exit_code}, {result.stderr!r}")
        print("ok", words)
    print("done")
""")


def test_failures_are_skyreg_errors_under_python_o(database_url: str, tmp_path: Path) -> None:
    root = write_manifest(tmp_path / "m", survey_spec([box(20.0, 1.0, 0.1)], per_visit=1))
    done = subprocess.run([sys.executable, "-O", "-c", SCRIPT, database_url, str(root)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.endswith("done\n"), done.stdout + done.stderr
    assert done.stdout.count("ok ") == 12
