"""Dataset loaders: hierarchy closures (the structure itself is :mod:`embedlab.graphs`), trees,
features and tfds builders."""

from embedlab.data.closure import CLOSURE_FORMATS
from embedlab.data.closure import CLOSURES
from embedlab.data.closure import Closure
from embedlab.data.closure import ClosureFormatError
from embedlab.data.closure import DATA_DIR_ENV
from embedlab.data.closure import csr
from embedlab.data.closure import load_closure
from embedlab.data.closure import load_named_closure
from embedlab.data.closure import mammal_closure
from embedlab.data.closure import noun_closure
from embedlab.data.closure import resolve_data_dir
from embedlab.data.closure import symmetrize
from embedlab.data.trees import TREES
from embedlab.data.trees import EdgeListFormatError
from embedlab.data.trees import Graph
from embedlab.data.trees import balanced_tree
from embedlab.data.trees import bfs_tree
from embedlab.data.trees import load_edge_list
from embedlab.data.trees import load_named_tree

__all__ = [
    "CLOSURE_FORMATS",
    "CLOSURES",
    "Closure",
    "ClosureFormatError",
    "DATA_DIR_ENV",
    "csr",
    "load_closure",
    "load_named_closure",
    "mammal_closure",
    "noun_closure",
    "resolve_data_dir",
    "symmetrize",
    "TREES",
    "EdgeListFormatError",
    "Graph",
    "balanced_tree",
    "bfs_tree",
    "load_edge_list",
    "load_named_tree",
]
