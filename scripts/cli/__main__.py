"""`python -m scripts.cli` is `drs-inventory`."""

from scripts.cli.main import main

main()
