"""The ``jaxlatent`` command as a whole: one flag vocabulary across subcommands, the shared helpers."""

from __future__ import annotations

import argparse
import json
from typing import NamedTuple

import numpy as np
import pytest

import jaxlatent
import jaxlatent.cli
from jaxlatent.localbasis.grassmann import METRICS
from jaxlatent.cli import _common
from jaxlatent.workflows.spaces import model_options, tap_fn
from jaxlatent.workflows.taps import check_taps
from jaxlatent.models.stylegan2.model import StyleGAN2Config
from jaxlatent.engine.latents import class_labels
from helpers import random_stylegan2

# the flag each concept is spelled with (NVlabs stylegan3's names) and where argparse stores it
VOCABULARY = {
    "seeds": "--seeds",
    "truncation_psi": "--trunc",
    "class_idx": "--class",
    "seed": "--seed",
    "chunk_size": "--chunk-size",
    "out": "--out",
    "metric": "--metric",
    "which": "--which",
    "n": "--n",
}
RETIRED = {"--truncation-psi", "--key", "--batch", "--class-index", "--class-idx", "--psi"}


def _subcommands(parser: argparse.ArgumentParser | None = None, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every (nested) subcommand's parser by its full name, e.g. ``"run local-basis"``."""
    parser = jaxlatent.cli.build_parser() if parser is None else parser
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[prefix + name] = sub
                out.update(_subcommands(sub, prefix + name + " "))
    return out


def _flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings if s.startswith("--")}


def test_every_subcommand_spells_the_same_thing_the_same_way():
    commands = _subcommands()
    assert {"convert", "generate", "local-basis", "grassmann", "local-dim", "distortion", "report",
            "demo"} <= set(commands)
    flag_of = {dest: flag for dest, flag in VOCABULARY.items()}
    dest_of = {flag: dest for dest, flag in VOCABULARY.items()}
    seen = set()
    for name, parser in commands.items():
        flags = _flags(parser)
        assert not RETIRED & set(flags), (name, RETIRED & set(flags))
        for flag, action in flags.items():
            # `jaxlatent run` keeps an analysis' own options apart as opt_<argument name>
            concept = action.dest.removeprefix("opt_")
            # a concept of the vocabulary has exactly its flag, and its flag means only it
            if concept in flag_of:
                assert action.option_strings == [flag_of[concept]], (name, action.option_strings)
            if flag in dest_of:
                assert concept == dest_of[flag], (name, flag, action.dest)
                seen.add(flag)
            if concept == "metric":
                assert tuple(action.choices) == METRICS, name
        # the help text names papers, not internal numbering
        text = parser.format_help().lower()
        assert "seed 00" not in text and "seeds 00" not in text, name
    assert seen == set(VOCABULARY.values())


def test_analysis_commands_share_the_model_flags():
    commands = _subcommands()
    for name in ("local-basis", "grassmann", "local-dim", "distortion", "report"):
        flags = _flags(commands[name])
        assert {"--which", "--trunc", "--class", "--chunk-size", "--out"} <= set(flags), name
        assert commands[name]._actions[1].dest == "checkpoint" or any(
            a.dest == "checkpoint" for a in commands[name]._actions), name
    for name in ("grassmann", "distortion", "report", "demo"):        # they draw at random
        assert "--seed" in _flags(commands[name]), name
    for name in ("generate", "local-basis", "grassmann", "local-dim", "distortion"):
        assert "--seeds" in _flags(commands[name]), name


def test_metric_choices_are_checked_by_the_parser(capsys):
    with pytest.raises(SystemExit) as err:
        jaxlatent.cli.main(["distortion", "ckpt", "--out", "x", "--metric", "nope"])
    assert err.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_parsed_names_follow_the_library():
    args = jaxlatent.cli.build_parser().parse_args(
        ["grassmann", "ckpt", "--trunc", "0.7", "--class", "2", "--seed", "5", "--chunk-size", "4",
         "--out", "o", "--metric", "proj"])
    assert (args.truncation_psi, args.class_idx, args.seed, args.chunk_size, args.metric) == (0.7, 2, 5, 4, "proj")
    assert args.seeds == "0-63" and args.which is None


def test_class_labels():
    np.testing.assert_array_equal(class_labels(3, 1, 2), [[0, 1, 0], [0, 1, 0]])
    assert class_labels(0, None, 4) is None
    with pytest.raises(ValueError, match="unconditional"):
        class_labels(0, 1, 2, where="ckpt")
    with pytest.raises(ValueError, match=r"ckpt: conditional model with 3 classes: pass --class 0..2"):
        class_labels(3, None, 2, where="ckpt")
    with pytest.raises(ValueError, match="found 3"):
        class_labels(3, 3, 2)


def test_model_options_and_tap_fn():
    config = StyleGAN2Config(z_dim=4, w_dim=4, c_dim=3, img_resolution=4, mapping_layers=1,
                             channel_base=32, channel_max=4)
    model = random_stylegan2(config, 0)
    args = argparse.Namespace(checkpoint="ckpt", truncation_psi=0.5, class_idx=2)
    kw = _common.model_kwargs(args)
    assert kw == {"truncation_psi": 0.5, "class_idx": 2, "where": "ckpt"}
    opts = model_options(model, **kw)
    assert opts["truncation_psi"] == 0.5
    np.testing.assert_array_equal(opts["c"], [0, 0, 1])
    assert model_options(model, batch=2, **kw)["c"].shape == (2, 3)
    z = np.random.RandomState(0).randn(2, 4).astype(np.float32)
    want = model.fn("w", c=np.eye(3, dtype=np.float32)[2], truncation_psi=0.5)(z)
    # the same compiled program on the same inputs: equal bits
    np.testing.assert_array_equal(tap_fn(model, "w", **kw)(z), want)
    with pytest.raises(ValueError, match="pass --class"):
        model_options(model, **_common.model_kwargs(argparse.Namespace(checkpoint="ckpt", truncation_psi=None,
                                                                       class_idx=None)))


def test_model_options_refuse_stylegan2_flags_on_fastgan():
    class FakeFastGAN:   # only what model_options reads
        class config:
            family = "fastgan"

    none = argparse.Namespace(checkpoint="f.pth", truncation_psi=None, class_idx=None)
    assert model_options(FakeFastGAN(), **_common.model_kwargs(none)) == {}
    for flags in ({"truncation_psi": 0.7, "class_idx": None}, {"truncation_psi": None, "class_idx": 0}):
        with pytest.raises(ValueError, match=r"f.pth: truncation \(--trunc\) and class \(--class\) apply to StyleGAN2"):
            model_options(FakeFastGAN(), **_common.model_kwargs(argparse.Namespace(checkpoint="f.pth", **flags)))


def test_helpers_split_check_write(tmp_path):
    assert _common.split_list(" a, b,,c ") == ("a", "b", "c") and _common.split_list(None) == ()

    class Model:
        def taps(self):
            return ["w", "image"]

    assert check_taps(Model(), ["image"]) == ["image"]
    with pytest.raises(ValueError, match=r"--tap: unknown tap\(s\) \['x'\]; this model has \['w', 'image'\]"):
        check_taps(Model(), ["w", "x"], flag="--tap")

    class Pair(NamedTuple):
        a: np.ndarray
        b: float

    _common.write_json(tmp_path / "x.json", {"pair": Pair(np.arange(3), np.float32(0.5)), "n": np.int64(2)})
    assert json.loads((tmp_path / "x.json").read_text()) == {"pair": {"a": [0, 1, 2], "b": 0.5}, "n": 2}


def test_load_model_and_latents(tmp_path):
    config = StyleGAN2Config(z_dim=6, w_dim=4, img_resolution=4, mapping_layers=1, channel_base=32, channel_max=4)
    ckpt = jaxlatent.save(random_stylegan2(config, 1), tmp_path / "ckpt")
    parser = argparse.ArgumentParser()
    _common.add_model_args(parser)
    args = parser.parse_args([str(ckpt), "--seeds", "3,1", "--out", str(tmp_path / "out")])
    model, seeds, z = _common.load_model_and_latents(args)
    assert seeds == [3, 1] and z.shape == (2, 6) and (tmp_path / "out").is_dir()
    np.testing.assert_array_equal(z[0], np.random.RandomState(3).randn(6).astype(np.float32))
    assert model.config == config
    args = parser.parse_args([str(ckpt), "--class", "1", "--out", str(tmp_path / "out")])
    with pytest.raises(ValueError, match="unconditional"):
        _common.load_model_and_latents(args)
