"""Bulk ingest: survey manifests (and later FITS files) into the registry."""
