"""Search spaces: which Params of a Learn config a study varies, and how.

Each entry is bound to the path of a ``Param`` of the Learn config, e.g.
``optimizer.lr``, ``model.hidden_dims``, ``batch_size``. In Python::

    Space([
        Float("optimizer.lr", 1e-4, 1e-1, log=True),
        Categorical("model.hidden_dims", [[32], [128], [128, 64]]),
        Float("model.dropout", 0.0, 0.5, step=0.1, when={"model.hidden_dims": [[128, 64]]}),
    ])

In ``params.yaml`` (parsed by :meth:`Space.parse`)::

    space:
      optimizer.lr: {float: [1.0e-4, 1.0e-1], log: true}
      model.hidden_dims: {categorical: [[32], [128], [128, 64]]}
      model.dropout: {float: [0.0, 0.5], step: 0.1, when: {model.hidden_dims: [[128, 64]]}}

A conditional entry (``when``) is only sampled when every listed entry took
one of the listed values; otherwise the Param keeps the base config's value.
Categorical choices that Optuna cannot store (lists) are stored as their JSON
text and decoded when the Learn config is built.
"""

from __future__ import annotations

import json
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Any, Union

from ..errors import UserError

if TYPE_CHECKING:
    import optuna

    from ..learn import Learn


class SpaceError(UserError, ValueError):
    """A search-space entry is invalid (the message names it)."""


Primitive = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class Float:
    """A float in ``[low, high]``, on a log scale or by ``step``."""

    path: str
    low: float
    high: float
    _: KW_ONLY  # as Optuna's suggest_float(name, low, high, *, step, log)
    log: bool = False
    step: float | None = None
    when: dict[str, list] = field(default_factory=dict)

    def check(self):
        if not (isinstance(self.low, (int, float)) and isinstance(self.high, (int, float))):
            raise SpaceError(f"{self.path}: low and high must be numbers, got {self.low!r}, {self.high!r}")
        if self.low > self.high:
            raise SpaceError(f"{self.path}: low ({self.low}) is greater than high ({self.high})")
        if self.log and self.low <= 0:
            raise SpaceError(f"{self.path}: a log scale needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise SpaceError(f"{self.path}: give either log: true or step, not both")
        if self.step is not None and not self.step > 0:
            raise SpaceError(f"{self.path}: step must be > 0, got {self.step}")

    def suggest(self, trial: "optuna.Trial") -> float:
        return trial.suggest_float(self.path, self.low, self.high, log=self.log, step=self.step)

    def decode(self, value):
        return float(value)

    def spec(self) -> dict[str, Any]:
        return {"float": [self.low, self.high], "log": self.log, "step": self.step, "when": self.when}


@dataclass(frozen=True)
class Int:
    """An integer in ``[low, high]``, on a log scale or by ``step``."""

    path: str
    low: int
    high: int
    _: KW_ONLY  # as Optuna's suggest_int(name, low, high, *, step, log)
    log: bool = False
    step: int = 1
    when: dict[str, list] = field(default_factory=dict)

    def check(self):
        if not (isinstance(self.low, int) and isinstance(self.high, int)) or isinstance(self.low, bool):
            raise SpaceError(f"{self.path}: low and high must be integers, got {self.low!r}, {self.high!r}")
        if self.low > self.high:
            raise SpaceError(f"{self.path}: low ({self.low}) is greater than high ({self.high})")
        if self.log and self.low <= 0:
            raise SpaceError(f"{self.path}: a log scale needs low > 0, got {self.low}")
        if self.log and self.step != 1:
            raise SpaceError(f"{self.path}: a log scale needs step 1, got {self.step}")
        if not (isinstance(self.step, int) and self.step > 0):
            raise SpaceError(f"{self.path}: step must be an integer > 0, got {self.step!r}")

    def suggest(self, trial: "optuna.Trial") -> int:
        return trial.suggest_int(self.path, self.low, self.high, log=self.log, step=self.step)

    def decode(self, value):
        return int(value)

    def spec(self) -> dict[str, Any]:
        return {"int": [self.low, self.high], "log": self.log, "step": self.step, "when": self.when}


@dataclass(frozen=True)
class Categorical:
    """One of ``choices`` (numbers, strings, booleans, or lists of them)."""

    path: str
    choices: list
    _: KW_ONLY
    when: dict[str, list] = field(default_factory=dict)

    def check(self):
        if not isinstance(self.choices, list) or not self.choices:
            raise SpaceError(f"{self.path}: choices must be a non-empty list, got {self.choices!r}")
        for choice in self.choices:
            items = choice if isinstance(choice, list) else [choice]
            if not all(isinstance(item, Primitive) for item in items):
                raise SpaceError(f"{self.path}: choice {choice!r} is not a number, string, "
                                 "boolean or list of them")
        encoded = [self.encode(c) for c in self.choices]
        if len(set(encoded)) != len(encoded):
            raise SpaceError(f"{self.path}: choices contain duplicates: {self.choices!r}")

    @staticmethod
    def encode(choice):
        """What Optuna stores: the choice itself, or its JSON text for a list."""
        return json.dumps(choice) if isinstance(choice, list) else choice

    def suggest(self, trial: "optuna.Trial"):
        return self.decode(trial.suggest_categorical(self.path, [self.encode(c) for c in self.choices]))

    def decode(self, value):
        return json.loads(value) if any(isinstance(c, list) for c in self.choices) and isinstance(value, str) \
            else value

    def spec(self) -> dict[str, Any]:
        return {"categorical": self.choices, "when": self.when}


Entry = Union[Float, Int, Categorical]
KINDS = {"float": Float, "int": Int, "categorical": Categorical}


@dataclass(frozen=True)
class Space:
    """The entries of a search space, sampled in order."""

    entries: list[Entry]

    def __post_init__(self):
        seen: set[str] = set()
        for entry in self.entries:
            entry.check()
            if entry.path in seen:
                raise SpaceError(f"{entry.path}: appears twice in the search space")
            for other, values in entry.when.items():
                if other not in seen:
                    raise SpaceError(f"{entry.path}: its condition refers to '{other}', which must be "
                                     "an entry declared before it")
                if not isinstance(values, list) or not values:
                    raise SpaceError(f"{entry.path}: when.{other} must be a non-empty list of values")
            seen.add(entry.path)
        if not self.entries:
            raise SpaceError("the search space is empty: give at least one entry")

    @classmethod
    def parse(cls, entries: dict[str, dict[str, Any]]) -> "Space":
        """A space from its ``params.yaml`` form (``{path: {kind: ..., ...}}``)."""
        if not isinstance(entries, dict):
            raise SpaceError(f"space must be a mapping of Param paths to entries, got {entries!r}")
        return cls([parse_entry(path, spec) for path, spec in entries.items()])

    def sample(self, trial: "optuna.Trial") -> dict[str, Any]:
        """Suggest every active entry; ``{path: value}`` (conditional entries
        whose condition fails are left out)."""
        values: dict[str, Any] = {}
        for entry in self.entries:
            if active(entry, values):
                values[entry.path] = entry.suggest(trial)
        return values

    def decode(self, params: dict[str, Any]) -> dict[str, Any]:
        """Values as Learn expects them from a trial's stored ``params``."""
        by_path = {e.path: e for e in self.entries}
        return {path: by_path[path].decode(value) for path, value in params.items() if path in by_path}

    def encode(self, values: dict[str, Any]) -> dict[str, Any]:
        """``{path: value}`` as Optuna stores it (for ``enqueue_trial``)."""
        by_path = {e.path: e for e in self.entries}
        unknown = sorted(set(values) - set(by_path))
        if unknown:
            raise SpaceError(f"{', '.join(unknown)}: not in the search space ({', '.join(by_path)})")
        return {path: by_path[path].encode(value) if isinstance(by_path[path], Categorical) else value
                for path, value in values.items()}

    def spec(self) -> list[dict[str, Any]]:
        """Canonical description (part of the study's content hash)."""
        return [{"path": e.path, **e.spec()} for e in self.entries]

    def validate(self, base: "Learn") -> None:
        """Check that every entry names a ``Param`` of ``base`` (not a Meta)."""
        for entry in self.entries:
            param_argument(base, entry.path)

    def apply(self, base: "Learn", values: dict[str, Any]) -> "Learn":
        """A copy of ``base`` with ``values`` (``{path: value}``) set."""
        learn = base.copy()
        for path, value in values.items():
            owner, name = walk(learn, path)
            setattr(owner, name, value)
        return learn


def active(entry: Entry, values: dict[str, Any]) -> bool:
    return all(other in values and values[other] in allowed for other, allowed in entry.when.items())


def parse_entry(path: str, spec: Any) -> Entry:
    if not isinstance(spec, dict):
        raise SpaceError(f"{path}: expected a mapping such as {{float: [0.0001, 0.1], log: true}}, got {spec!r}")
    kinds = [k for k in KINDS if k in spec]
    if len(kinds) != 1:
        raise SpaceError(f"{path}: give exactly one of float, int, categorical (got keys {sorted(spec)})")
    kind = kinds[0]
    options = {k: v for k, v in spec.items() if k != kind}
    allowed = {"float": {"log", "step", "when"}, "int": {"log", "step", "when"}, "categorical": {"when"}}[kind]
    unknown = set(options) - allowed
    if unknown:
        raise SpaceError(f"{path}: unknown key(s) {sorted(unknown)} for a {kind} entry (allowed: {sorted(allowed)})")
    if kind == "categorical":
        return Categorical(path, spec[kind], **options)
    bounds = spec[kind]
    if not (isinstance(bounds, list) and len(bounds) == 2):
        raise SpaceError(f"{path}: {kind} needs [low, high], got {bounds!r}")
    return KINDS[kind](path, bounds[0], bounds[1], **options)


def walk(config, path: str):
    """``(owner config, param name)`` of a dotted Param path; every parent
    must be a Param holding a config."""
    *parents, name = path.split(".")
    owner = config
    for part in parents:
        param_argument(owner, part, full=path)
        owner = getattr(owner, part)
        if owner is None or not hasattr(type(owner), "__xpmtype__"):
            raise SpaceError(f"{path}: '{part}' is not a config (got {owner!r})")
    return owner, name


def param_argument(config, path: str, full: str | None = None):
    """The experimaestro argument at ``path`` in ``config``; a SpaceError
    naming the entry (``full``) when it is missing or is not a Param."""
    full = full or path
    owner, name = walk(config, path) if "." in path else (config, path)
    arguments = type(owner).__xpmtype__.arguments
    argument = arguments.get(name)
    if argument is None:
        params = sorted(n for n, a in arguments.items() if not a.ignored and not a.constant and a.generator is None)
        raise SpaceError(f"{full}: {kind_name(owner)} has no parameter '{name}' "
                         f"(its Params: {', '.join(params)})")
    if argument.ignored or argument.constant or argument.generator is not None:
        raise SpaceError(f"{full}: '{name}' of {kind_name(owner)} is a Meta/constant, "
                         "it does not change the training: search over a Param instead")
    return argument


def kind_name(config) -> str:
    """``Adam`` for an ``Adam.C(...)`` config."""
    return type(config).__xpmtype__.value_type.__name__
