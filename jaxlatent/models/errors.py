"""Errors shared by the generator models."""

from __future__ import annotations


class UnknownTapError(KeyError, ValueError):
    """A tap name the model does not have.

    A ``KeyError`` (a name looked up in the model's table of taps) and a ``ValueError`` (a bad
    argument), so that callers written against either keep working; the message lists the
    model's taps.
    """

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""
