"""``python -m faults worker``: see :mod:`faults.testing.worker`."""

import os
import sys

from .testing.worker import main

if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: the SDK's runtime threads can abort it (sdk-python issue #300).
    os._exit(status)
