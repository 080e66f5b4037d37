"""``python -m skyreg`` is the ``skyreg`` command."""

from skyreg.cli.main import main

main()
