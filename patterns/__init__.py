"""Resilience patterns for Temporal workflows: saga, fan-out/fan-in and circuit breaker.

Each pattern lives in its own subpackage (workflow, activities and data types
side by side). ``python -m patterns`` runs the demonstration.
"""
