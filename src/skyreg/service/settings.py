"""The one settings object of the web service.

Everything a deployment may want to change — where the database is, the public base URL,
limits, CORS, the read-only role — is a field here. ``skyreg serve`` builds it from its options
and hands it to every worker process through one environment variable (JSON), because uvicorn
starts workers as fresh interpreters that import the app by name.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields

from skyreg.errors import SkyregError

SETTINGS_ENV = "SKYREG_SERVICE_SETTINGS"


class SettingsError(SkyregError, ValueError):
    """A service setting that cannot be used."""


@dataclass(frozen=True)
class ServiceSettings:
    """Configuration of one service (all worker processes share it).

    ``database_url`` None means the embedded server of ``home``. ``base_url`` None means "the
    URL the request came in on" (honouring ``X-Forwarded-*`` headers from trusted proxies);
    set it when the service is published under another name, so the links in SIA, DataLink and
    cutout URLs point there.
    """

    database_url: str | None = None
    home: str | None = None
    base_url: str | None = None
    #: Role the service's connections switch to with SET ROLE, when it exists and the login
    #: may use it; every transaction is read-only in any case.
    read_role: str | None = "skyreg_reader"
    #: Rows per answer: the default page/MAXREC and the hard limit.
    default_rows: int = 1000
    max_rows: int = 10_000
    #: Largest area (square degrees) of a search region given by the client.
    max_area_deg2: float = 100.0
    #: Largest cutout, in pixels along either axis.
    max_cutout_pixels: int = 4096
    #: Largest number of spatial filters (SODA CIRCLE/POLYGON/POS values) in one cutout request.
    max_cutout_regions: int = 50
    #: Largest number of pixels (all cutouts, all planes) one cutout or stamp request returns.
    max_request_pixels: int = 64 * 1024 * 1024
    #: Largest number of objects (positions or regions) in one stamp request.
    max_stamp_objects: int = 10_000
    #: Largest number of stamps (objects x covering coadds) in one stamp request.
    max_stamps: int = 100_000
    #: Largest number of IDs in one DataLink request.
    max_ids: int = 200
    #: Statement timeout (seconds) of every SQL statement the service runs.
    query_timeout_s: float = 10.0
    #: Origins allowed by CORS (``["*"]`` for any); empty: no CORS headers.
    cors_origins: tuple[str, ...] = ()
    #: Database connections per worker process (and so requests served at once per worker).
    pool_size: int = 8
    log_requests: bool = True
    #: Offline interactive API docs at /docs and /redoc.
    docs: bool = True

    def __post_init__(self) -> None:
        for name in ("default_rows", "max_rows", "max_cutout_pixels", "max_cutout_regions",
                     "max_request_pixels", "max_stamp_objects", "max_stamps", "max_ids",
                     "pool_size"):
            if int(getattr(self, name)) < 1:
                raise SettingsError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.default_rows > self.max_rows:
            raise SettingsError("default_rows cannot exceed max_rows")
        if not self.max_area_deg2 > 0 or not self.query_timeout_s > 0:
            raise SettingsError("max_area_deg2 and query_timeout_s must be > 0")
        if self.base_url is not None:
            url = self.base_url.rstrip("/")
            if not url.startswith(("http://", "https://")):
                raise SettingsError(f"base_url {self.base_url!r}: expected http(s)://host/path")
            object.__setattr__(self, "base_url", url)
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))

    def to_env(self) -> str:
        """JSON for :data:`SETTINGS_ENV`."""
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ServiceSettings:
        """Settings handed over by ``skyreg serve`` (defaults when the variable is unset)."""
        text = (environ if environ is not None else os.environ).get(SETTINGS_ENV)
        if not text:
            return cls()
        try:
            values = json.loads(text)
        except json.JSONDecodeError as err:
            raise SettingsError(f"{SETTINGS_ENV} is not valid JSON: {err}") from err
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise SettingsError(f"{SETTINGS_ENV}: unknown settings {sorted(unknown)}")
        values["cors_origins"] = tuple(values.get("cors_origins", ()))
        return cls(**values)
