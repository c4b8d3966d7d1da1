"""The API convention of docs/api.md, checked on every public function and every command.

Walks ``jaxlatent.__all__`` with ``inspect.signature`` and the ``jaxlatent`` argument parser, so
the next function or flag cannot drift from the table.
"""

from __future__ import annotations

import argparse
import inspect

import jax
import numpy as np
import pytest

import jaxlatent
from jaxlatent.cli import COMMANDS, build_parser
from jaxlatent.engine.keys import as_key

EXECUTION = ("chunk_size", "mesh", "use_pmap", "progress")
# names the table retires, with the name that replaced them
RETIRED = {"n_components": "k", "d": "k", "num_directions": "k", "dims_range": "ks", "iters": "max_iter",
           "n_iter": "iterations", "num_steps": "steps", "num_frames": "frames", "alpha": "strength",
           "alphas": "strengths", "t": "strengths", "seed": "key", "rng": "key", "prng_key": "key",
           "model_fns": "fns", "solver": "method", "left": "basis", "right": "directions"}
# the callables a batched analysis maps over chunks of latents
CALLABLES = ("f", "g", "render", "features", "fn")


def _functions():
    for name in jaxlatent.__all__:
        value = getattr(jaxlatent, name)
        if inspect.isfunction(value):
            yield name, inspect.signature(value)


def _results():
    for name in jaxlatent.__all__:
        value = getattr(jaxlatent, name)
        if isinstance(value, type) and hasattr(value, "_fields"):
            yield name, value._fields


@pytest.mark.parametrize("name,sig", list(_functions()), ids=[n for n, _ in _functions()])
def test_signature_follows_the_table(name, sig):
    params = sig.parameters
    for p in params.values():
        assert p.name not in RETIRED, f"{name}: parameter {p.name!r} is spelled {RETIRED[p.name]!r} (docs/api.md)"
        if p.kind is p.VAR_KEYWORD:
            assert name == "load", f"{name}: options are named, not passed through **{p.name}"
        if p.kind is p.POSITIONAL_OR_KEYWORD:
            # positional parameters are the data: required, no options among them
            assert p.default is p.empty, f"{name}: option {p.name!r} (has a default) must be keyword-only"
    for option in ("key", "k", "ks") + EXECUTION:
        if option in params:
            assert params[option].kind is inspect.Parameter.KEYWORD_ONLY, f"{name}: {option!r} must be keyword-only"
    if "progress" in params:
        assert params["progress"].default in (False, True), f"{name}: progress defaults to a bool"
    if "use_pmap" in params:
        assert params["use_pmap"].default is False, name
    if "mesh" in params:
        assert params["mesh"].default is None, name
    first = next(iter(params), None)
    if first in CALLABLES and "chunk_size" in params:
        missing = [o for o in EXECUTION if o not in params]
        assert not missing, f"{name}: a batched analysis takes every execution option; missing {missing}"
    assert (getattr(jaxlatent, name).__doc__ or "").strip(), f"{name}: no docstring"


@pytest.mark.parametrize("name,fields", list(_results()), ids=[n for n, _ in _results()])
def test_result_fields_follow_the_table(name, fields):
    for field in fields:
        assert field not in RETIRED, f"{name}.{field} is spelled {RETIRED[field]!r} (docs/api.md)"


def test_top_k_results_share_their_field_names():
    assert jaxlatent.TopSingular._fields == jaxlatent.LocalBasisTopK._fields
    assert jaxlatent.LocalBasis._fields == jaxlatent.LocalBasisTopK._fields[:3]


def test_keys_of_both_kinds_give_the_same_stream():
    typed, legacy = jax.random.key(3), jax.random.PRNGKey(3)
    np.testing.assert_array_equal(as_key(typed), as_key(legacy))
    a = jaxlatent.random_orthonormal(key=typed, n=6, k=2)
    b = jaxlatent.random_orthonormal(key=legacy, n=6, k=2)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="expected a PRNG key"):
        as_key(np.zeros(3, np.float32), "test")


def test_progress_is_a_bool_or_a_wrapper_everywhere():
    fns = {"a": lambda z: z * 2.0}
    z = np.random.RandomState(0).randn(6, 3).astype(np.float32)
    seen = []
    wrap = lambda it: (seen.append(1), it)[1]  # noqa: E731
    for progress in (False, True, wrap):
        out = jaxlatent.layer_dimensions(fns, z, progress=progress)
        assert set(out) == {"a"}
    assert seen


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def _flags():
    """flag -> {command: (dest, type, choices)} over every command (and every ``run`` analysis)."""
    out: dict[str, dict] = {}
    for command, sub in _subparsers(build_parser()).items():
        parsers = {command: sub}
        if command == "run":
            parsers = {f"run {a}": p for a, p in _subparsers(sub).items()}
        for label, parser in parsers.items():
            for action in parser._actions:
                for flag in action.option_strings:
                    out.setdefault(flag, {})[label] = (action.dest, action.type, action.help or "")
    return out


# shared flags: the dest each maps to and a word its help must contain, one meaning each
MEANINGS = {
    "--seed": ("seed", "PRNG"), "--seeds": ("seeds", "seed"), "--n": ("n", "latents"),
    "--k": ("k", ""), "--tap": ("tap", "tap"), "--taps": ("taps", "tap"), "--steps": ("steps", "steps"),
    "--method": ("method", ""), "--trunc": ("truncation_psi", "truncation"), "--chunk-size": ("chunk_size", "latents"),
    "--out": ("out", ""), "--layers": ("layers", "layer range"), "--classifier": ("classifier", "classifier"),
}


def test_every_command_has_its_file():
    assert set(_subparsers(build_parser())) == set(COMMANDS)


def test_one_meaning_per_flag():
    flags = _flags()
    assert "--solver" not in flags and "--components" not in flags and "--strength" not in flags
    for flag, (dest, word) in MEANINGS.items():
        uses = flags.get(flag, {})
        for label, (d, _, help_text) in uses.items():
            if label.startswith("run ") and d.startswith("opt_"):
                d = d[4:]
            if flag == "--seed" and label.startswith("run "):
                raise AssertionError("run names its latents with --first-seed; --seed is the PRNG seed")
            assert d == dest, f"{label} {flag}: dest {d!r}, expected {dest!r}"
            assert word.lower() in help_text.lower(), f"{label} {flag}: help {help_text!r} does not say {word!r}"
