"""Graph structure on integer node ids: compressed sparse rows and transitive closures.

A ground-floor package beside :mod:`embedlab.geometry`: NumPy only, importing nothing of
embedlab, so ``evals``, ``losses`` and ``models`` can use it without depending on ``data``.
:class:`Closure` is the one place where the structure of a hierarchy (ancestors, descendants,
direct parents, the transitive reduction, leaves, padded ancestor tables) is computed; each
structure is built on first use and cached on the instance. File formats and the named
datasets live in :mod:`embedlab.data.closure`, which re-exports these names.
"""

from embedlab.graphs.closure import Closure
from embedlab.graphs.closure import Csr
from embedlab.graphs.closure import CycleError
from embedlab.graphs.closure import as_closure
from embedlab.graphs.closure import csr
from embedlab.graphs.closure import sorted_unique_edges
from embedlab.graphs.closure import symmetrize
from embedlab.graphs.closure import transitive_closure

__all__ = [
    "Closure",
    "Csr",
    "CycleError",
    "as_closure",
    "csr",
    "sorted_unique_edges",
    "symmetrize",
    "transitive_closure",
]
