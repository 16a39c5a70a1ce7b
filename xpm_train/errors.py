"""Errors caused by what a user gave (a file, a value, a spec, a command).

Their message says what is wrong, why, and how to fix it, so they are shown
without a traceback: by the ``xpm-train`` CLI, and by ``experimaestro
run-experiment`` for plans whose params.yaml says
``pre_experiment: xpm_train.preflight`` (see :mod:`xpm_train.preflight`).
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Base of the errors a user can fix from the message alone."""


class InvalidArgument(UserError, ValueError):
    """A value the user gave (an option, a metric or study name) that is refused;
    the message says which and what is accepted."""


class NotFound(UserError, FileNotFoundError):
    """Something the user named (a study, its journal, a launchers file) does not exist."""


class CodeNotFound(UserError, ImportError):
    """A job's task or config class is in a module this Python cannot import."""


def code_not_found(error: ModuleNotFoundError, what: str) -> CodeNotFound:
    """The one-line error for ``what`` (e.g. "cannot load JOB") whose code is in
    the module ``error`` could not import: it names the module and how to fix it."""
    module = error.name or str(error)
    short = CodeNotFound(
        f"{what}: its code is in module '{module}', which Python cannot import here; install it, or put "
        f"the folder holding {module.split('.')[0]} on the path (PYTHONPATH=that/folder, the folder the "
        "plan's params.yaml gave as `pythonpath`, or sys.path.insert(0, ...) before loading)")
    short.__cause__ = short.__context__ = None
    short.__suppress_context__ = True
    return short


def plan_error(error: UserError) -> Exception:
    """``error`` as an experimaestro ``HandledException`` (printed in one line,
    exit code 1), detached from the traceback that raised it."""
    from experimaestro.exceptions import HandledException

    class PlanError(HandledException):
        pass

    short = PlanError(f"{type(error).__name__}: {error}")
    short.__cause__ = short.__context__ = None
    short.__suppress_context__ = True
    return short


def config_name(config) -> str:
    """The class name of a config or of its instance (``MLP``, not ``MLP.XPMConfig``), for messages."""
    return type(config).__name__.split(".")[0]
