"""Measurements: scripts printing ratios measured side by side, run as modules from the repository root
(``python -m benchmarks.<name>``). They import the installed core and, where needed, the test helpers
(``tests.support``, ``tests.host``); nothing here writes into the package.
"""
