"""Shared dependencies of the routers: settings, a registry from the pool, the base URL."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request

from skyreg.registry import Registry
from skyreg.service.database import RegistryPool
from skyreg.service.settings import ServiceSettings


def settings(request: Request) -> ServiceSettings:
    value: ServiceSettings = request.app.state.settings
    return value


def pool(request: Request) -> RegistryPool:
    value: RegistryPool = request.app.state.pool
    return value


def registry(request: Request) -> Iterator[Registry]:
    """A registry for this request alone (returned to the pool afterwards)."""
    with pool(request).registry() as lent:
        yield lent


def base_url(request: Request) -> str:
    """The public URL of the service: the setting, else the URL this request came in on."""
    configured = settings(request).base_url
    if configured:
        return configured
    return str(request.base_url).rstrip("/")
