"""Scripts that render the README's pictures, run as modules from the repository root.

``python -m docs.make_example``.
"""
