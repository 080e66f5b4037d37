"""skyreg: a spatially indexed metadata registry for astronomical survey data.

>>> from skyreg import Registry
>>> reg = Registry.connect()              # embedded PostgreSQL in $SKYREG_HOME
>>> reg.find_ccds(patch=("rings", 9813, 40))  # doctest: +SKIP
"""

from skyreg.errors import ConflictError, InputError, NotFoundError, SkyregError
from skyreg.registry import CcdRef, PatchRef, QueryError, Registry, ResultList, TractRef

__version__ = "0.1.0"

__all__ = [
    "CcdRef",
    "ConflictError",
    "InputError",
    "NotFoundError",
    "PatchRef",
    "QueryError",
    "Registry",
    "ResultList",
    "SkyregError",
    "TractRef",
    "__version__",
]
