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


def database_unavailable(error: Exception) -> str:
    """What to tell a user when the database failed mid-action (connection lost, deadlock, lock timeout).

    The action's transaction was rolled back whole, so nothing was saved and doing it again is safe.
    """
    cause = str(getattr(error, "orig", error)).strip().splitlines()
    detail = f" ({cause[0]})" if cause else ""
    return f"the database did not complete the action{detail}; nothing was saved, try again"
