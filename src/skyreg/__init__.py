"""skyreg: a spatially indexed metadata registry for astronomical survey data.

>>> from skyreg import Registry
>>> reg = Registry.connect()              # embedded PostgreSQL in $SKYREG_HOME
>>> reg.find_ccds(patch=("rings", 9813, 40))  # doctest: +SKIP

The registry API is imported on first use, so ``import skyreg`` (and every CLI command) does
not pay for SQLAlchemy, sphgeom and astropy until they are needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from skyreg.errors import ConflictError, InputError, NotFoundError, SkyregError

if TYPE_CHECKING:
    from skyreg.registry import (
        CcdRef,
        DatasetRef,
        PatchRef,
        QueryError,
        Registry,
        ResultList,
        ResultTable,
        TractRef,
    )

__version__ = "0.1.0"

_LAZY = {"CcdRef", "DatasetRef", "PatchRef", "QueryError", "Registry", "ResultList",
         "ResultTable", "TractRef"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from skyreg import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'skyreg' has no attribute {name!r}")


__all__ = [
    "CcdRef",
    "ConflictError",
    "DatasetRef",
    "InputError",
    "NotFoundError",
    "PatchRef",
    "QueryError",
    "Registry",
    "ResultList",
    "ResultTable",
    "SkyregError",
    "TractRef",
    "__version__",
]
