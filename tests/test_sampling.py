"""Random draws: neighbours at a fixed distance, Haar-random orthonormal bases."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxlatent.engine.sampling import neighbours, random_orthonormal


def test_random_orthonormal_is_orthonormal_and_haar():
    q = random_orthonormal(key=jax.random.key(2), n=6, k=3, batch=2000)
    np.testing.assert_allclose(jnp.swapaxes(q, -1, -2) @ q, np.broadcast_to(np.eye(3), (2000, 3, 3)), atol=1e-5)
    # Haar: each column uniform on the sphere, so E[q_ij^2] = 1/n and the mean vanishes
    np.testing.assert_allclose(jnp.mean(q ** 2, axis=0), 1 / 6, atol=0.02)
    np.testing.assert_allclose(jnp.mean(q, axis=0), 0.0, atol=0.05)



def test_neighbours_are_at_distance_eps():
    z = jnp.zeros((4, 7))
    np.testing.assert_allclose(jnp.linalg.norm(neighbours(key=jax.random.PRNGKey(0), z=z, eps=0.25), axis=-1), 0.25,
                               rtol=1e-6)
