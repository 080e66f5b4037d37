"""Where the result types used to live; they are :mod:`skyreg.search.results` now (kept so that
``from skyreg.registry.results import CcdRef`` goes on working)."""

from skyreg.search.results import (
    CcdRef,
    DatasetRef,
    PatchRef,
    ResultList,
    ResultTable,
    TractRef,
)

__all__ = ["CcdRef", "DatasetRef", "PatchRef", "ResultList", "ResultTable", "TractRef"]
