"""What a ``launchers.yaml`` declares, once read and checked.

The file is a mapping::

    default_spec: "duration=1h & cpu(cores=1)"   # optional, used for an empty spec
    launchers:                                   # required, tried as a whole
      - name: local                              # required, unique
        type: local                              # required: a key of kinds.TYPES
        tags: [local]                            # optional, default []
        priority: 10                             # optional, default 0 (higher wins)
        max_time: 20h                            # optional, default no limit
        ...                                      # what the launcher offers

Each ``type:`` is one module of :mod:`.kinds` (``local``: this machine,
``slurm``: one Slurm partition); its dataclass is what an entry of that type
declares, and its fields are the keys the entry may have (:func:`allowed_keys`).
:class:`LauncherType` is the contract such a module fulfils. See docs/launchers.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Callable, ClassVar, Protocol, Sequence

if TYPE_CHECKING:
    from experimaestro.launcherfinder.specs import HostSimpleRequirement, HostSpecification
    from experimaestro.launchers import Launcher

    from ..diagnosis import Check
    from .ranks import JobSide, Layout
    from .yamlnodes import Node, Problems


def key(path: str, *, aliases: tuple[str, ...] = ()) -> dict:
    """Field metadata: the field is written at ``path`` in the file (``cpu.cores``:
    key ``cores`` of the ``cpu`` mapping), or under one of ``aliases``."""
    return {"key": path, "aliases": aliases}


NOT_IN_FILE = {"key": None}
"""Field metadata: the field is derived, not a key of the file"""


@dataclass(frozen=True)
class Common:
    """What every launcher declares (read by :mod:`.loader`, before its type's own keys)."""

    name: str
    tags: tuple[str, ...]
    priority: int
    max_time: int
    """Seconds (0: no limit)"""
    where: str = field(metadata=NOT_IN_FILE)
    """``file:line`` of the entry, for messages"""


def allowed_keys(cls: type, under: str | None = None) -> tuple[str, ...]:
    """The keys a mapping read as the dataclass ``cls`` may have, in field order:
    its fields' keys (``cpu.cores`` counts as ``cpu``), or those of its ``under``
    mapping (``cores`` for ``under="cpu"``)."""
    result: list[str] = []
    for f in fields(cls):
        path = f.metadata.get("key", f.name)
        if path is None:
            continue
        head, _, tail = path.partition(".")
        if under is None:
            keys = (head, *f.metadata.get("aliases", ()))
        else:
            keys = (tail,) if head == under and tail else ()
        result.extend(k for k in keys if k not in result)
    return tuple(result)


class LauncherType(Protocol):
    """The contract of a launcher type: one module of :mod:`.kinds` whose frozen
    dataclass (extending :class:`Common`) is what one ``launchers.yaml`` entry of
    that ``type:`` declares. docs/launchers.md, "Adding a launcher type", has an example."""

    type: ClassVar[str]
    """The ``type:`` value of its entries"""
    name: str
    tags: tuple[str, ...]
    priority: int
    max_time: int
    where: str
    cores: int
    """Cores a job may have (per node)"""
    memory: int
    """Bytes a job may have (per node)"""
    auto: frozenset[str]
    """Fields detected on this machine rather than written (shown ``(auto)``)"""
    job: ClassVar["type[JobSide]"]
    """What a job started here sees of it, in the job's own process: its rank,
    its tracking label, Lightning's cluster environment (:class:`.ranks.JobSide`;
    optional: a type without one gets the local type's)"""

    @classmethod
    def read(cls, node: "Node", problems: "Problems", common: dict) -> "LauncherType | None":
        """The entry at ``node`` (``common``: the :class:`Common` fields, already read);
        None when a problem was recorded."""

    def host(self) -> "HostSpecification":
        """What it offers, for experimaestro's requirement matching."""

    def refuses(self, layout: "Layout") -> str:
        """Why it never runs jobs of ``layout``'s ranks whatever they ask ("" if it may)."""

    def plan(self, requirement: "HostSimpleRequirement", layout: "Layout") -> list[str]:
        """What a job gets here, in words, for ``xpm-train launchers explain``."""

    def listing(self) -> tuple[str, str]:
        """``(GPUs, where)`` columns of ``xpm-train launchers list``."""

    def launcher(self, requirement: "HostSimpleRequirement", layout: "Layout") -> "Launcher":
        """The experimaestro launcher running jobs of ``requirement`` here."""

    @classmethod
    def doctor(cls, launchers: Sequence["LauncherType"],
               which: Callable[[str], str | None]) -> "Check | None":
        """``xpm-train doctor``'s check of the declared ``launchers`` of this type
        (None: nothing to check); ``which`` finds a command (``shutil.which``)."""


@dataclass(frozen=True)
class LaunchersConfig:
    """All launchers of a file, in file order, and where they were read."""

    launchers: tuple[LauncherType, ...]
    source: str
    """Path of the file, or ``<built-in default>``"""
    default_spec: str | None = None

    def get(self, name: str) -> LauncherType:
        for launcher in self.launchers:
            if launcher.name == name:
                return launcher
        raise KeyError(f"no launcher named {name!r} in {self.source}")
