"""Metrics: a registry of measurements, each recorded with the protocol that produced it.

Importing `bench.metrics.suite` registers every metric in `bench.registry.metrics`; this package
file imports nothing. Layout: records.py (the record schema), context.py (what one run's metrics
share), fidelity.py (torch-fidelity), extractors.py (domain feature extractors, the stacked-digits
judge), modes.py, diversity.py, conditional.py, probe.py (the math), suite.py (the registered
metrics). The `bench eval` command that uses them sits above, in bench/study/eval_command.py.
"""
