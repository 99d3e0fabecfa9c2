"""The error tree. The library raises these; the CLI turns each into one line and exit code 2.

Nothing here imports click: a library user catches `PerfestError` like any exception.
"""

from __future__ import annotations


class PerfestError(Exception):
    """Base of every error perfest reports to a user."""


class SpecError(PerfestError):
    """A model, hardware or workload specification is invalid (names the field)."""


class UnknownNameError(PerfestError):
    """A model or device name is not in the catalog (lists the closest names)."""


class SpecFileError(PerfestError):
    """A YAML or config.json file cannot be read or parsed (names the file and line)."""


class UnsupportedError(PerfestError):
    """The request is valid but cannot run: a dtype the device lacks, a model the builder lacks."""


class MissingExtraError(PerfestError):
    """An optional dependency (PyTorch, matplotlib) is needed and not installed."""


class ArgumentTypeError(PerfestError, TypeError):
    """A library function got an argument of a type it does not take (names the argument and
    the types it accepts). A TypeError too, as Python's own convention for this case."""
