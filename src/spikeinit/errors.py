"""The one exception family of spikeinit.

Every exception spikeinit raises on purpose is a :class:`SpikeinitError`. It comes in two
kinds that the caller treats differently:

- :class:`UserError`: the call, the data or the environment is wrong and the caller can fix
  it (the message names the parameter or file and what is allowed). The CLI prints it as one
  line and exits with code 2.
- :class:`InternalError`: spikeinit reached a state it should never reach; a bug. The CLI
  prints one line with a bug-report hint and exits with code 1, as it does for any exception
  outside this family.

The user errors keep the built-in base a caller would catch (:class:`ValueError` for a bad
argument, :class:`RuntimeError` for bad data or a failed build), so ``except ValueError``
written against earlier versions still works.

Example:
    >>> from spikeinit.errors import InvalidArgumentError, UserError
    >>> try:
    ...     raise InvalidArgumentError("rate must lie in (0, 1), got 0.0")
    ... except UserError as error:
    ...     print(type(error).__name__, isinstance(error, ValueError))
    InvalidArgumentError True
"""

from __future__ import annotations

__all__ = [
    "BUG_REPORT_URL",
    "InternalError",
    "InvalidArgumentError",
    "SpikeinitError",
    "UserError",
]

#: Where the CLI asks users to report an :class:`InternalError` (or any unexpected exception).
BUG_REPORT_URL = "https://github.com/spikeinit/spikeinit/issues"


class SpikeinitError(Exception):
    """Base of every exception spikeinit raises on purpose.

    Example:
        >>> issubclass(UserError, SpikeinitError), issubclass(InternalError, SpikeinitError)
        (True, True)
    """


class UserError(SpikeinitError):
    """Something the caller can fix: an argument, a file, the data, the environment.

    The message names what is wrong and what is allowed. The CLI exits with code 2.

    Example:
        >>> from spikeinit.data import DatasetError
        >>> issubclass(DatasetError, UserError), issubclass(InternalError, UserError)
        (True, False)
    """


class InvalidArgumentError(UserError, ValueError):
    """An argument outside its allowed range or of the wrong kind.

    Also a :class:`ValueError`. The message names the parameter, the value received and the
    allowed range.

    Example:
        >>> import spikeinit
        >>> try:
        ...     spikeinit.initialize(None)
        ... except InvalidArgumentError as error:
        ...     print(str(error).split(" ")[0])
        model
    """


class InternalError(SpikeinitError, RuntimeError):
    """spikeinit reached a state it should never reach: a bug to report.

    The CLI exits with code 1 and asks for a bug report (:data:`BUG_REPORT_URL`).

    Example:
        >>> isinstance(InternalError("a layer without a record"), RuntimeError)
        True
    """
