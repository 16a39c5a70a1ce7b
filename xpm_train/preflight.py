"""Run by ``experimaestro run-experiment`` before a plan is imported.

Every ``params.yaml`` of xpm-train says ``pre_experiment: xpm_train.preflight``.
It works around two behaviours of experimaestro 2.7:

- carbon tracking is on by default, needs the network, and pauses 3 s with a
  warning when CodeCarbon is missing: it is turned off unless the environment
  variable ``XPM_TRAIN_CARBON=1`` asks for it;
- unknown keys of ``params.yaml`` are silently ignored (a typo such as
  ``epcohs: 3`` trains with the default): they become an error naming the file
  and the key, and type errors are reported in one short line per key;
- values given with ``-c key=value`` reach the plan as strings, so
  ``-c 'lr=[0.01, 0.1]'`` fails with "Input should be a valid list": a string
  given for a list field is read as YAML (``[0.01, 0.1]``, or ``0.01`` for a
  one-value list), and so is a string given for a mapping field (a Tune
  plan's ``-c 'space={optimizer.lr: {float: [0.001, 0.1], log: true}}'``
  replaces the whole search space);
- a task submitted without ``launcher=`` would run with experimaestro's
  direct launcher, outside launchers.yaml and the host-wide reservations: it
  gets the launcher launchers.yaml chooses for its ``default_spec``;
- nothing records which code made a job: every job started gets its
  provenance, and a reused job whose code changed is said so
  (:func:`xpm_train.provenance.install_hooks`);
- an error of the plan that the user can fix (:class:`xpm_train.errors.UserError`:
  no launcher fits the spec, a download failed, a bad launchers.yaml...) is
  printed in one line instead of a traceback; other errors keep theirs.
"""

from __future__ import annotations

import difflib
import logging
import os

import attrs

from .errors import UserError


class ParamsError(UserError, ValueError):
    """A ``params.yaml`` that does not fit the plan's configuration class."""


def unknown_keys(schema, data: dict, prefix: str = "") -> list[str]:
    """Messages for the keys of ``data`` that ``schema`` (an attrs class) lacks."""
    fields = {f.name: f for f in attrs.fields(schema)}
    messages = []
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            messages.append(f"unknown key '{prefix}{key}'{hint}")
        elif isinstance(value, dict) and attrs.has(fields[key].type):
            messages += unknown_keys(fields[key].type, value, f"{prefix}{key}.")
    return messages


def coerce_lists(schema, data: dict) -> dict:
    """``data`` with YAML strings parsed where ``schema`` (an attrs class)
    expects a list or a mapping.

    ``-c 'lr=[0.01, 0.1]'`` gives the string ``"[0.01, 0.1]"``; a single value
    (``-c lr=0.01``) becomes a one-element list. ``-c 'space={a: 1}'`` gives
    ``{"a": 1}`` (the whole mapping: experimaestro splits dotted keys, so a
    key holding dots cannot be set alone). Nested configurations are handled
    recursively; other values are left to the validator.
    """
    import typing

    import yaml

    fields = {f.name: f for f in attrs.fields(schema)}
    result = dict(data)
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            continue
        if isinstance(value, str) and typing.get_origin(field.type) is list:
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError:
                continue
            result[key] = parsed if isinstance(parsed, list) else [parsed]
        elif isinstance(value, str) and typing.get_origin(field.type) is dict:
            parsed = yaml_value(value)
            if isinstance(parsed, dict):
                result[key] = parsed
        elif isinstance(value, dict) and attrs.has(field.type):
            result[key] = coerce_lists(field.type, value)
        elif key == "grid_search" and isinstance(value, dict):
            # experimaestro's grid search: -c 'grid_search.lr=[0.1, 0.01]' or '{range: [8, 33, 8]}'
            result[key] = {k: yaml_value(v) for k, v in value.items()}
    return result


def yaml_value(value):
    """A ``-c`` string read as YAML (other values, and invalid YAML, as given)."""
    import yaml

    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def describe_error(error: Exception) -> list[str]:
    """Short lines (one per key) for a pydantic or attrs validation error."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        lines = []
        for item in errors():
            key = ".".join(str(part) for part in item.get("loc", ()))
            lines.append(f"key '{key}': {item.get('msg')} (got {item.get('input')!r})")
        return lines
    return [str(error)]


def strict_validate(original):
    """Wrap experimaestro's ``validate_attrs`` to refuse unknown keys and
    shorten its messages."""

    def validate(schema, data):
        source = params_file()
        if isinstance(data, dict) and attrs.has(schema):
            problems = unknown_keys(schema, data)
            if problems:
                raise ParamsError(
                    f"{source}: " + "; ".join(problems)
                    + f".\nFix: correct or remove the key(s); the valid keys are the fields of "
                    f"{schema.__module__}.{schema.__name__}."
                )
            data = coerce_lists(schema, data)
        try:
            return original(schema, data)
        except Exception as error:
            lines = describe_error(error)
            raise ParamsError(
                f"{source}: " + "; ".join(lines) + "\nFix: change the value(s) in the file "
                "or on the command line (-c key=value)."
            ) from None

    validate.__wrapped__ = original
    return validate


def params_file() -> str:
    """The YAML file given to ``run-experiment`` (for error messages)."""
    try:
        import click

        return str(click.get_current_context().params.get("yaml_file", "params.yaml"))
    except RuntimeError:
        return "params.yaml"


def short_user_errors(original):
    """Wrap ``ExperimentHelper.run`` so that the tasks the plan submits without
    ``launcher=`` go through launchers.yaml (:func:`~xpm_train.launchers.finder.use_for_tasks_without_launcher`)
    and a :class:`~xpm_train.errors.UserError` raised by the plan ends the run
    with its message only (exit code 1)."""
    from .errors import UserError, plan_error
    from .launchers.finder import use_for_tasks_without_launcher

    def run(self, args, configuration):
        try:
            use_for_tasks_without_launcher()
            return original(self, args, configuration)
        except UserError as error:
            short = plan_error(error)
        raise short

    run.__wrapped__ = original
    return run


class ShortUserErrors(logging.Filter):
    """Drops the traceback experimaestro logs when a param value is refused by a
    check (a :class:`~xpm_train.errors.UserError`: its message is enough)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from .errors import UserError

        if record.exc_info and isinstance(record.exc_info[1], UserError):
            record.msg = f"{record.getMessage()}: {record.exc_info[1]}"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


def install() -> None:
    from experimaestro.experiments import cli
    from experimaestro.settings import get_settings

    if os.environ.get("XPM_TRAIN_CARBON", "0") != "1":
        get_settings().carbon.enabled = False
    if not hasattr(cli.validate_attrs, "__wrapped__"):
        cli.validate_attrs = strict_validate(cli.validate_attrs)
    core_logger = logging.getLogger("xpm.core")
    if not any(isinstance(f, ShortUserErrors) for f in core_logger.filters):
        core_logger.addFilter(ShortUserErrors())
    if not hasattr(cli.ExperimentHelper.run, "__wrapped__"):
        cli.ExperimentHelper.run = short_user_errors(cli.ExperimentHelper.run)
    from .provenance import install_hooks

    install_hooks(params_file)


install()
