"""Parsing of experiment arguments like ``"mammals,dim=10,geometry=lorentz"``.

Every experiment file's ``get_config(arg)`` uses :func:`build_config`: the first bare word picks
a preset, ``key=value`` items override fields (dotted keys reach nested fields; short aliases
such as ``lr`` are declared per experiment). Values are coerced to the type of the field they
replace (as declared in the base config, so a preset that empties a tuple or writes an int into
a float field does not change what later overrides parse to), so a typo in a value fails loudly
here instead of deep inside the run. Tuple fields take ``x``-separated items
(``eval.recall_ks=1x5x10``, ``model.hidden=256x256``; the comma already separates overrides),
each coerced to the type of the field's items; an empty value gives an empty tuple.

Presets may build on one another by plain dict composition:
``PRESETS["b"] = {**PRESETS["a"], "dim": 2}``.
"""

from __future__ import annotations

import ml_collections


def run_config(*, task: str, dataset: str, plot: bool = True) -> ml_collections.ConfigDict:
  """The fields every experiment has: what runs (``task``, ``preset``), on what data, and outputs.

  Args:
    task: a key of :data:`embedlab.train.TASKS` or :data:`embedlab.train.RUNNERS`.
    dataset: the family's default dataset.
    plot: whether the run writes its pictures by default.
  """
  config = ml_collections.ConfigDict()
  config.task = task
  config.preset = ""                  # set by build_config to the preset the arg names
  config.dataset = dataset
  # Where data that does not ship with the package lives (else $EMBEDLAB_DATA_DIR).
  config.data_dir = ml_collections.FieldReference(None, field_type=str)
  config.plot = plot
  config.progress = True              # tqdm bars on the terminal
  return config


def loop_config(*, task: str, dataset: str, epochs: int, eval_every_epochs: int,
                checkpoint_every_epochs: int, epochs_per_call: int = 10,
                plot: bool = True) -> ml_collections.ConfigDict:
  """:func:`run_config` plus the fields the shared training loop (``train.loop``) reads.

  Args:
    task, dataset, plot: as in :func:`run_config`.
    epochs: length of the run.
    eval_every_epochs: cadence of the periodic evaluation (the last epoch is always evaluated).
    checkpoint_every_epochs: cadence of the orbax checkpoints (the last epoch is always saved).
    epochs_per_call: epochs run by one jitted call (the loop uses the gcd with the cadences).
  """
  config = run_config(task=task, dataset=dataset, plot=plot)
  config.seed = 0
  config.epochs = epochs
  config.epochs_per_call = epochs_per_call
  config.eval_every_epochs = eval_every_epochs
  config.checkpoint_every_epochs = checkpoint_every_epochs
  # Stop (checkpointed, resumable) after this many epochs without changing the schedule.
  config.stop_after_epochs = ml_collections.FieldReference(None, field_type=int)
  return config


def _coerce(text: str, current, key: str):
  if isinstance(current, bool):
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
      return True
    if lowered in ("0", "false", "no", "off"):
      return False
    raise ValueError(f"{key}={text!r}: expected a boolean (true/false)")
  if current is None:
    # Fields that default to None accept an int, a float, none, or a string.
    if text.lower() == "none":
      return None
    for kind in (int, float):
      try:
        return kind(text)
      except ValueError:
        pass
    return text
  if isinstance(current, (tuple, list)):
    return _coerce_sequence(text, current, key)
  try:
    return type(current)(text)
  except ValueError:
    raise ValueError(f"{key}={text!r}: expected a {type(current).__name__}") from None


def _coerce_sequence(text: str, current, key: str):
  # tuple("1x2") would silently give ('1', 'x', '2'): parse the items instead.
  items = [item.strip() for item in text.split("x")] if text.strip() else []
  kinds = {type(item) for item in current}
  kind = kinds.pop() if len(kinds) == 1 else str
  try:
    values = [kind(item) for item in items]
  except ValueError:
    raise ValueError(f"{key}={text!r}: expected {kind.__name__} items separated by 'x', "
                     f"e.g. {'x'.join(str(item) for item in current) or '1x2'}") from None
  return type(current)(values)


def build_config(arg: str | None, *, base: ml_collections.ConfigDict,
                 presets: dict[str, dict], default_preset: str,
                 aliases: dict[str, str] | None = None) -> ml_collections.ConfigDict:
  """Returns ``base`` updated by a preset and ``key=value`` overrides parsed from ``arg``.

  Args:
    arg: e.g. ``"mammals,dim=10"``; ``None``/empty selects ``default_preset``.
    base: the full default config (every overridable field must exist in it).
    presets: name -> dict of (dotted) field overrides.
    default_preset: preset used when ``arg`` names none.
    aliases: short names for dotted fields, e.g. ``{"lr": "optim.learning_rate"}``.

  Raises:
    ValueError: unknown preset or field, or a value of the wrong type.
  """
  aliases = aliases or {}
  config = ml_collections.ConfigDict(base.to_dict())
  items = [item.strip() for item in (arg or "").split(",") if item.strip()]
  names = [item for item in items if "=" not in item]
  if len(names) > 1:
    raise ValueError(f"config arg {arg!r} names several presets {names}; give at most one")
  preset = names[0] if names else default_preset
  if preset not in presets:
    raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(presets)}")
  config.preset = preset
  overrides = list(presets[preset].items())
  for item in items:
    if "=" in item:
      key, value = (part.strip() for part in item.split("=", 1))
      overrides.append((aliases.get(key, key), value))
  nullable = _nullable_fields(base)
  for key, value in overrides:
    _set(config, key, value, nullable=key in nullable, base=base)
  return config


def _nullable_fields(config: ml_collections.ConfigDict, prefix: str = "") -> set[str]:
  """Dotted names of the fields declared as FieldReferences (None-able) in ``config``."""
  names = set()
  for key, field in config.items(preserve_field_references=True):
    if isinstance(field, ml_collections.ConfigDict):
      names |= _nullable_fields(field, f"{prefix}{key}.")
    elif isinstance(field, ml_collections.FieldReference):
      names.add(f"{prefix}{key}")
  return names


def _set(config: ml_collections.ConfigDict, dotted: str, value, *, nullable: bool,
         base: ml_collections.ConfigDict) -> None:
  *parents, leaf = dotted.split(".")
  node, declared = config, base
  for part in parents:
    if part not in node:
      raise ValueError(f"unknown config field {dotted!r}")
    node, declared = node[part], declared[part]
  if leaf not in node:
    raise ValueError(f"unknown config field {dotted!r}; fields here: {sorted(node.keys())}")
  if isinstance(value, str):
    # Parsed to the declared type; a field declared None takes the type of its current value.
    template = node[leaf] if declared[leaf] is None else declared[leaf]
    if isinstance(template, (tuple, list)) and not template:
      template = node[leaf]  # declared empty: the current items say what the items are
    # A field declared as a FieldReference (None default) stays nullable after a preset
    # gives it a value: "none" resets it.
    value = None if nullable and value.lower() == "none" else _coerce(value, template, dotted)
  with node.ignore_type():
    node[leaf] = value
