"""Labelled feature datasets: digits, the WordNet depth-class rule, zero-shot splits."""

from __future__ import annotations

import numpy as np
import pytest

from embedlab.data import closure as closure_lib
from embedlab.data import features
from tests.conftest import data_dir_or_skip


def _closure(parent_edges: list[tuple[str, str]]) -> closure_lib.Closure:
  """The transitive closure of ``child -> parent`` links, built by brute force."""
  parents: dict[str, set[str]] = {}
  for child, parent in parent_edges:
    parents.setdefault(child, set()).add(parent)
    parents.setdefault(parent, set())

  def ancestors(node):
    out = set()
    for p in parents[node]:
      out |= {p} | ancestors(p)
    return out

  names = sorted(parents)
  ids = {n: i for i, n in enumerate(names)}
  edges = sorted((ids[u], ids[a]) for u in names for a in ancestors(u))
  return closure_lib.Closure(names=names, edges=np.asarray(edges, np.int32).reshape(-1, 2))


# root -> a, b;  a -> a1 (3 leaves x1..x3), a2 (2 leaves y1, y2);  b -> b1 (leaves z1..z4)
# "shared" sits below both a1 and b1 (ambiguous at depth 2); "deep" hangs below x1 (depth 4).
# "long" gives b1 a second, longer path: root -> b -> bb -> b1, so b1's longest depth is 3.
_TREE = ([("a", "root"), ("b", "root"), ("a1", "a"), ("a2", "a"), ("b1", "b")]
         + [(f"x{i}", "a1") for i in (1, 2, 3)] + [("y1", "a2"), ("y2", "a2")]
         + [(f"z{i}", "b1") for i in (1, 2, 3, 4)]
         + [("shared", "a1"), ("shared", "b1"), ("deep", "x1")])


def test_longest_path_depth_by_hand():
  closure = _closure(_TREE + [("bb", "b"), ("b1", "bb")])
  depth = dict(zip(closure.names, features.longest_path_depth(closure)))
  assert depth["root"] == 0 and depth["a"] == depth["b"] == 1
  assert depth["a1"] == depth["a2"] == depth["bb"] == 2
  assert depth["b1"] == 3            # longest path root -> b -> bb -> b1, not the short one
  assert depth["x1"] == 3 and depth["deep"] == 4
  assert depth["shared"] == 4        # below b1 (depth 3)
  assert depth["z1"] == 4


@pytest.mark.parametrize("min_items, expected", [
    # a1: x1, x2, x3, deep (shared is also below b1: dropped); a2: y1, y2; b1: z1..z4.
    (1, {"a1": ["deep", "x1", "x2", "x3"], "a2": ["y1", "y2"], "b1": ["z1", "z2", "z3", "z4"]}),
    (3, {"a1": ["deep", "x1", "x2", "x3"], "b1": ["z1", "z2", "z3", "z4"]}),
    (5, {}),
])
def test_depth_classes_rule_on_a_tiny_closure(min_items, expected):
  closure = _closure(_TREE)
  classes, items, labels = features.depth_classes(closure, depth=2, min_items=min_items)
  names = closure.names
  got = {names[c]: sorted(names[i] for i, l in zip(items, labels) if l == k)
         for k, c in enumerate(classes)}
  assert got == expected
  assert np.all(np.diff(classes) > 0) and np.all(np.diff(items) > 0)


def test_depth_classes_caps_large_classes_with_a_seed():
  closure = _closure(_TREE)
  classes, items, labels = features.depth_classes(closure, depth=2, min_items=2, max_items=2,
                                                  seed=3)
  assert np.bincount(labels).tolist() == [2, 2, 2]
  again = features.depth_classes(closure, depth=2, min_items=2, max_items=2, seed=3)
  np.testing.assert_array_equal(items, again[1])
  names = [closure.names[i] for i in items]
  assert "shared" not in names and set(names) <= {"x1", "x2", "x3", "deep", "y1", "y2", "z1",
                                                  "z2", "z3", "z4"}


def test_depth_classes_bad_options():
  with pytest.raises(ValueError, match="min_items"):
    features.depth_classes(_closure(_TREE), depth=2, min_items=0)
  with pytest.raises(ValueError, match="min_items <= max_items"):
    features.depth_classes(_closure(_TREE), depth=2, min_items=5, max_items=3)


def test_digits_and_its_zero_shot_split():
  ds = features.digits()
  assert ds.features.shape == (1797, 64) and ds.features.dtype == np.float32
  assert 0.0 <= ds.features.min() and ds.features.max() <= 1.0
  assert ds.seen_classes.tolist() == [0, 1, 2, 3, 4]
  assert ds.unseen_classes.tolist() == [5, 6, 7, 8, 9]
  split = features.zero_shot_split(ds, seen_test_fraction=0.2, seed=0)
  for a, b in [(split.train, split.seen_test), (split.train, split.unseen),
               (split.seen_test, split.unseen)]:
    assert not set(a.tolist()) & set(b.tolist())
  assert split.train.size + split.seen_test.size + split.unseen.size == 1797
  assert set(ds.labels[split.unseen].tolist()) == {5, 6, 7, 8, 9}
  assert set(ds.labels[split.train].tolist()) == set(ds.labels[split.seen_test].tolist()) \
      == {0, 1, 2, 3, 4}
  held = np.bincount(ds.labels[split.seen_test], minlength=5)
  total = np.bincount(ds.labels[ds.labels < 5], minlength=5)
  np.testing.assert_array_equal(held, np.round(0.2 * total).astype(int))
  same = features.zero_shot_split(ds, seen_test_fraction=0.2, seed=0)
  np.testing.assert_array_equal(split.seen_test, same.seen_test)
  other = features.zero_shot_split(ds, seen_test_fraction=0.2, seed=1)
  assert not np.array_equal(split.seen_test, other.seen_test)


@pytest.mark.parametrize("kwargs, message", [
    (dict(seen_classes=[]), "proper, non-empty subset"),
    (dict(seen_classes=[0, 1, 2]), "proper, non-empty subset"),
    (dict(labels=[0, 1, 3]), r"labels must lie in \[0, 3\)"),
    (dict(labels=[0, 1]), "features must be"),
])
def test_labelled_features_rejects_bad_input(kwargs, message):
  args = dict(features=np.zeros((3, 2)), labels=[0, 1, 2], class_names=("a", "b", "c"),
              seen_classes=[0])
  with pytest.raises(ValueError, match=message):
    features.LabelledFeatures(**{**args, **kwargs})


def test_zero_shot_split_bad_fraction():
  with pytest.raises(ValueError, match="seen_test_fraction"):
    features.zero_shot_split(features.digits(), seen_test_fraction=1.0, seed=0)


def test_wordnet_gloss_without_data_dir_names_the_variable(monkeypatch, tmp_path):
  monkeypatch.delenv("EMBEDLAB_DATA_DIR", raising=False)
  with pytest.raises(ValueError, match="EMBEDLAB_DATA_DIR"):
    features.wordnet_gloss()
  with pytest.raises(FileNotFoundError, match="EMBEDLAB_DATA_DIR"):
    features.wordnet_gloss(tmp_path)
  (tmp_path / "wordnet").mkdir()
  with pytest.raises(FileNotFoundError, match="noun_gloss_minilm.npz"):
    features.load_gloss_features(tmp_path)


def test_wordnet_gloss_on_the_shared_data():
  data_dir = data_dir_or_skip()
  ds = features.wordnet_gloss(data_dir)
  assert ds.num_classes >= 100 and ds.features.shape[1] == 384
  counts = np.bincount(ds.labels, minlength=ds.num_classes)
  assert counts.min() >= 20 and counts.max() <= 100
  assert ds.seen_classes.size == ds.num_classes // 2
  # Every item is a proper descendant of its class, and of no other class.
  closure = closure_lib.noun_closure(data_dir)
  ids = closure.name_to_id()
  edges = set(map(tuple, closure.edges.tolist()))
  class_ids = [ids[n] for n in ds.class_names]
  for row in np.random.default_rng(0).choice(len(ds.item_names), 200, replace=False):
    item = ids[ds.item_names[row]]
    above = [k for k, c in enumerate(class_ids) if (item, c) in edges]
    assert above == [ds.labels[row]]
  norms = np.linalg.norm(ds.features, axis=1)
  np.testing.assert_allclose(norms, 1.0, atol=1e-3)
