"""Catalogs of sources and objects stored next to the registry (Level-1 APDB, Level-2)."""
