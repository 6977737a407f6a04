"""Run the demonstration: ``python -m patterns --help``."""

from ._demo import main

if __name__ == "__main__":
    raise SystemExit(main())
