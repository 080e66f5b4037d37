"""Running the service: uvicorn with one or several worker processes.

With several workers uvicorn starts fresh interpreters that import
``skyreg.service.app:create_app``; the settings travel in ``$SKYREG_SERVICE_SETTINGS``. Each
worker opens its own database pool and, with the embedded server, registers itself as one of
the server's users, so the server runs while any worker does; workers stop by themselves when
the supervising process disappears.
"""

from __future__ import annotations

import os
from typing import Any

from skyreg.service.app import PARENT_PID_ENV
from skyreg.service.settings import SETTINGS_ENV, ServiceSettings


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging plus skyreg's access log, one line per request on stderr."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = {**LOGGING_CONFIG}
    config["formatters"] = {**config["formatters"], "skyreg": {
        "format": "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"}}
    config["handlers"] = {**config["handlers"], "skyreg": {
        "class": "logging.StreamHandler", "formatter": "skyreg", "stream": "ext://sys.stderr"}}
    config["loggers"] = {**config["loggers"],
                         "skyreg": {"handlers": ["skyreg"], "level": level.upper(),
                                    "propagate": False}}
    return config


def serve(settings: ServiceSettings, *, host: str, port: int, workers: int,
          forwarded_allow_ips: str, log_level: str = "info") -> None:
    """Run until interrupted."""
    import uvicorn

    os.environ[SETTINGS_ENV] = settings.to_env()
    os.environ[PARENT_PID_ENV] = str(os.getpid())
    uvicorn.run("skyreg.service.app:create_app", factory=True, host=host, port=port,
                workers=workers, access_log=False, proxy_headers=True,
                forwarded_allow_ips=forwarded_allow_ips, log_config=log_config(log_level),
                log_level=log_level, timeout_graceful_shutdown=10)
