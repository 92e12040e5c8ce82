"""Errors written for the user: one line that names the problem and what to do."""


class UserError(Exception):
    """A problem the user can fix; the CLI prints it as one line and exits non-zero."""


class IndexMissing(UserError):
    """No index has been built yet."""


class IndexDamaged(UserError):
    """The index on disk cannot be trusted."""


class IndexMismatch(UserError):
    """The index was built with another embedding model."""
