"""Search texts for a pattern: the loop every text search runs, and, run as a script, the child
process in which regular expressions search with a CPU-time budget.

Python's ``re`` backtracks: a pattern such as ``(a+)+$`` can take exponential time on some
texts and cannot be interrupted inside the process. ``coding.stats`` therefore runs regular
expressions here, in a bare interpreter (``python -I -S coding/regex_child.py``: standard
library only, no Django). The child reads ``{"pattern", "flags", "texts", "limit", "seconds"}``
as JSON on stdin, caps its memory, compiles the pattern, and only then starts a CPU-time
timer: the budget counts searching, not starting up or reading the texts. SIGPROF's default
action ends the process when the budget is spent, however deep in ``re`` it is. It writes
``{"spans": [[[start, end], ...] per text searched], "total": n}``.
"""

from __future__ import annotations

import json
import re
import signal
import sys
from collections.abc import Sequence

MEMORY_LIMIT = 2 << 30  # bytes of address space for the child


def find(pattern: re.Pattern[str], texts: Sequence[str], limit: int) -> tuple[list[list[tuple[int, int]]], int]:
    """Non-empty matches per text, in order, the first ``limit`` of them kept; the texts after
    the one where the total passes ``limit`` are not searched. Returns (spans per text
    searched, total matches in them)."""
    spans: list[list[tuple[int, int]]] = []
    total = 0
    for text in texts:
        found = []
        for match in pattern.finditer(text):
            if match.end() > match.start():
                total += 1
                if total <= limit:
                    found.append(match.span())
        spans.append(found)
        if total > limit:
            break
    return spans, total


def main() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    except (ImportError, ValueError, OSError):
        pass
    job = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    pattern = re.compile(job["pattern"], job["flags"])
    signal.setitimer(signal.ITIMER_PROF, job["seconds"])  # from here on; SIGPROF ends the process
    spans, total = find(pattern, job["texts"], job["limit"])
    signal.setitimer(signal.ITIMER_PROF, 0)
    sys.stdout.write(json.dumps({"spans": spans, "total": total}))


if __name__ == "__main__":
    main()
