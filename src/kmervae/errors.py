"""The one exception type users see.

Every error a user can cause (bad input file, bad config, mismatched models) is raised
as :class:`KmervaeError` with a message that fits on one line and names the file, the
record and what is wrong. The CLI prints it as ``kmervae: error: <message>`` and exits
with status 2. An operating-system error about a named file that the user's environment
causes (permission denied, read-only or full file system, not a directory, ...) gets the
same one line; anything else is a bug and keeps its traceback.
"""


class KmervaeError(Exception):
    """A problem with the user's input, config or environment (not a bug in kmervae)."""
