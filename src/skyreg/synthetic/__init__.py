"""Synthetic survey generator: writes survey manifest directories (format version 1).

Used by ``skyreg demo`` for a small realistic survey and by the benchmarks for large ones;
``python -m skyreg.synthetic OUT --visits N --seed S`` is the command-line entry point.
"""

from __future__ import annotations

from .survey import FORMAT_VERSION, MANIFEST_FILES, SurveySpec, SurveySummary, generate_survey

__all__ = ["FORMAT_VERSION", "MANIFEST_FILES", "SurveySpec", "SurveySummary", "generate_survey"]
