"""Shared pieces of the routers: settings, a registry from the pool, the base URL.

``settings`` and ``base_url`` are ``async`` so that FastAPI calls them on the event loop: a
plain ``def`` dependency is sent to the thread pool, a hop that costs more than the function.
A registry is taken with :func:`lend` inside the (threaded) endpoint itself rather than as a
generator dependency, which FastAPI would enter and leave in two more thread hops; taking one
may wait for a free connection, which must never happen on the event loop.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from fastapi import Request

from skyreg.registry import Registry
from skyreg.service.database import RegistryPool
from skyreg.service.settings import ServiceSettings


async def settings(request: Request) -> ServiceSettings:
    value: ServiceSettings = request.app.state.settings
    return value


def settings_of(request: Request) -> ServiceSettings:
    value: ServiceSettings = request.app.state.settings
    return value


def pool(request: Request) -> RegistryPool:
    value: RegistryPool = request.app.state.pool
    return value


def lend(request: Request) -> AbstractContextManager[Registry]:
    """A registry for this request alone (returned to the pool when the block ends)."""
    return pool(request).registry()


async def base_url(request: Request) -> str:
    return base_url_of(request)


def base_url_of(request: Request) -> str:
    """The public URL of the service: the setting, else the URL this request came in on."""
    configured = settings_of(request).base_url
    if configured:
        return configured
    return str(request.base_url).rstrip("/")
