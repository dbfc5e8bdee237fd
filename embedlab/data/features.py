"""Labelled feature datasets for zero-shot metric learning (train on some classes, retrieve on
the unseen others).

Two datasets, each a :class:`LabelledFeatures` (features, labels, class names and which classes
are *seen*, i.e. trained on):

* ``digits``: scikit-learn's bundled 8x8 handwritten digits (``sklearn.datasets.load_digits``,
  1,797 images, no download), pixels scaled from ``0..16`` to ``[0, 1]``; seen classes 0-4,
  unseen 5-9.
* ``wordnet_gloss``: the 384-d all-MiniLM-L6-v2 embeddings of WordNet noun glosses
  (``<data_dir>/wordnet/noun_gloss_minilm.npz``, data README section 9), read through the
  ``wordnet_noun_gloss`` tensorflow-datasets builder (:mod:`embedlab.data.builders`: written
  once as array_record under ``$EMBEDLAB_TFDS_DIR`` or ``~/.cache/embedlab/tfds``, then read
  with ``as_data_source``), labelled by the noun hierarchy
  (``<data_dir>/wordnet/noun_closure.tsv.gz``, section 2) with the rule below; half of the
  classes (a seeded permutation) are seen.

Class rule of ``wordnet_gloss`` (:func:`depth_classes`), on the transitive closure alone:

1. ``depth(u)`` is the length of the *longest* hypernym path from a root (a node without
   ancestors, ``entity.n.01`` for WordNet) down to ``u``: roots have depth 0 and
   ``depth(u) = 1 + max_{a ancestor of u} depth(a)``. (On a closure the longest path only uses
   transitive-reduction edges, so this equals NLTK's ``max_depth`` over hypernym and
   instance-hypernym links.) An ancestor is always strictly shallower than its descendant, so
   no two nodes of the same depth are ancestor and descendant of each other.
2. The candidate classes are the nodes of depth ``depth``.
3. The items of a candidate are its proper descendants (the class synset itself is not an
   item). An item below two or more candidates (multiple inheritance) is ambiguous and dropped.
4. The classes are the candidates left with at least ``min_items`` items; the items of the
   smaller candidates are dropped too.
5. Classes with more than ``max_items`` items keep a seeded random subset of ``max_items``
   (so a few huge classes do not dominate the retrieval metrics).

With ``depth=7, min_items=20`` this gives 335 classes; ``max_items=100`` keeps 18,471 items
(the selection takes well under a second in NumPy). The data folder is only read: the one
thing written is the prepared tfds dataset, in the tfds folder.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np

from embedlab.data import closure as closure_lib


@dataclasses.dataclass(frozen=True, eq=False)
class LabelledFeatures:
  """Items with feature vectors and class labels, some classes held out of training.

  Attributes:
    features: ``float32 [N, F]``.
    labels: ``int32 [N]`` class ids in ``[0, C)``.
    class_names: ``C`` names.
    seen_classes: ``int32`` sorted ids of the classes trained on; the others are unseen.
    item_names: ``N`` names (``None`` when items have none, e.g. digit images).
  """

  features: np.ndarray
  labels: np.ndarray
  class_names: tuple[str, ...]
  seen_classes: np.ndarray
  item_names: tuple[str, ...] | None = None

  def __post_init__(self):
    features = np.asarray(self.features, np.float32)
    labels = np.asarray(self.labels, np.int32)
    if features.ndim != 2 or labels.shape != (features.shape[0],):
      raise ValueError(f"features must be [N, F] and labels [N]; got {features.shape} and "
                       f"{labels.shape}.")
    num_classes = len(self.class_names)
    seen = np.unique(np.asarray(self.seen_classes, np.int32))
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
      raise ValueError(f"labels must lie in [0, {num_classes}).")
    if seen.size == 0 or seen.size == num_classes or seen.min() < 0 or seen.max() >= num_classes:
      raise ValueError(f"seen_classes must be a proper, non-empty subset of [0, {num_classes}).")
    object.__setattr__(self, "features", features)
    object.__setattr__(self, "labels", labels)
    object.__setattr__(self, "class_names", tuple(self.class_names))
    object.__setattr__(self, "seen_classes", seen)

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @property
  def unseen_classes(self) -> np.ndarray:
    return np.setdiff1d(np.arange(self.num_classes, dtype=np.int32), self.seen_classes)


@dataclasses.dataclass(frozen=True)
class ZeroShotSplit:
  """Row indices into a :class:`LabelledFeatures` (each sorted, pairwise disjoint).

  Attributes:
    train: items of seen classes used for training.
    seen_test: held-out items of seen classes (retrieval among themselves).
    unseen: every item of the unseen classes (the zero-shot retrieval set).
  """

  train: np.ndarray
  seen_test: np.ndarray
  unseen: np.ndarray


def zero_shot_split(dataset: LabelledFeatures, *, seen_test_fraction: float,
                    seed: int) -> ZeroShotSplit:
  """Holds out ``round(seen_test_fraction * n_c)`` random items of each seen class ``c``.

  At least one item of each seen class stays in training. Deterministic in ``seed``.
  """
  if not 0.0 <= seen_test_fraction < 1.0:
    raise ValueError(f"seen_test_fraction must lie in [0, 1), got {seen_test_fraction}.")
  rng = np.random.default_rng(seed)
  train, held = [], []
  for c in dataset.seen_classes:
    rows = np.flatnonzero(dataset.labels == c)
    rows = rows[rng.permutation(rows.size)]
    num_held = min(int(round(seen_test_fraction * rows.size)), rows.size - 1)
    held.append(rows[:num_held])
    train.append(rows[num_held:])
  unseen = np.flatnonzero(np.isin(dataset.labels, dataset.unseen_classes))
  return ZeroShotSplit(train=np.sort(np.concatenate(train)),
                       seen_test=np.sort(np.concatenate(held)), unseen=unseen)


# ----------------------------------------------------------------------------------------------
# digits


def digits(data_dir: str | os.PathLike | None = None) -> LabelledFeatures:
  """scikit-learn's 8x8 digits: ``[1797, 64]`` pixels in ``[0, 1]``; seen classes 0-4."""
  del data_dir  # Ships with scikit-learn.
  from sklearn import datasets  # Imported here: only this dataset needs scikit-learn.
  bunch = datasets.load_digits()
  return LabelledFeatures(features=bunch.data / 16.0, labels=bunch.target,
                          class_names=tuple(str(d) for d in range(10)),
                          seen_classes=np.arange(5))


# ----------------------------------------------------------------------------------------------
# WordNet glosses


def longest_path_depth(closure: closure_lib.Closure) -> np.ndarray:
  """``int64 [N]``: longest path length from a root (a node without ancestors) to each node.

  Iterates ``depth(u) = 1 + max_{a ancestor of u} depth(a)`` (roots 0) over the closure's
  edges, sorted by child, with one ``np.maximum.reduceat`` per sweep; it converges after
  ``max depth + 1`` sweeps (20 on WordNet nouns, ~0.2 s).

  Raises:
    ValueError: the ancestor relation has a cycle (no fixed point).
  """
  n = closure.num_nodes
  child, ancestor = closure.edges[:, 0], closure.edges[:, 1]
  has_ancestor = closure.num_ancestors > 0
  starts = np.searchsorted(child, np.flatnonzero(has_ancestor))
  depth = np.zeros(n, np.int64)
  for _ in range(n + 1):
    new = np.zeros(n, np.int64)
    if child.size:
      new[has_ancestor] = np.maximum.reduceat(depth[ancestor] + 1, starts)
    if np.array_equal(new, depth):
      return depth
    depth = new
  raise ValueError("the closure has a cycle: depth is undefined.")


def depth_classes(closure: closure_lib.Closure, *, depth: int, min_items: int,
                  max_items: int | None = None, seed: int = 0):
  """Classes at one depth of a hierarchy and their items (the rule in the module docstring).

  Args:
    closure: the transitive closure (rows ``child, ancestor``).
    depth: the longest-path depth of the classes.
    min_items: least number of unambiguous items a class must have.
    max_items: cap on the items of a class (a seeded random subset); ``None``: no cap.
    seed: seed of that subset.

  Returns:
    ``(classes, items, labels)``: ``classes`` node ids, sorted; ``items`` node ids, sorted;
    ``labels[i]`` the position in ``classes`` of the class of ``items[i]``.
  """
  if min_items < 1 or (max_items is not None and max_items < min_items):
    raise ValueError(f"need 1 <= min_items <= max_items, got {min_items}, {max_items}.")
  n = closure.num_nodes
  child, ancestor = closure.edges[:, 0], closure.edges[:, 1]
  candidate = longest_path_depth(closure) == depth
  below = candidate[ancestor]                                  # edges into a candidate
  num_candidates_above = np.bincount(child[below], minlength=n)
  unambiguous = below & (num_candidates_above[child] == 1)
  owner = np.full(n, -1, np.int64)
  owner[child[unambiguous]] = ancestor[unambiguous]
  counts = np.bincount(ancestor[unambiguous], minlength=n)
  classes = np.flatnonzero(candidate & (counts >= min_items))
  position = np.full(n, -1, np.int64)
  position[classes] = np.arange(classes.size)
  items = np.flatnonzero((owner >= 0) & (position[np.maximum(owner, 0)] >= 0))
  labels = position[owner[items]]
  if max_items is not None:
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(classes.size):
      rows = np.flatnonzero(labels == c)
      keep.append(rows if rows.size <= max_items else
                  np.sort(rng.choice(rows, max_items, replace=False)))
    keep = np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
    items, labels = items[keep], labels[keep]
  return classes, items, labels.astype(np.int32)


def load_gloss_features(data_dir: str | os.PathLike | None = None, *,
                        tfds_dir: str | os.PathLike | None = None):
  """``(synset names [N], float32 features [N, 384])`` of ``wordnet/noun_gloss_minilm.npz``.

  Read through the ``wordnet_noun_gloss`` builder, which is prepared from the npz on first use
  into ``tfds_dir`` (``None``: ``$EMBEDLAB_TFDS_DIR``, else ``~/.cache/embedlab/tfds``).

  Raises:
    FileNotFoundError: the npz is missing (the message names the path and
      ``EMBEDLAB_DATA_DIR``).
    ValueError: no data folder; the npz is malformed (the message names the file and the
      expected arrays); the prepared dataset came from another npz.
  """
  # Imported here: tensorflow-datasets takes ~0.5 s to import and only this dataset needs it.
  from embedlab.data.builders import wordnet_noun_gloss
  names, embeddings = wordnet_noun_gloss.load(data_dir, tfds_dir=tfds_dir)
  return names, embeddings.astype(np.float32)


def wordnet_gloss(data_dir: str | os.PathLike | None = None, *, depth: int = 7,
                  min_items: int = 20, max_items: int | None = 100, seed: int = 0,
                  tfds_dir: str | os.PathLike | None = None) -> LabelledFeatures:
  """Gloss features of WordNet nouns labelled by their class at ``depth`` (module docstring).

  ``seed`` picks both the item subsets of large classes and the seen half of the classes
  (``C // 2`` of them, a permutation of the class ids). ``tfds_dir``: where the features'
  tfds dataset is prepared (:func:`load_gloss_features`).

  Raises:
    ValueError / FileNotFoundError: no data folder, or a file missing from it (the message
      names the path and ``EMBEDLAB_DATA_DIR``); fewer than 2 classes.
  """
  closure = closure_lib.noun_closure(data_dir)
  names, features = load_gloss_features(data_dir, tfds_dir=tfds_dir)
  if tuple(names) != closure.names:
    raise ValueError("the gloss features and the noun closure name different synsets; "
                     "expected the same sorted synset names in both files.")
  classes, items, labels = depth_classes(closure, depth=depth, min_items=min_items,
                                         max_items=max_items, seed=seed)
  if classes.size < 2:
    raise ValueError(f"depth={depth}, min_items={min_items} leaves {classes.size} class(es); "
                     "need at least 2.")
  seen = np.random.default_rng(seed).permutation(classes.size)[:classes.size // 2]
  return LabelledFeatures(features=features[items], labels=labels,
                          class_names=tuple(closure.names[i] for i in classes),
                          seen_classes=seen, item_names=tuple(closure.names[i] for i in items))


# Named datasets for configs; each takes data_dir plus its own keyword options.
FEATURES: dict[str, Callable[..., LabelledFeatures]] = {
    "digits": digits,
    "wordnet_gloss": wordnet_gloss,
}
