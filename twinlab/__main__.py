"""`python -m twinlab` runs the CLI."""

from .cli import main

main()
