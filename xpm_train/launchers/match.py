"""Which launcher runs a spec.

Spec strings are parsed by experimaestro's own parser and every fit is
decided by experimaestro's ``HostSimpleRequirement.match`` against a
``HostSpecification`` built from each launcher. The rules on top of it:

1. ``|`` alternatives are tried in the order written; the first one that
   fits some launcher is used.
2. Launchers lacking one of the requested tags are skipped.
3. Among the launchers that fit, the highest ``priority`` wins, then the
   smallest sufficient one (fewest GPUs, least GPU memory, fewest cores,
   least memory, shortest time limit), then the first in the file.
4. ``processes=``/``nodes=`` terms (:mod:`.ranks`) are taken out of each
   alternative before experimaestro parses it; a launcher type may refuse a
   layout whatever it asks (a local launcher: a job on several nodes).

When a launcher does not fit, :func:`misfit` names the requirement that did
not (for ``explain`` and error messages only, never to decide).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Union

from ..errors import UserError
from .ranks import Layout, check_gpus, split_spec
from .schema import LauncherType, LaunchersConfig
from .units import format_duration, format_memory

if TYPE_CHECKING:
    from experimaestro.launcherfinder.specs import (
        HostRequirement,
        HostSimpleRequirement,
        HostSpecification,
    )

Spec = Union[str, "HostRequirement", None]


@dataclass(frozen=True)
class Verdict:
    """How one launcher answered one alternative."""

    launcher: LauncherType
    fits: bool
    reason: str
    """Empty when it fits; else e.g. ``needs 2 GPU(s), offers 1``"""


@dataclass(frozen=True)
class Choice:
    """The launcher chosen for a spec, and the alternative it runs."""

    launcher: LauncherType
    requirement: "HostSimpleRequirement"
    alternative: int
    """Index of the ``|`` alternative used"""
    layout: Layout = Layout()
    """Its ranks (``processes=``, ``nodes=``)"""


def parse_spec(text: str) -> "HostRequirement":
    """Parse a spec string with experimaestro's parser.

    :raises ValueError: when the text is not a valid spec
    """
    from arpeggio import NoMatch
    from experimaestro.launcherfinder.parser import parse

    try:
        return parse(text)
    except NoMatch as e:
        raise SpecError(
            f"{text!r} is not a valid resource spec (syntax error: {e}). Write requirements joined by '&', "
            "alternatives by '|', e.g. \"duration=2h & cpu(cores=4, mem=8G) & cuda(mem=16G)*1\""
        ) from None


class SpecError(UserError, ValueError):
    """A resource spec string that experimaestro's parser rejects."""


def laid_out(spec: Spec, default_spec: str | None = None) -> list[tuple["HostSimpleRequirement", Layout]]:
    """The ``|`` alternatives of a spec with their ranks, in order. A rank
    needs a core: an alternative asking for fewer cores than processes asks
    for one per process."""
    from experimaestro.launcherfinder.specs import HostSimpleRequirement

    if spec is None or (isinstance(spec, str) and not spec.strip()):
        if not default_spec:
            return [(HostSimpleRequirement(), Layout())]
        spec = default_spec
    if not isinstance(spec, str):
        return [(requirement, Layout()) for requirement in _flatten(spec)]
    result = []
    for text, layout in split_spec(spec):
        requirement = _flatten(parse_spec(text))[0] if text else HostSimpleRequirement()
        check_gpus(layout, len(requirement.accelerators), text)
        if requirement.cpu.cores < layout.processes:
            requirement.cpu.cores = layout.processes
        result.append((requirement, layout))
    return result


def _flatten(requirement) -> list["HostSimpleRequirement"]:
    """Simple requirements of a (possibly nested) union, in order."""
    from experimaestro.launcherfinder.specs import HostSimpleRequirement

    if isinstance(requirement, HostSimpleRequirement):
        return [requirement]
    return [simple for part in requirement.requirements for simple in _flatten(part)]


def judge(requirement: "HostSimpleRequirement", launcher: LauncherType,
          tags: Iterable[str] = (), layout: Layout = Layout()) -> Verdict:
    """Does ``launcher`` run ``requirement`` (with the requested ``tags``, on ``layout``'s ranks)?"""
    missing = sorted(set(tags) - set(launcher.tags))
    if missing:
        return Verdict(launcher, False, f"lacks tag(s) {', '.join(missing)}")
    refusal = launcher.refuses(layout)
    if refusal:
        return Verdict(launcher, False, refusal)
    host = launcher.host()
    if requirement.match(host) is not None:
        return Verdict(launcher, True, "")
    return Verdict(launcher, False, misfit(requirement, host))


def choose(config: LaunchersConfig, spec: Spec, tags: Iterable[str] = ()) -> Choice | None:
    """The launcher of ``config`` that runs ``spec`` (None if none fits)."""
    tags = tuple(tags)
    for index, (requirement, layout) in enumerate(laid_out(spec, config.default_spec)):
        fitting = [v.launcher for v in (judge(requirement, launcher, tags, layout)
                                        for launcher in config.launchers) if v.fits]
        if fitting:
            best = min(fitting, key=lambda launcher: _preference(config, launcher))
            return Choice(best, requirement, index, layout)
    return None


def _preference(config: LaunchersConfig, launcher: LauncherType) -> tuple:
    """Sort key: highest priority, then smallest, then first in the file."""
    host = launcher.host()
    gpu_memory = sum(a.memory for a in host.accelerators)
    max_time = launcher.max_time or float("inf")
    size = (len(host.accelerators), gpu_memory, launcher.cores, launcher.memory, max_time)
    return (-launcher.priority, size, config.launchers.index(launcher))


def misfit(requirement: "HostSimpleRequirement", host: "HostSpecification") -> str:
    """The first requirement that ``host`` does not satisfy, in words."""
    wanted, offered = requirement.accelerators, host.accelerators
    if len(wanted) > len(offered):
        return f"needs {len(wanted)} GPU(s), offers {len(offered)}"
    pairs = zip(sorted(offered, key=lambda a: -a.memory), sorted(wanted, key=lambda a: -a.memory))
    for have, want in pairs:
        if want.accelerator_type is not None and have.accelerator_type != want.accelerator_type:
            return f"needs a {want.accelerator_type.value} GPU, offers {have!r}"
        if have.memory < want.memory:
            return (f"needs {format_memory(want.memory)} of GPU memory, "
                    f"its GPUs have {format_memory(have.memory)}")
    if len(wanted) < host.min_gpu:
        return f"only takes jobs with at least {host.min_gpu} GPU(s)"
    if requirement.cpu.cores > host.cpu.cores:
        return f"needs {requirement.cpu.cores} cores, offers {host.cpu.cores}"
    if requirement.cpu.memory > host.cpu.memory:
        return (f"needs {format_memory(requirement.cpu.memory)} of memory, "
                f"offers {format_memory(host.cpu.memory)}")
    if host.max_duration and requirement.duration > host.max_duration:
        return (f"needs duration {format_duration(requirement.duration)}, "
                f"max_time is {format_duration(host.max_duration)}")
    return "rejected by experimaestro's requirement matching"


def describe(requirement: "HostSimpleRequirement") -> str:
    """A requirement in spec-like words: ``duration=2h & cpu(cores=4) & cuda(mem=8G)*1``."""
    parts = []
    if requirement.duration:
        parts.append(f"duration={format_duration(requirement.duration)}")
    cpu = []
    if requirement.cpu.cores:
        cpu.append(f"cores={requirement.cpu.cores}")
    if requirement.cpu.memory:
        cpu.append(f"mem={format_memory(requirement.cpu.memory)}")
    if cpu:
        parts.append(f"cpu({', '.join(cpu)})")
    groups: dict[tuple[str, int], int] = {}
    for gpu in requirement.accelerators:
        kind = gpu.accelerator_type.value if gpu.accelerator_type else "gpu"
        groups[(kind, gpu.memory)] = groups.get((kind, gpu.memory), 0) + 1
    for (kind, memory), count in groups.items():
        mem = f"mem={format_memory(memory)}" if memory else ""
        parts.append(f"{kind}({mem})*{count}")
    return " & ".join(parts) or "(no requirement)"
