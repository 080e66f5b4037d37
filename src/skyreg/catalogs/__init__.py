"""Object catalogs stored next to the registry (Level-2 data-release catalogs, ...)."""
