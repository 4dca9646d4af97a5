"""The one exception type for user mistakes, and the interrupt a launcher raises on SIGTERM.

The CLI turns a BenchError into a single line on stderr and exit code 2; anything else is our bug
and keeps its traceback.
"""


class BenchError(Exception):
    """A problem the user can fix; the message names the problem and the fix in one line."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill PID`, a cluster scheduler's stop) taken as Ctrl-C by a launcher with worker
    processes (bench/launch/backends.py), so that it stops them; the CLI exits 143 for it."""
