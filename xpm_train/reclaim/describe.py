"""What ``xpm-train gc`` prints of a reclaim plan (:mod:`xpm_train.reclaim.plan`):
the table by reason, the jobs kept and why, the notes; bytes for a person."""

from __future__ import annotations

from .plan import LATEST, Plan


def human(count: int) -> str:
    """``1.5 MB``: bytes for a person."""
    power = min(4, max(0, (len(str(int(count))) - 1) // 3))
    return f"{count} B" if power == 0 else f"{count / 1000 ** power:.1f} {('kB', 'MB', 'GB', 'TB')[power - 1]}"


def describe(reclaim: Plan, verbose: bool = False) -> str:
    """The table by reason (count, bytes), the kept jobs and notes; every path with ``verbose``."""
    lines = [f"{'reason':<14} {'count':>5} {'bytes':>12} {'':>9}"]
    for reason, (count, size) in reclaim.by_reason().items():
        lines.append(f"{reason:<14} {count:>5} {size:>12} {human(size):>9}")
    lines.append(f"{'total':<14} {len(reclaim.removals):>5} {reclaim.bytes:>12} {human(reclaim.bytes):>9}")
    if verbose:
        lines += [f"  {r.reason}: {r.path} ({r.bytes})" for r in reclaim.removals]
    for why, jobs in reclaim.kept.items():
        hint = " (--include-latest reclaims them too)" if why == LATEST else ""
        lines.append(f"kept ({why}): {len(jobs)} job(s){hint}")
        if verbose:
            lines += [f"  {job}" for job in jobs]
    lines += reclaim.notes
    return "\n".join(lines)


__all__ = ["describe"]
