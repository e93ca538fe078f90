"""The domain's errors. Each message says what was refused and why, in words a user can act on."""


class DomainError(Exception):
    """Base of every refusal the core makes; nothing was written when one is raised."""


class NotFound(DomainError):
    pass


class NotAllowed(DomainError):
    """The actor may not do this (wrong role, someone else's booking, a disabled user)."""


class InvalidAction(DomainError):
    """The action does not fit the booking's state (future, cancelled, already marked, not marked)."""


class AlreadyMarked(InvalidAction):
    pass


class InvalidInput(DomainError):
    """Bad input from a user or a file; the message names what and where."""
