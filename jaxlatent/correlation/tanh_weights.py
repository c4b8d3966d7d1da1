"""Method B of the controlling set: tanh weights optimised with optax (Li et al., IEEE TAI 2021).

The follow-up of Li et al. ICPR 2020 ("Interpreting the Latent Space of GANs via Measuring
Decoupling", code ``create_weight.py``) learns one weight per latent dimension,
``w = tanh(theta)``, ``theta`` starting at 0.5, so that intervening along ``w`` moves the
target class probability ``p_t`` as much as possible while a norm penalty keeps ``w`` small;
``|w_i|`` then ranks the dimensions. Two objectives:

* ``"follow_up"`` (as in that code): ``z -+ = z (1 -+ 10 m w)`` with ``m`` the sample's mean
  over dimensions, loss ``-max(|p_t(z-) - p_t(z)|, |p_t(z+) - p_t(z)|) + 0.2 ||w||_2``, plain
  gradient descent, learning rate 0.05, one sample per step, one pass over the samples.
  The loss is unchanged by ``w -> -w``, so the sign of ``w`` is no direction.
* ``"signed"`` (ours, the default): a soft ``set`` towards ``sign(w) a``,
  ``z' = z + |w| (c - z) + w a s`` (``|w| = 1``: ``z_i <- c_i + sign(w_i) a s_i``, the edit
  Method A applies), loss ``-mean log p_t(z') + lam ||w||_1``, Adam over the whole batch. The
  sign of ``w_i`` is the direction towards the target; the L1 penalty prices each unit of
  weight at ``lam`` nats of target log-probability. The log keeps a gradient where ``p_t`` is
  still ~0 (the source samples at the start), where ``p_t`` itself has none.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from jaxlatent.correlation.interventions import rebuild, standard_units
from jaxlatent.engine.jacobian import check_latents
from jaxlatent.engine.parallel import split_callable

OBJECTIVES = ("signed", "follow_up")

# create_weight.py: z * (2 -+ 20 m w) / 2, a factor 1 -+ 10 m w
FOLLOW_UP_GAIN = 10.0
FOLLOW_UP = dict(penalty=0.2, learning_rate=0.05, batch_size=1, epochs=1)


def _target_prob(g, classifier, z, target):
    return jax.nn.softmax(classifier(g(z)), axis=-1)[:, target]


def _target_log_prob(g, classifier, z, target):
    return jax.nn.log_softmax(classifier(g(z)), axis=-1)[:, target]


def _loss(theta, z, pipeline, target, objective, magnitude, penalty, center, scale):
    g, classifier = pipeline
    w = jnp.tanh(theta)
    if objective == "signed":
        edited = z + jnp.abs(w) * (center - z) + w * magnitude * scale
        gain = jnp.mean(_target_log_prob(g, classifier, edited, target))
        return -gain + penalty * jnp.sum(jnp.abs(w))
    m = jnp.mean(z, axis=-1, keepdims=True)
    p0 = _target_prob(g, classifier, z, target)
    minus = _target_prob(g, classifier, z * (1 - FOLLOW_UP_GAIN * m * w), target)
    plus = _target_prob(g, classifier, z * (1 + FOLLOW_UP_GAIN * m * w), target)
    change = jnp.maximum(jnp.abs(minus - p0), jnp.abs(plus - p0))
    return -jnp.mean(change) + penalty * jnp.linalg.norm(w)


@functools.partial(jax.jit, static_argnames=("static", "target", "objective"))
def _fit(static, dyn, z, batches, theta, learning_rate, magnitude, penalty, center, scale, *,
         target, objective):
    pipeline = rebuild(static, dyn)
    opt = optax.adam(learning_rate) if objective == "signed" else optax.sgd(learning_rate)
    grad = jax.value_and_grad(_loss)

    def step(carry, idx):
        theta, state = carry
        loss, gr = grad(theta, z[idx], pipeline, target, objective, magnitude, penalty, center, scale)
        updates, state = opt.update(gr, state, theta)
        return (optax.apply_updates(theta, updates), state), loss

    (theta, _), losses = jax.lax.scan(step, (theta, opt.init(theta)), batches)
    return jnp.tanh(theta), losses


def optimize_weights(g: Callable, classifier: Callable, z, target: int, *, objective: str = "signed",
                     magnitude: float = 3.0, penalty: float = 0.2, learning_rate: float = 0.05,
                     steps: int = 200, batch_size: int | None = None, epochs: int | None = None,
                     init: float = 0.5, center=None, scale=None, key: jax.Array | None = None):
    """Per-dimension weights ``w = tanh(theta)`` that move the target probability (Method B).

    Args:
      g: batched generator ``(B, D) -> images``. classifier: batched ``images -> logits (B, C)``.
      z: (N, D) latents (usually the source-class samples).
      target: the class whose probability ``p_t`` the weights move.
      objective: ``"signed"`` (ours) or ``"follow_up"`` (Li et al. 2021; module docstring).
        ``**FOLLOW_UP`` with ``objective="follow_up"`` gives that code's penalty, rate, batch and single pass.
      magnitude: ``a`` of the signed objective's soft set, in standard units.
      penalty: ``lam`` (L1 for "signed", L2 for "follow_up").
      learning_rate: Adam's ("signed") or plain gradient descent's ("follow_up").
      steps: optimisation steps (ignored when ``epochs`` is given).
      batch_size: samples per step (default all N). epochs: passes over the samples, each in
        a new random order (``steps = epochs * ceil(N / batch_size)``).
      init: starting value of every ``theta_i`` (0.5 as in the follow-up).
      center, scale: (D,) standard units of the signed objective.
      key: PRNG key for the sample order (default: samples in the given order).

    Returns:
      ``(w (D,), losses (steps,))``. The optimisation is one compiled program (a ``lax.scan``
      over steps) on the default device: a sequence of dependent steps, not a batch map, so it
      takes no ``mesh``.
    """
    z = check_latents(z, "optimize_weights")
    if objective not in OBJECTIVES:
        raise ValueError(f"optimize_weights: objective must be one of {OBJECTIVES}, found {objective!r}")
    n, d = z.shape
    b = n if batch_size is None else max(1, min(int(batch_size), n))
    per_epoch = -(-n // b)
    total = int(epochs) * per_epoch if epochs is not None else int(steps)
    if total < 1:
        raise ValueError(f"optimize_weights: need at least one step, found steps={steps}, epochs={epochs}")
    rounds = -(-total * b // n)
    if key is None:
        order = jnp.tile(jnp.arange(n), rounds)
    else:
        order = jnp.concatenate([jax.random.permutation(k, n) for k in jax.random.split(key, rounds)])
    batches = order[: total * b].reshape(total, b)
    center, scale = standard_units(d, center, scale, z.dtype)
    static, dyn = split_callable((g, classifier))
    theta = jnp.full((d,), init, z.dtype)
    return _fit(static, dyn, z, batches, theta, jnp.asarray(learning_rate, z.dtype),
                jnp.asarray(magnitude, z.dtype), jnp.asarray(penalty, z.dtype), center, scale,
                target=int(target), objective=objective)
