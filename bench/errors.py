"""The one exception type for user mistakes.

The CLI turns a BenchError into a single line on stderr and exit code 2; anything else is our bug
and keeps its traceback.
"""


class BenchError(Exception):
    """A problem the user can fix; the message names the problem and the fix in one line."""
