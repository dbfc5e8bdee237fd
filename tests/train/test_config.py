"""build_config: presets, overrides and the coercion of values to each field's type."""

import ml_collections
import pytest

from embedlab.train.config import build_config


def _base():
  config = ml_collections.ConfigDict()
  config.preset = ""
  config.dim = 5
  config.lr = 0.3
  config.flag = False
  config.name = "poincare"
  config.optional = ml_collections.FieldReference(None, field_type=int)
  config.eval = ml_collections.ConfigDict()
  config.eval.recall_ks = (1, 2, 4, 8)
  config.eval.margins = (0.1, 0.2)
  config.hidden = (256, 256)
  return config


def _build(arg):
  return build_config(arg, base=_base(),
                      presets={"small": {"dim": 2}, "big": {"dim": 64}, "set": {"optional": 3},
                               # Values a preset writes as they are, not parsed from text.
                               "linear": {"hidden": ""}, "wide": {"hidden": "512"},
                               "whole_lr": {"lr": 1}},
                      default_preset="small", aliases={"k": "eval.recall_ks"})


@pytest.mark.parametrize("arg, field, expected", [
    ("", "dim", 2),                                 # default preset
    ("big", "dim", 64),
    ("big,dim=7", "dim", 7),                        # override beats the preset
    ("lr=1e-2", "lr", 0.01),
    ("flag=yes", "flag", True),
    ("flag=0", "flag", False),
    ("name=lorentz", "name", "lorentz"),
    ("optional=none", "optional", None),
    ("optional=12", "optional", 12),
    ("set", "optional", 3),
    ("set,optional=none", "optional", None),        # a preset's value can be reset to None
    ("eval.recall_ks=1x5x10", "eval.recall_ks", (1, 5, 10)),
    ("k=3", "eval.recall_ks", (3,)),                # alias, one item
    ("eval.recall_ks=", "eval.recall_ks", ()),      # empty tuple
    ("eval.margins=0.5x1", "eval.margins", (0.5, 1.0)),
    ("hidden=64x32", "hidden", (64, 32)),
    ("hidden=", "hidden", ()),
    ("wide", "hidden", (512,)),                     # a preset's text is parsed like an override
    ("linear", "hidden", ()),
    # Later overrides parse to the declared type, whatever an earlier value left behind.
    ("linear,hidden=64", "hidden", (64,)),
    ("whole_lr,lr=0.5", "lr", 0.5),
])
def test_overrides_are_coerced_to_the_field_type(arg, field, expected):
  value = _build(arg)
  for part in field.split("."):
    value = value[part]
  assert value == expected
  assert type(value) is type(expected)


@pytest.mark.parametrize("arg, message", [
    ("small,big", "names several presets"),
    ("huge", "unknown preset 'huge'"),
    ("depth=3", "unknown config field 'depth'"),
    ("eval.k=3", "unknown config field 'eval.k'"),
    ("dim=2.5", "expected a int"),
    ("dim=none", "expected a int"),                 # only None-default fields take none
    ("flag=maybe", "expected a boolean"),
    ("eval.recall_ks=1,5", "unknown preset '5'"),   # a comma starts a new item
    ("eval.recall_ks=1xfive", "expected int items separated by 'x', e.g. 1x2x4x8"),
])
def test_bad_arguments_fail_clearly(arg, message):
  with pytest.raises(ValueError, match=message):
    _build(arg)
