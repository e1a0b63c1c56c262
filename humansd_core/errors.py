"""The project's own error types.

Every error raised on bad user input derives from :class:`HumanSDError` (itself a
``ValueError``) and names the file, field or value at fault in its message.
"""
from __future__ import annotations


class HumanSDError(ValueError):
    """Base class for errors caused by user input (files, poses, options)."""


class PoseFormatError(HumanSDError):
    """A pose file or structure could not be read or is invalid."""


class CheckpointError(HumanSDError):
    """A model file is missing, corrupt, or not the kind expected."""


class MissingWeightsError(HumanSDError, FileNotFoundError):
    """Optional network weights (e.g. a pose detector) are not where expected."""
