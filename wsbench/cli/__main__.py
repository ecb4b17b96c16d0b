"""``python -m wsbench.cli``."""

from . import main

main()
