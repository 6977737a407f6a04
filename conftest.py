"""Hypothesis profiles shared by every suite.

* ``dev`` (default): quick feedback, 30 examples per property.
* ``ci`` (default when ``CI`` is set): 200 examples per property, derandomised.
* ``ci-large``: 400 examples per property, derandomised; CI's separate stage runs each
  simulation property once under it.
* ``mutation``: derandomised, 100 examples or ``MUTATION_EXAMPLES``, no shrinking (the first
  failure kills a mutant); each mutant's simulation run (``python -m mutation``).
* ``thorough``: thousands of examples; ``pytest simulations --hypothesis-profile=thorough``.
"""

import importlib
import os
import pkgutil

from hypothesis import HealthCheck, Phase, settings

_COMMON = dict(
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile("dev", max_examples=30, **_COMMON)
settings.register_profile("ci", max_examples=200, derandomize=True, database=None, **_COMMON)
settings.register_profile("ci-large", max_examples=400, derandomize=True, database=None, **_COMMON)
settings.register_profile(
    "mutation",
    max_examples=int(os.environ.get("MUTATION_EXAMPLES", "100")),
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    **_COMMON,
)
settings.register_profile("thorough", max_examples=5000, **_COMMON)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


def _load_every_module(packages: tuple[str, ...] = ("faults", "patterns", "simulations")) -> None:
    """Import every module of the project's packages (test modules aside) now, in one order.

    Hypothesis mixes the literal constants of the project's loaded modules into what it
    draws, and collects them again whenever a module is imported. A module first imported
    inside a test (a lazy import) would change every later draw of that process, so a
    derandomised search would find different examples depending on which tests a pytest-xdist
    worker happened to run first. With every module loaded before any test, the pool of
    constants, and so every derandomised search, is the same in every process.
    """
    for name in packages:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, f"{name}."):
            if module.name in _DEPRECATED or module.name.rsplit(".", 1)[-1].startswith("test_"):
                continue
            importlib.import_module(module.name)


_DEPRECATED = {"faults.pytest_plugin"}
"""Old module paths kept for one release: importing one warns."""


_load_every_module()
