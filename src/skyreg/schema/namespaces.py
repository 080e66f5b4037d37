"""The PostgreSQL schemas that belong to a registry.

The registry's own tables live in the schema its login works in (``current_schema()``,
normally ``public``); migrations may create further schemas for data models published next to
it (``ivoa`` for ObsCore, ``apdb`` for the Level-1 catalogs, ``catalogs`` for Level-2 object
catalogs). Whatever must treat all of skyreg's schemas alike — above all the privileges of
the reader and writer roles — reads :data:`EXTRA_SCHEMAS`, and a test checks
that a fully migrated database holds no other schema, so a migration that adds a schema
without listing it here fails the test suite instead of leaving the roles without access.

A list rather than "every schema the owner owns": an operator's own schemas in the same
database, owned by the same login, must not become readable by the registry's reader.
"""

from __future__ import annotations

#: Schemas created by skyreg's migrations besides the registry's own, in creation order.
EXTRA_SCHEMAS: tuple[str, ...] = ("ivoa", "apdb", "catalogs")
