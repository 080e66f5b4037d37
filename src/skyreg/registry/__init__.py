"""The registry API: :class:`Registry` and its result rows."""

from skyreg.registry.registry import Registry, parse_pixelization
from skyreg.registry.results import CcdRef, PatchRef, ResultList, TractRef
from skyreg.registry.validation import QueryError

__all__ = ["CcdRef", "PatchRef", "QueryError", "Registry", "ResultList", "TractRef",
           "parse_pixelization"]
