"""Memory sizes and durations, in the same units as experimaestro's spec strings.

``launchers.yaml`` values such as ``memory: 64G`` or ``max_time: 2d`` are
read with the very functions experimaestro uses for ``cpu(mem=64G)`` and
``duration=2d``, so that a launcher offering ``64G`` matches a spec asking
for ``64G`` exactly (``G`` is 10^9 bytes, ``GiB`` is 2^30, as in experimaestro).
"""

from __future__ import annotations

import math

MIB = 1024**2


def parse_memory(text: str) -> int:
    """Bytes in a size such as ``64G``, ``80GiB`` or ``512M``; a unit is required.

    :raises ValueError: on a bare number or an unreadable size
    """
    from experimaestro.launcherfinder.specs import parse_memory as xpm_parse_memory
    from humanfriendly import InvalidSize

    try:
        return int(xpm_parse_memory(str(text)))
    except InvalidSize as e:
        raise ValueError(str(e)) from None


def parse_duration(text: str) -> int:
    """Seconds in a duration such as ``2d``, ``48h``, ``30m`` or ``90s``.

    :raises ValueError: on an unreadable duration
    """
    from humanfriendly import InvalidTimespan, parse_timespan

    try:
        return int(parse_timespan(str(text)))
    except InvalidTimespan as e:
        raise ValueError(str(e)) from None


def mebibytes(nbytes: int) -> int:
    """Whole MiB needed to hold ``nbytes`` (rounded up)."""
    return math.ceil(nbytes / MIB)


def format_memory(nbytes: int) -> str:
    """Short human form: ``80G``, ``7.5G``, ``512M`` (decimal units, as parsed)."""
    if nbytes <= 0:
        return "0"
    for unit, size in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if nbytes >= size:
            value = nbytes / size
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{nbytes}B"


def format_duration(seconds: int) -> str:
    """Short human form: ``2d``, ``1h30m``, ``45s``; ``-`` for no limit."""
    if not seconds:
        return "-"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


def slurm_time(seconds: int) -> str:
    """Slurm ``--time`` value: ``D-HH:MM:SS`` (minutes are rounded up by Slurm)."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock
