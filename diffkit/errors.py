"""The one exception hierarchy of diffkit: every error it raises derives from DiffkitError."""

from __future__ import annotations

__all__ = [
    "DiffkitError",
    "RegistryError",
    "MissingKernelError",
    "BackendMismatchError",
    "TransformError",
    "NonDifferentiableError",
    "ConcretizationError",
    "CompileError",
    "LeakedTracerError",
    "PytreeError",
    "RuleError",
    "BudgetError",
    "ScheduleError",
    "CheckpointStorageError",
    "ResumeError",
    "InternalError",
]


class DiffkitError(Exception):
    """Base of every diffkit error: catch this to catch them all."""


class RegistryError(DiffkitError):
    """The primitive registry could not be built: a duplicate, unknown or rule-less primitive."""


class MissingKernelError(DiffkitError):
    """A primitive has no kernel on the backend of its arguments."""


class BackendMismatchError(DiffkitError):
    """Arguments of one primitive live on different backends or devices."""


class TransformError(DiffkitError, TypeError):
    """A transform (grad, vjp, jvp, ...) was called in a way it cannot honour."""


class NonDifferentiableError(TransformError):
    """A gradient was asked of a value that carries none (integer or boolean input)."""


class ConcretizationError(TransformError):
    """A traced value was asked to become a Python number or NumPy data (float(x), x.item(),
    math.exp(x), numpy.sin(x), y[0] = x), which would silently drop its derivative."""


class CompileError(TransformError):
    """A function could not be traced into a program that replays it (compiled loop steps
    with compile=True): the message names what in the function prevented it."""


class LeakedTracerError(DiffkitError):
    """A traced value escaped the transform that created it and was used after it ended."""


class PytreeError(DiffkitError, TypeError):
    """A value could not be taken apart as a pytree: nested too deep, or dict keys that
    cannot be put in one order."""


class RuleError(DiffkitError):
    """A JVP/VJP rule (built-in or custom) returned the wrong number, shape or kind of values."""


class BudgetError(DiffkitError, ValueError):
    """A YAML memory budget is malformed or too small for the work."""


class ScheduleError(DiffkitError):
    """A checkpoint schedule is invalid: it fails the replay validator."""


class CheckpointStorageError(DiffkitError, OSError):
    """A snapshot could not be written or read back intact (disk full, corrupted file)."""


class ResumeError(CheckpointStorageError):
    """A resumable checkpointed loop (resume=) cannot continue the run found on disk: another
    program's, or in use; the message names what differs and how to start over."""


class InternalError(DiffkitError, AssertionError):
    """An internal invariant failed: this is a diffkit bug, please report it."""
