"""Helpers shared by the tests (and by the benchmarks and docs scripts run from the repository root).

Under pytest, ``tests/`` is on ``sys.path`` (pytest's rootdir insertion for a test folder
that is not a package), so tests import ``support.<module>``. Scripts outside the tests
run as modules from the repository root (``python -m benchmarks.unet_forward``) and import
``tests.support.<module>``. ``tests/`` itself cannot be a regular package: the repository
root is one (the ComfyUI pack's ``__init__.py``), so pytest would then name every test
module after the checkout's folder.
"""
