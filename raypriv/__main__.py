"""`python -m raypriv` runs the CLI (useful where the console script is not on PATH, e.g. Ray jobs)."""

from raypriv.cli import main

main()
