"""The registry API: :class:`Registry` and its results (rows and columnar tables)."""

from skyreg.registry.registry import Registry, parse_pixelization
from skyreg.search.results import (
    CcdRef,
    DatasetRef,
    PatchRef,
    ResultList,
    ResultTable,
    TractRef,
)
from skyreg.search.validation import QueryError

__all__ = ["CcdRef", "DatasetRef", "PatchRef", "QueryError", "Registry", "ResultList",
           "ResultTable", "TractRef", "parse_pixelization"]
