"""Hypothesis properties of the patterns, and the broken variants they must catch."""

import os

RUN_SECONDS = float(os.environ.get("SIMULATION_RUN_SECONDS", "120"))
"""Real seconds one simulated workflow run may take before the harness gives it up (a
failure). Mutation runs set ``SIMULATION_RUN_SECONDS`` lower: a mutant that raises in workflow
code makes its workflow task retry for ever, and each such run would otherwise cost 120 s."""
