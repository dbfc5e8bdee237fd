r"""Hierarchy embeddings of WordNet (Nickel & Kiela 2017, 2018) in any geometry.

Launch (from the repository root):

  # The default demo: Poincaré ball, dim 5, WordNet mammals (ships with the package).
  python -m embedlab.main --config experiments/hierarchy.py:mammals --workdir runs/mammals
  # The paper's own settings (300 epochs, lr 0.3, batch 10, 50 negatives, 20 burn-in epochs
  # at lr/100).
  python -m embedlab.main --config experiments/hierarchy.py:paper --workdir runs/paper
  # Any field from the command line, in the arg or as a flag:
  python -m embedlab.main --config experiments/hierarchy.py:mammals,geometry=euclidean \
      --workdir runs/mammals_euclidean
  python -m embedlab.main --config experiments/hierarchy.py:mammals,dim=2 \
      --config.optim.learning_rate=0.5 --workdir runs/mammals_2d
  # WordNet nouns (needs EMBEDLAB_DATA_DIR or --config.data_dir pointing at shared/data).
  python -m embedlab.main --config experiments/hierarchy.py:nouns --workdir runs/nouns

Presets: ``mammals`` (default), ``mammals_2d``, ``paper``, ``nouns``, ``nouns_reference`` (the
reference code's nouns recipe, 1,500 epochs), ``nouns_hard`` (760 reference epochs, then 60
annealed ones with hard negatives), ``mammals_caps`` and ``nouns_caps`` (nested caps: the
closure built into the ball, no training), ``mammals_caps_refined`` and ``nouns_caps_refined``
(the caps then bent to fit the DAG: the nouns target, ~10 min in all), ``nouns_caps_tuned``
(nouns_caps + 20 epochs), ``smoke`` (a few seconds, for tests).
Presets build on one another as plain dicts (``nouns_hard`` is ``nouns_reference`` with hard
negatives, ``mammals_caps_refined`` is ``mammals_caps`` with refinement steps).
Arg aliases: ``lr`` (optim.learning_rate), ``negatives`` (negatives.per_pair), ``burn_in``
(burn_in_epochs), ``batch`` (batch_size), ``optimizer`` (optim.name), ``link``
(link_prediction.test_fraction), and the negative-sampling fields' names from before the
``negatives`` sub-config: ``negatives_from``, ``num_negatives``, ``batch_negatives``,
``hard_negatives``, ``hard_pool``, ``hard_every_epochs``, ``hard_from_epoch``,
``rank_weighting``, ``presample_negatives`` (e.g. ``paper,hard_negatives=3,hard_from_epoch=20``).
"""

import dataclasses

import ml_collections

from embedlab.losses.negatives import NegativeSettings
from embedlab.train.config import build_config, loop_config

ALIASES = {"lr": "optim.learning_rate", "negatives": "negatives.per_pair",
           "burn_in": "burn_in_epochs", "batch": "batch_size", "optimizer": "optim.name",
           "link": "link_prediction.test_fraction",
           # The negative-sampling fields' names from before they had a sub-config.
           "negatives_from": "negatives.source", "num_negatives": "negatives.per_pair",
           "batch_negatives": "negatives.shared", "hard_negatives": "negatives.hard",
           "hard_pool": "negatives.hard_pool", "hard_every_epochs": "negatives.hard_every_epochs",
           "hard_from_epoch": "negatives.hard_from_epoch",
           "rank_weighting": "negatives.rank_weighting",
           "presample_negatives": "negatives.presample"}

# The default demo: the paper's model and batch, with the noise-free expectation of the sampled
# loss (every non-ancestor as a negative, weighted by negatives.per_pair / num_nodes) and lr 0.4.
# See README for its numbers next to the paper's.
MAMMALS = {"negatives.source": "all", "optim.learning_rate": 0.4}
# The N&K reference code's recipe for the nouns (facebookresearch/poincare-embeddings,
# train-nouns.sh): batch 50, lr 1.0 on the batch-mean loss, constant after a 20-epoch burn-in at
# lr/100, 50 uniform negatives, 1,500 epochs (~6-7 s of training per epoch on one CPU core,
# ~3 h). The reference burn-in draws negatives by count^0.75; this one draws them uniformly
# throughout.
NOUNS_REFERENCE = {"dataset": "nouns", "dim": 10, "epochs": 1500, "batch_size": 50,
                   "optim.learning_rate": 1.0, "burn_in_epochs": 20, "burn_in_multiplier": 0.01,
                   "optim.decay": "none", "eval_every_epochs": 25, "checkpoint_every_epochs": 5,
                   "epochs_per_call": 5, "eval.max_queries": 2000}
# No training: the closure built into the ball by nested caps (embedlab/models/nested_caps.py),
# float64, then the final all-query evaluation.
MAMMALS_CAPS = {"init": "nested_caps", "dtype": "float64", "epochs": 0, "burn_in_epochs": 0}
NOUNS_CAPS = {**MAMMALS_CAPS, "dataset": "nouns", "dim": 10, "eval.max_queries": 2000}
# The caps bent to fit the DAG (embedlab/models/cap_refinement.py): 150 Adam steps on the
# sphere, no training of the N&K loss, then the final all-query evaluation.
REFINED = {"nested_caps.refine.steps": 150}

PRESETS = {
    "mammals": MAMMALS,
    # The demo in 2 dimensions: the picture is the embedding itself (labels on the top levels).
    "mammals_2d": {**MAMMALS, "dim": 2},
    # Nickel & Kiela's reported settings.
    "paper": {"epochs": 300, "batch_size": 10, "negatives.per_pair": 50,
              "optim.learning_rate": 0.3, "burn_in_epochs": 20, "burn_in_multiplier": 0.01,
              "optim.name": "rsgd", "optim.update_rule": "retr", "eval_every_epochs": 50,
              "checkpoint_every_epochs": 50, "epochs_per_call": 10},
    # WordNet nouns, dim 10: 50 uniform negatives per pair, batch 64 at lr 8 (0.125 per pair,
    # the loss being a batch mean), a 1-epoch burn-in at lr/10, then linear decay to 0 over
    # 100 epochs; ~7 s of training per epoch on one CPU core (benchmarks/hierarchy_step.py).
    # Evaluations during training rank 2,000 sampled query nodes; the final one ranks all
    # 82,114 (several minutes).
    "nouns": {"dataset": "nouns", "dim": 10, "epochs": 100, "batch_size": 64,
              "optim.learning_rate": 8.0, "burn_in_epochs": 1, "burn_in_multiplier": 0.1,
              "optim.decay": "linear", "eval_every_epochs": 20, "checkpoint_every_epochs": 5,
              "epochs_per_call": 5, "eval.max_queries": 2000},
    "nouns_reference": NOUNS_REFERENCE,
    # nouns_reference for 760 epochs, then 60 epochs with 3 hard negatives per pair (pools of
    # 128 nearest non-ancestors, refreshed every 10 epochs) while the rate decays linearly to 0
    # (README: the best nouns recipe found so far; ~16 min on one H100, ~2 h on one CPU core).
    "nouns_hard": {**NOUNS_REFERENCE, "epochs": 820, "optim.decay": "linear",
                   "optim.decay_begin_epoch": 760, "negatives.hard": 3,
                   "negatives.hard_pool": 128, "negatives.hard_from_epoch": 760,
                   "eval_every_epochs": 20},
    "mammals_caps": MAMMALS_CAPS,
    "nouns_caps": NOUNS_CAPS,
    "mammals_caps_refined": {**MAMMALS_CAPS, **REFINED},
    "nouns_caps_refined": {**NOUNS_CAPS, **REFINED},
    # nouns_caps, then 20 float64 epochs of the N&K loss (batch 50, lr 1.0 decaying linearly to
    # 0, 3 hard negatives per pair from pools of 128 refreshed every 5 epochs): the training
    # pulls in the ancestors the caps' layout tree leaves off (a DAG's second parents).
    "nouns_caps_tuned": {**NOUNS_CAPS, "epochs": 20, "batch_size": 50,
                         "optim.learning_rate": 1.0, "optim.decay": "linear",
                         "negatives.hard": 3, "negatives.hard_pool": 128,
                         "negatives.hard_every_epochs": 5, "eval_every_epochs": 5,
                         "checkpoint_every_epochs": 5, "epochs_per_call": 5},
    "smoke": {"epochs": 4, "batch_size": 32, "negatives.per_pair": 10, "burn_in_epochs": 1,
              "eval_every_epochs": 2, "checkpoint_every_epochs": 2, "epochs_per_call": 2,
              "plot": False},
}


def base_config() -> ml_collections.ConfigDict:
  # dataset: "mammals" (packaged), "nouns" (EMBEDLAB_DATA_DIR) or the path of a closure file.
  config = loop_config(task="hierarchy", dataset="mammals", epochs=300, eval_every_epochs=100,
                       checkpoint_every_epochs=50)
  # How a dataset path is read (embedlab/data/closure.py): "auto" (CSV if the name ends in .csv
  # or the header names id1,id2; else TSV), "tsv" (child<TAB>ancestor closure rows), "csv" (the
  # reference code's id1,id2,weight closure) or "edges" (child<TAB>parent direct links, closed
  # by embedlab).
  config.dataset_format = "auto"
  config.geometry = "poincare"        # any name in embedlab.geometry.GEOMETRIES
  # "distance": d(u, v) in the geometry; "translational": d(u + r, v), flat geometries (N&K).
  config.model = "distance"
  config.curvature = 1.0
  config.dim = 5
  config.dtype = "float32"
  config.init_scale = 1e-3
  # "uniform" (N&K: points uniform in [-init_scale, init_scale] at the origin) or
  # "nested_caps": the closure built into the ball without training (embedlab/models/
  # nested_caps.py; Poincaré, float64), then `epochs` of training from there (0: none).
  config.init = "uniform"
  config.nested_caps = ml_collections.ConfigDict()
  config.nested_caps.margin = 0.1
  # Then bend the caps to fit the DAG (embedlab/models/cap_refinement.py): Adam steps on the
  # sphere pulling every node's centre into all its ancestors' caps (0 steps: the tree layout).
  config.nested_caps.refine = ml_collections.ConfigDict()
  config.nested_caps.refine.steps = 0
  config.nested_caps.refine.learning_rate = 0.005
  config.nested_caps.refine.margin = 0.05
  config.nested_caps.refine.mine_every = 25
  # Start from another run's table (its embeddings.npz or workdir) instead of near the origin:
  # a fine-tune in one command. Nodes are matched by name; the schedule starts afresh.
  config.init_from = ml_collections.FieldReference(None, field_type=str)
  config.batch_size = 10
  # How negatives are drawn (embedlab/losses/negatives.py; the fields and their defaults are
  # NegativeSettings'): source "uniform" or "unigram" (count^0.75, as word2vec and the N&K
  # reference code; gensim uses raw counts) samples per_pair negatives per pair; "all" uses every
  # non-ancestor, each weighted by per_pair / num_nodes: the noise-free expectation of the
  # sampled loss (small graphs only, <= 4096 nodes); "batch": one set of `shared` uniform nodes
  # shared by every pair of a step, each weighted by per_pair / shared (large graphs).
  # Hard negatives: `hard` more per pair, drawn from each node's hard_pool nearest
  # non-ancestors, recomputed every hard_every_epochs from hard_from_epoch on (0 = off).
  # rank_weighting (with hard negatives): draw each epoch's pairs with replacement, pair (u, a)
  # with probability proportional to (1 + #pool members nearer to u than a) ** rank_weighting,
  # re-estimated at each pool refresh (0 = off: a permutation of the edges). Mean rank is a sum
  # of ranks, so this spends the steps where the rank sum is.
  # presample: "auto" draws an epoch's sampled negatives before its steps when that is small
  # (<= 4M ids); "yes" / "no" force it. redraw: "pooled" or "full" resample rounds (the slower
  # reference). Same distributions either way, other random draws.
  config.negatives = ml_collections.ConfigDict(dataclasses.asdict(NegativeSettings()))
  # Re-seat stuck leaves (embedlab/train/reseat.py): every reseat.every_epochs from
  # reseat.from_epoch on (multiples of epochs_per_call; 0 = off), each leaf whose mean rank
  # exceeds max_mean_rank moves to the best of the seats at the radii around its first
  # max_parents parents (num_directions random directions + one towards it), when that lowers
  # the closure's whole rank sum (its own ranks and those it takes from other queries). A local
  # search out of minima that gradient steps do not leave.
  config.reseat = ml_collections.ConfigDict()
  config.reseat.every_epochs = 0
  config.reseat.from_epoch = 0
  config.reseat.max_mean_rank = 10.0
  config.reseat.radii = (0.5, 1.0, 2.0, 4.0)
  config.reseat.num_directions = 4
  config.reseat.max_parents = 2
  config.burn_in_epochs = 20
  config.burn_in_multiplier = 0.01
  config.optim = ml_collections.ConfigDict()
  config.optim.name = "rsgd"          # "rsgd" or "radam"
  config.optim.learning_rate = 0.3
  config.optim.decay = "none"         # after burn-in: "none", "linear" or "cosine"
  config.optim.final_multiplier = 0.0  # decay ends at learning_rate * final_multiplier
  # Epoch where the decay starts (None: right after the burn-in); it ends at `epochs`.
  config.optim.decay_begin_epoch = ml_collections.FieldReference(None, field_type=int)
  config.optim.update_rule = "retr"   # "retr" (N&K) or "expmap"
  # "auto", "dense" or "sparse": a step updates the whole table, or only the rows it touched
  # (embedlab.optim.sparse_rows; "auto": sparse when the table is 8x larger than those rows).
  config.row_updates = "auto"
  # Sparse steps of an optimizer with a linear step (RSGD with update_rule="retr") scatter-add
  # each row's step; false sends them through the generic gather/update/scatter path instead
  # (a reference for tests and benchmarks, equal up to float rounding).
  config.linear_rows = True
  # Held-out share of the non-basic closure edges (N&K link prediction); 0 = reconstruction.
  config.link_prediction = ml_collections.ConfigDict()
  config.link_prediction.test_fraction = 0.0
  config.link_prediction.seed = 0
  config.eval = ml_collections.ConfigDict()
  config.eval.symmetric = False
  config.eval.max_queries = ml_collections.FieldReference(None, field_type=int)
  config.eval.final_all_queries = True  # the last evaluation ignores max_queries
  return config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return build_config(arg, base=base_config(), presets=PRESETS, default_preset="mammals",
                      aliases=ALIASES)
