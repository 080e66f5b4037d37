"""The ``skyreg`` command line (click)."""
