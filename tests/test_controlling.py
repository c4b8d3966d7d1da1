"""Controlling sets and translation: the toy oracle, the size rule, the follow-up's optimisation."""

import argparse
import json

import jax
import numpy as np
import pytest

import jaxlatent
from jaxlatent.models import digits
from jaxlatent.correlation.controlling import choose_size, controlling_set, success_curve
from jaxlatent.correlation.interventions import ConceptScores
from jaxlatent.engine.linalg import unordered_lapack_calls
from jaxlatent.correlation.tanh_weights import FOLLOW_UP, optimize_weights
from jaxlatent.correlation.translation import translate
from jaxlatent.cli import correlation as cli
from jaxlatent.workflows.features import classifier_for
from jaxlatent.report.page import ReportPage
from jaxlatent.report.build import QUICK, section_context
from jaxlatent.report.sections import correlation as section
from jaxlatent.workflows import correlation as correlation_workflow
from test_correlation import D, oracle_classifier, oracle_g


@pytest.fixture(scope="module")
def z():
    return jax.random.normal(jax.random.key(0), (60, D))


@pytest.mark.parametrize("method, options", [
    ("sequential", {}),
    ("sequential", {"selection": "greedy"}),
    ("optimize", {}),
])
def test_oracle_both_methods_find_dims_3_and_7(z, method, options):
    for target, signs in ((1, [1, -1]), (2, [-1, 1])):
        cs = controlling_set(oracle_g, oracle_classifier, z, target=target, source=0, method=method, **options)
        assert cs.dims.tolist() == [3, 7] and cs.signs.tolist() == signs, (target, cs)
        assert float(cs.success[1]) == 1.0 and float(cs.success[0]) < 0.5   # one of the two is not enough
        assert cs.all_signs[3] == signs[0] and cs.all_signs[7] == signs[1]
    if method == "sequential" and not options:
        others = np.delete(np.asarray(cs.scores), [3, 7])
        assert np.abs(others).max() < 1e-6 and cs.success.shape == (D,)


def test_follow_up_form_ranks_3_and_7_first(z):
    cs = controlling_set(oracle_g, oracle_classifier, z, target=1, source=0, method="optimize",
                         objective="follow_up", fit=FOLLOW_UP)
    assert cs.dims.tolist() == [3, 7] and cs.signs.tolist() == [1, -1]
    w = np.abs(np.asarray(cs.weights))
    assert np.delete(w, [3, 7]).max() < w[[3, 7]].min()


def test_follow_up_one_pass_equals_its_loop_in_torch(x64):
    """The follow-up's create_weight.py loop (batch 1, SGD 0.05, z(2 -+ 20 m w)/2), in float64 torch."""
    import torch  # optional dependency, the reference side only
    zs = np.asarray(jax.random.normal(jax.random.key(1), (12, D)), np.float64) + 0.3

    def g_t(z):
        return (torch.tanh(z / 4) * 4)[:, None, :]

    def clf_t(x):
        u = x[:, 0, 3] - x[:, 0, 7]
        return torch.stack([torch.zeros_like(u), 3 * (u - 4), 3 * (-u - 4)], dim=1)

    weight = torch.full((1, D), 0.5, dtype=torch.float64, requires_grad=True)
    ones = torch.ones(1, D, dtype=torch.float64)
    for row in zs:
        x = torch.from_numpy(row.reshape(1, D))
        w1 = torch.tanh(weight)
        m = float(np.mean(row))
        p = lambda v: torch.softmax(clf_t(g_t(v)), dim=1)[0, 1]
        out1, out2 = p((2 * ones - w1 * m * 20) * x / 2), p((2 * ones + w1 * m * 20) * x / 2)
        loss = -torch.max(torch.abs(out1 - p(x)), torch.abs(out2 - p(x))) + 0.2 * torch.norm(w1, 2)
        grad, = torch.autograd.grad(loss, weight)
        weight = weight - 0.05 * grad
    want = torch.tanh(weight).detach().numpy().ravel()
    w, losses = optimize_weights(oracle_g, oracle_classifier, zs, 1, objective="follow_up", **FOLLOW_UP)
    assert losses.shape == (12,)
    np.testing.assert_allclose(np.asarray(w), want, atol=1e-12)


def test_size_rule():
    assert choose_size([0.1, 0.5, 0.92, 1.0]) == 3
    assert choose_size([0.1, 0.5, 0.7, 0.71, 0.6], success_target=0.9, saturation=0.02) == 3
    assert choose_size([0.1, 0.5, 0.7, 0.71, 0.6], success_target=0.9, saturation=0.0) == 4


def test_success_curve_matches_a_loop(z):
    ranking, directions = [7, 3, 0], np.array([1, -1, 1, 1, 1, 1, 1, -1, 1, 1], np.float32)
    s, tp = success_curve(oracle_g, oracle_classifier, z, 2, ranking, directions, magnitude=2.5)
    for k in range(3):
        zz = np.array(z)
        for d in ranking[:k + 1]:
            zz[:, d] = directions[d] * 2.5
        p = np.asarray(jax.nn.softmax(oracle_classifier(oracle_g(zz))))
        assert float(s[k]) == (p.argmax(1) == 2).mean()
        np.testing.assert_allclose(float(tp[k]), p[:, 2].mean(), rtol=1e-5)


def test_translation_oracle_set_versus_baselines(z):
    cs = controlling_set(oracle_g, oracle_classifier, z, target=1, source=0)
    tr = translate(oracle_g, oracle_classifier, z, target=1, dims=cs.dims, signs=cs.all_signs, source=0,
                   key=jax.random.key(2), num_random=16)
    assert tr.magnitudes.tolist() == [1, 2, 3, 5, 10, 20]
    strong = np.asarray(tr.magnitudes) >= 3
    assert np.all(np.asarray(tr.success)[strong] == 1.0) and np.all(np.asarray(tr.source_share)[strong] == 0.0)
    # random pairs rarely hold both 3 and 7 (1 in 45): near the rate of chance flips
    assert np.asarray(tr.random_success).max() < 0.35
    np.testing.assert_allclose(tr.success + tr.source_share, 1.0)   # only classes 0 and 1 occur here
    assert int(tr.num_samples) == int(cs.num_samples)


def test_programs_have_no_unordered_lapack_calls(z):
    assert unordered_lapack_calls(ConceptScores(oracle_g, oracle_classifier), z) == []
    assert unordered_lapack_calls(lambda zz: optimize_weights(oracle_g, oracle_classifier, zz, 1, steps=2)[0],
                                  z) == []


def test_report_section_and_cli_on_the_shipped_model(tmp_path):
    """The quick section and a small `jaxlatent correlation` run (the same compiled programs)."""
    model = jaxlatent.load(digits.assets_dir())
    page = ReportPage(tmp_path / "report", "t")
    arrays = {}
    section.add_section(page, model, section_context(model, QUICK, classifier=digits.load_classifier(),
                                                     arrays=arrays))
    page.write()
    res = page.results["correlation"]
    sizes = np.asarray(res["set_size"])
    assert sizes.shape == (10, 10) and np.all(np.diag(sizes) == 0)
    assert np.all(sizes[sizes > 0] <= correlation_workflow.QUICK.max_k)
    assert arrays["correlation/sensitivity"].shape == (64, 10)
    for name in ("importance", "success", "matrix", "translations"):
        assert (tmp_path / "report" / f"correlation_{name}.png").exists()
    page = ReportPage(tmp_path / "none", "t")
    section.add_section(page, model, section_context(model, QUICK))
    assert "correlation" not in page.results

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    out = tmp_path / "cli"
    args = parser.parse_args(["correlation", digits.assets_dir(), "--n", "20", "--effects", "6",
                              "--max-k", "8", "--steps", "0", "--bootstrap", "0", "--pair", "3,2",
                              "--out", str(out)])
    assert args.func(args) == 0
    written = json.loads((out / "results.json").read_text())
    assert written["pair"] == [3, 2] and written["space"] == "z"
    # the first 20 of the section's 32 latents, the same ranking and rule: the same sizes where
    # a source class has the same samples in both (classes whose samples all lie in the first 20)
    label = np.asarray(arrays["correlation/label"])
    same = [c for c in range(10) if (label == c).any() and np.flatnonzero(label == c).max() < 20]
    assert same
    np.testing.assert_array_equal(np.asarray(written["set_size"])[same], sizes[same])
    assert (out / "report.html").exists() and (out / "arrays.npz").exists()
    with pytest.raises(ValueError, match="--classifier DIR is needed"):
        classifier_for(model, str(tmp_path), None)
