"""The one exception type that the CLI turns into a one-line message."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """Bad input or a request wsbench cannot honour; the message says what and where.

    The CLI prints ``error: <message>`` and exits non-zero without a traceback (unless ``--debug``).
    """
