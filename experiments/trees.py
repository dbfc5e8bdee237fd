r"""Tree and graph embeddings without training: Sala, De Sa, Gu & Ré, ICML 2018.

The combinatorial construction (Sarkar's, generalised to the ball; exact up to the chosen
precision) and h-MDS, evaluated with average/worst-case distortion and graph MAP against the
original graph. Not a training run: one build, one evaluation (see embedlab/train/trees.py).

Launch (from the repository root; the data presets need EMBEDLAB_DATA_DIR or
--config.data_dir pointing at shared/data):

  # Seconds, no data: a balanced ternary tree in 2-D at 128 bits.
  python -m embedlab.main --config experiments/trees.py:smoke --workdir /tmp/trees_smoke
  # The reference repository's README example (2-D, eps 0.1 -> tau 23.77).
  python -m embedlab.main --config experiments/trees.py:smalltree_combinatorial \
      --workdir /tmp/trees_smalltree
  # Phylogenetic tree, dim 100, 256 bits, tau 2 (reference: MAP 1.0, D_avg 0.232, D_wc 1.41).
  python -m embedlab.main --config experiments/trees.py:phylo_combinatorial \
      --workdir /tmp/trees_phylo_comb
  # h-MDS, dim 100, scale 0.1 (reference: D_avg 0.0326 without its 762 "bad" pairs, MAP 0.617).
  python -m embedlab.main --config experiments/trees.py:phylo_hmds --workdir /tmp/trees_phylo_hmds
  # WordNet hypernym graph (74,374 nodes) in 2 dimensions, 640 bits, MAP on 1,000 sampled
  # nodes (paper: MAP 0.989).
  python -m embedlab.main --config experiments/trees.py:wordnet_combinatorial_2d \
      --workdir /tmp/trees_wordnet_2d
  # The two graphs with cycles (a BFS spanning tree is embedded; evaluation is on the graph).
  python -m embedlab.main --config experiments/trees.py:diseasome_combinatorial \
      --workdir /tmp/trees_diseasome_comb
  python -m embedlab.main --config experiments/trees.py:csphd_hmds --workdir /tmp/trees_csphd_hmds
  # Any field from the command line:
  python -m embedlab.main --config experiments/trees.py:phylo_combinatorial,dim=10,tau=4 \
      --workdir /tmp/trees_phylo_10
  python -m embedlab.main --config experiments/trees.py:smalltree_combinatorial,precision=float64 \
      --workdir /tmp/trees_smalltree_f64
  # The largest tau 256 bits afford on the phylogenetic tree (least distortion):
  python -m embedlab.main --config experiments/trees.py:phylo_combinatorial,tau=precision \
      --workdir /tmp/trees_phylo_maxtau

Presets: ``smoke``, ``smalltree_combinatorial`` (default), ``phylo_combinatorial``,
``phylo_hmds``, ``diseasome_combinatorial``, ``diseasome_hmds``, ``csphd_combinatorial``,
``csphd_hmds``, ``wordnet_combinatorial_2d``.
Arg aliases: ``sources`` (eval.max_sources), ``bits`` (precision).
"""

import ml_collections

from embedlab.train.config import build_config, run_config

ALIASES = {"sources": "eval.max_sources", "bits": "precision"}

# h-MDS of a graph with cycles in 10 dimensions (no reference figure).
_HMDS_10 = {"method": "hmds", "dim": 10, "scale": 0.1}

PRESETS = {
    # 40 nodes, height 3; finishes in a second or two (plus the interpreter).
    "smoke": {"dataset": "balanced", "balanced.branching": 3, "balanced.depth": 3,
              "precision": "128", "plot": False, "progress": False},
    # The example of the reference README (combinatorial/README): eps 0.1 in 2-D gives
    # tau 23.769, MAP 1.0, D_avg 0.012939, D_wc 1.02236.
    "smalltree_combinatorial": {"dataset": "smalltree", "eps": 0.1, "precision": "256"},
    # Data README, section 7: dim 100, 256 bits, tau 2: MAP 1.0, D_avg 0.232, D_wc 1.41.
    "phylo_combinatorial": {"dataset": "phylo", "dim": 100, "tau": "2", "precision": "256"},
    # hMDS/README of the reference repository: dim 100, scale 0.1: D_avg 0.0326 (over the
    # pairs it does not count as "bad": 762 collapsed pairs), MAP 0.617.
    "phylo_hmds": {"dataset": "phylo", "method": "hmds", "dim": 100, "scale": 0.1},
    # Graphs with cycles, in 2-D at high precision (no reference figure) and with h-MDS in 10.
    "diseasome_combinatorial": {"dataset": "diseasome", "eps": 1.0, "precision": "512"},
    "diseasome_hmds": {"dataset": "diseasome", **_HMDS_10},
    "csphd_combinatorial": {"dataset": "csphd", "eps": 1.0, "precision": "768"},
    "csphd_hmds": {"dataset": "csphd", **_HMDS_10},
    # Paper abstract: MAP 0.989 in 2 dimensions. eps 1 gives tau 22.9 (max degree 404) and a
    # deepest point 340 from the origin: 589 bits needed, 640 used. Distortion and MAP over
    # the rows of 1,000 sampled source nodes (~85 s here; all 74,374 rows would take ~1.7 h).
    "wordnet_combinatorial_2d": {"dataset": "wordnet", "eps": 1.0, "precision": "640",
                                 "eval.max_sources": 1000},
}


def base_config() -> ml_collections.ConfigDict:
  # dataset: a name in embedlab.data.TREES, or "balanced" (no data). plot: 2-D only.
  config = run_config(task="trees", dataset="smalltree")
  config.balanced = ml_collections.ConfigDict({"branching": 2, "depth": 5})
  config.root = 0                   # root of the BFS spanning tree
  config.method = "combinatorial"   # "combinatorial" or "hmds"
  config.dim = 2
  # Combinatorial: tau, the length of every edge: a number, "eps" (the tau whose worst-case
  # distortion bound is 1 + eps) or "precision" (the largest tau the bits afford).
  # precision: "float64" or a number of bits, e.g. "256" (mpmath).
  config.tau = "eps"
  config.eps = 1.0
  config.precision = "float64"
  config.scale = 1.0                # h-MDS: embed scale * graph distances
  config.eval = ml_collections.ConfigDict()
  config.eval.max_sources = ml_collections.FieldReference(None, field_type=int)  # None: all
  config.eval.seed = 0
  config.eval.collapse_tol = 1e-6   # pairs with d_E < tol * scale * d_G count as collapsed
  return config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return build_config(arg, base=base_config(), presets=PRESETS,
                      default_preset="smalltree_combinatorial", aliases=ALIASES)
