"""Run the demonstration: ``python -m patterns --help``."""

from .demo import run

if __name__ == "__main__":
    run()
