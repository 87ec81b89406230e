"""``python -m hub`` is ``ketenhub``."""

from hub.cli import main

main()
