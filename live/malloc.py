"""The C allocator's arenas: at most ``ARENAS`` per serving process (glibc only).

glibc gives threads allocation arenas of their own, up to eight per core, and an arena
keeps the pages it has ever used. The server's threads (aiosqlite's one per pooled
connection, the event loop's DNS and file helpers, PyAV's codec threads) each fill one,
and the process's RSS crept up through a long show faster than the Python heap did
(+6 to +10 MiB/h in 30-minute soaks against ~3.5 MiB/h of Python objects, issue 27).
Whether two arenas lower that is not shown yet: one soak with ``MALLOC_ARENA_MAX=2`` gave
+4.5 MiB/h, one with this in-process limit +8.5 MiB/h (``bench/RESULTS.md``, "Soak").
Python's own objects come from its allocator's pools anyway.

``limit_arenas`` sets glibc's ``M_ARENA_MAX`` through ``mallopt``, before the threads
start. An operator's ``MALLOC_ARENA_MAX`` wins (glibc reads it itself); on another C
library (musl, macOS, Windows) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: the arenas a serving process may use (glibc's default: 8 per core)
ARENAS = 2
#: ``mallopt`` parameter number of the arena limit (``malloc.h``)
_M_ARENA_MAX = -8


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Limit the allocator to ``arenas`` arenas; False when it did not (not glibc, or
    ``MALLOC_ARENA_MAX`` set by the operator)."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))
