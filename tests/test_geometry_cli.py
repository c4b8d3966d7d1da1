"""`jaxlatent geometry` (Wang & Ponce 2021 metric) and the report section, on a tiny StyleGAN2."""

from __future__ import annotations

import argparse
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import random_stylegan2

from jaxlatent import io
from jaxlatent.geometry.metric import metric_tensor
from jaxlatent.geometry.stats import average_metric
from jaxlatent.cli import geometry as metric_cli
from jaxlatent.models.stylegan2.model import StyleGAN2Config
from jaxlatent.report.page import ReportPage
from jaxlatent.report.build import QUICK, section_context
from jaxlatent.report.sections import geometry as section
from jaxlatent.workflows.geometry import inversion_runs
from jaxlatent.workflows.spaces import latent_space

CONFIG = StyleGAN2Config(z_dim=6, w_dim=6, img_resolution=8, mapping_layers=2, channel_base=32, channel_max=8)


@pytest.fixture(scope="module")
def model():
    return random_stylegan2(CONFIG, 1)


def test_cli_writes_metric_npz_equal_to_the_library(model, tmp_path):
    ckpt = str(tmp_path / "ckpt")
    io.save(model, ckpt)
    parser = argparse.ArgumentParser()
    metric_cli.register(parser.add_subparsers())
    out = tmp_path / "out"
    args = parser.parse_args(["geometry", ckpt, "--space", "w", "--seeds", "0-4", "--out", str(out), "--axes", "3"])
    args.func(args)
    for name in ("metric.npz", "results.json", "spectra.png", "homogeneity_log.png", "axes_seed0.png"):
        assert os.path.exists(out / name), name
    data = np.load(out / "metric.npz")
    z = np.stack([np.random.RandomState(s).randn(6) for s in range(5)]).astype(np.float32)
    space = latent_space(model, "w")
    ref = metric_tensor(space.image, space.points(z))
    # the same function and latents through the same compiled program
    np.testing.assert_allclose(data["eigenvalues"], np.asarray(ref.eigenvalues), rtol=1e-5)
    res = json.loads((out / "results.json").read_text())
    assert res["space"] == "w" and 1 <= res["summary"]["dims_99"] <= 6
    with pytest.raises(ValueError, match="--lpips-weights"):
        metric_cli.run(parser.parse_args(["geometry", ckpt, "--distance", "lpips", "--out", str(out)]))


def test_report_section_on_a_tiny_model(model, tmp_path):
    page = ReportPage(tmp_path, "t")
    arrays = {}

    class Features:                                      # a stand-in classifier: fixed features
        @staticmethod
        def features(x):
            return jnp.tanh(jnp.reshape(x, (x.shape[0], -1))[:, :10] * 3)

        logits = features                                # what the report checks a classifier reads

    section.add_section(page, model, section_context(model, QUICK, classifier=Features(), arrays=arrays))
    res = page.results["geometry"]
    assert {"w_mse", "w_features", "seconds"} <= set(res) and "inversion" not in res      # full report only
    for name in ("geometry_spectra.png", "geometry_homogeneity.png", "geometry_axes.png"):
        assert os.path.exists(page.path(name))
    assert arrays["geometry/w_mse/eigenvalues"].shape == (16, 6)
    page.write()


def test_inversion_runs_compare_z_w_and_eigen_coordinates(model):
    space = latent_space(model, "w")
    w = space.points(np.random.RandomState(0).randn(8, 6).astype(np.float32))
    avg = average_metric(metric_tensor(space.image, w))
    curves = inversion_runs(model, avg, 2, steps=5, k=3)
    assert set(curves) == {"Adam in z", "Adam in W", "Adam in W eigen-coordinates (all)",
                           "Adam in W eigen-coordinates (top 3)"}
    assert all(h.shape == (2, 6) for h in curves.values())
    # every W run starts at the same w, so at the same distance
    first = [h[:, 0] for name, h in curves.items() if "W" in name]
    np.testing.assert_allclose(first, np.broadcast_to(first[0], (3, 2)), rtol=1e-6)
    assert all(np.all(np.isfinite(h)) for h in curves.values())
