"""Errors shared by the generator models."""

from __future__ import annotations

import numpy as np
from flax.traverse_util import flatten_dict


class UnknownTapError(KeyError, ValueError):
    """A tap name the model does not have.

    A ``KeyError`` (a name looked up in the model's table of taps) and a ``ValueError`` (a bad
    argument), so that callers written against either keep working; the message lists the
    model's taps.
    """

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


def shape_problems(expected: dict, params: dict) -> list[str]:
    """What keeps a params pytree from fitting ``expected`` (``{'a.b.weight': shape}``).

    Returns one phrase each for missing keys, unexpected keys and misshapen arrays (at most
    eight named each), empty when the pytree fits; the families' ``check_params`` raise with it.
    """
    found = {k: tuple(np.shape(v)) for k, v in flatten_dict(params, sep=".").items()}
    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    wrong = [f"{k}: expected {expected[k]}, found {found[k]}" for k in expected
             if k in found and found[k] != tuple(expected[k])]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if extra:
        problems.append(f"unexpected keys {extra[:8]}{' ...' if len(extra) > 8 else ''}")
    if wrong:
        problems.append("shapes that do not fit: " + "; ".join(wrong[:8]))
    return problems
