"""Why a spec goes where it goes: per alternative, per launcher, then the plan.

Example (``xpm-train launchers explain "duration=2h & cuda(mem=8G)*1"``)::

    spec: duration=2h & cuda(mem=8G)*1
    launchers: /project/launchers.yaml
    alternative 1: duration=2h & cuda(mem=8G)*1
      local      no: needs 1 GPU(s), offers 0
      debug      yes
    chosen: debug (alternative 1)
      /usr/bin/sbatch --parsable --nodes=1 --partition=debug --time=02:00:00 ...
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from .lookup import BUILTIN, resolve_config
from .match import Choice, Spec, Verdict, choose, describe, judge, laid_out
from .ranks import Layout
from .schema import LaunchersConfig

if TYPE_CHECKING:
    from experimaestro.launcherfinder.specs import HostSimpleRequirement


@dataclass(frozen=True)
class Alternative:
    """One ``|`` alternative and every launcher's verdict on it."""

    requirement: "HostSimpleRequirement"
    verdicts: tuple[Verdict, ...]
    layout: Layout = Layout()

    def verdict(self, launcher: str) -> Verdict:
        return next(v for v in self.verdicts if v.launcher.name == launcher)


@dataclass(frozen=True)
class Explanation:
    """Everything ``xpm-train launchers explain`` shows."""

    spec: str
    tags: tuple[str, ...]
    source: str
    alternatives: tuple[Alternative, ...]
    choice: Choice | None
    plan: tuple[str, ...]
    """The sbatch command line, or the local environment, of the chosen launcher"""

    @property
    def chosen(self) -> str | None:
        """Name of the chosen launcher (None: no launcher fits)."""
        return self.choice.launcher.name if self.choice else None

    def render(self) -> str:
        width = max((len(v.launcher.name) for a in self.alternatives for v in a.verdicts),
                    default=0)
        lines = [f"spec: {self.spec or '(empty)'}"]
        if self.tags:
            lines.append(f"tags: {', '.join(self.tags)}")
        lines.append(f"launchers: {self.source}")
        for index, alternative in enumerate(self.alternatives, 1):
            ranks = alternative.layout.describe()
            lines.append(f"alternative {index}: {describe(alternative.requirement)}"
                         + (f" & {ranks}" if ranks else ""))
            for verdict in alternative.verdicts:
                answer = "yes" if verdict.fits else f"no: {verdict.reason}"
                lines.append(f"  {verdict.launcher.name:<{width}}  {answer}")
        if self.choice is None:
            lines.append("chosen: none - no launcher fits any alternative")
            lines.append(f"fix: {self.fix()}")
        else:
            lines.append(f"chosen: {self.chosen} (alternative {self.choice.alternative + 1}, "
                         f"{self.choice.launcher.type}, priority {self.choice.launcher.priority})")
            lines.extend(f"  {line}" for line in self.plan)
        return "\n".join(lines)

    def fix(self) -> str:
        """How to make a spec that fits nothing run somewhere."""
        where = ("declare a launcher offering it in launchers.yaml (docs/launchers.md; "
                 "none was found, see `xpm-train launchers list`)" if self.source == BUILTIN
                 else f"declare a launcher offering it in {self.source}")
        return ("ask for what a launcher offers (`xpm-train launchers list`), add an "
                "alternative that fits (e.g. `... | duration=4h & cpu(cores=2)`, tried when the "
                f"first does not fit), or {where}")


def explain(spec: Spec, tags: Iterable[str] = (), *,
            config: LaunchersConfig | Path | None = None,
            start: Path | None = None) -> Explanation:
    """Explain where ``spec`` would run (same decision as ``find_launcher``)."""
    config = resolve_config(config, start)
    tags = tuple(tags)
    verdicts = tuple(
        Alternative(r, tuple(judge(r, launcher, tags, layout) for launcher in config.launchers), layout)
        for r, layout in laid_out(spec, config.default_spec)
    )
    choice = choose(config, spec, tags)
    return Explanation(
        spec=spec if isinstance(spec, str) else repr(spec) if spec is not None else "",
        tags=tags, source=config.source, alternatives=verdicts, choice=choice,
        plan=tuple(plan(choice)) if choice else (),
    )


def plan(choice: Choice) -> list[str]:
    """What a job of the chosen launcher gets: the sbatch command line, the local environment..."""
    return choice.launcher.plan(choice.requirement, choice.layout) or ["(no GPU, no reservation)"]
