"""Every matmul behind a distance asks for full float32 precision.

JAX's default lets GPUs (TF32) and TPUs (bfloat16 passes) round a float32 matmul's inputs to
~3 significant digits; the ball's distance near its boundary then has no correct digit (on an
H100 the WordNet-nouns MAP of one table read 0.50 instead of 0.65). CPU results cannot show
the difference, so the tests read the precision off the lowered program.
"""

import jax
import jax.numpy as jnp
import pytest

from embedlab import geometry
from embedlab.evals import retrieval
from embedlab.losses import _batch

X = jnp.full((3, 4), 0.1)
Y = jnp.full((5, 4), 0.2)

CASES = {
    **{f"{name}.pairwise_dist": (lambda x, y, m=m: m.pairwise_dist(m.proj(x), m.proj(y)))
       for name, m in geometry.GEOMETRIES.items()},
    "row_dots": geometry.row_dots,
    "snr_distance": _batch.snr_distance,
    **{f"{name}.pairwise_similarity":
       (lambda x, y, m=m: m.pairwise_similarity(m.proj(x), m.proj(y), c=1.0))
       for name, m in geometry.GEOMETRIES.items()},
    "retrieval euclidean key": retrieval._euclidean_key,
    "retrieval sphere key": retrieval._sphere_key,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_distance_matmuls_request_highest_precision(name):
  text = jax.jit(CASES[name]).lower(X, Y).as_text()
  dots = [line for line in text.splitlines() if "dot_general" in line]
  assert dots, f"{name}: no matmul in the lowered program"
  for line in dots:
    assert "precision = [HIGHEST, HIGHEST]" in line, f"{name}: {line.strip()}"


def test_row_dots_matches_the_plain_product():
  x = jax.random.normal(jax.random.key(0), (2, 3, 4))
  y = jax.random.normal(jax.random.key(1), (2, 5, 4))
  assert jnp.allclose(geometry.row_dots(x, y), jnp.einsum("bnd,bmd->bnm", x, y), atol=1e-6)
