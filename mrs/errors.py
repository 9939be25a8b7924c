"""One exception type for user-facing failures: the CLI prints its message as one line."""


class MrsError(Exception):
    """Bad input or configuration. The message names the file, row or field at fault."""
