"""Deprecated location of the pytest plugin: it is :mod:`faults.testing.pytest_plugin` now.

The installed package registers the plugin through its ``pytest11`` entry point,
so nothing needs to name this module; ``-p faults.pytest_plugin`` keeps working
for one release (the entry point supplies the fixtures) and warns.
"""

import warnings

warnings.warn(
    "faults.pytest_plugin moved to faults.testing.pytest_plugin, which the package's "
    "pytest11 entry point registers; drop '-p faults.pytest_plugin'",
    DeprecationWarning,
    stacklevel=2,
)
