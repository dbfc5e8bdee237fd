"""embedlab: learning embeddings in Euclidean, hyperbolic and spherical geometry with JAX.

Subpackages (dependencies run downwards only):

* ``embedlab.geometry``: manifolds as modules of pure functions + the ``Manifold`` record.
* ``embedlab.optim``: Riemannian optimizers as optax transforms.
* ``embedlab.losses``: pure loss functions that take a geometry.
* ``embedlab.evals``: metrics and evaluators.
* ``embedlab.data``: loaders and dataset builders.
* ``embedlab.train``: the shared training loop used by ``embedlab.main``.
"""

__version__ = "0.1.0"
