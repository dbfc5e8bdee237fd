"""decay_schedule: values at the ends and midpoint, composition with burn-in, bad input."""

import math

import numpy as np
import pytest

from embedlab import optim


@pytest.mark.parametrize("kind, midpoint", [
    ("none", 2.0),
    ("linear", 2.0 * (0.1 + 0.9 * 0.5)),                          # halfway down a line
    ("cosine", 2.0 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))),  # cos(pi/2) = 0
])
def test_decay_schedule_values(kind, midpoint):
  schedule = optim.decay_schedule(2.0, kind=kind, begin_step=10, end_step=30,
                                  final_multiplier=0.1)
  final = 2.0 if kind == "none" else 0.2
  np.testing.assert_allclose(
      [float(schedule(s)) for s in (0, 10, 20, 30, 1000)],
      [2.0, 2.0, midpoint, final, final], rtol=1e-6)


def test_decay_after_burn_in_keeps_the_global_count():
  decayed = optim.decay_schedule(1.0, kind="linear", begin_step=5, end_step=15)
  schedule = optim.burn_in_schedule(decayed, burn_in_steps=5, burn_in_multiplier=0.01)
  np.testing.assert_allclose([float(schedule(s)) for s in (0, 4, 5, 10, 15)],
                             [0.01, 0.01, 1.0, 0.5, 0.0], atol=1e-7)


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "exponential"}, "unknown decay"),
    ({"kind": "linear", "final_multiplier": 1.5}, "final_multiplier"),
])
def test_decay_schedule_rejects_bad_options(kwargs, message):
  kwargs = {"begin_step": 0, "end_step": 10, **kwargs}
  with pytest.raises(ValueError, match=message):
    optim.decay_schedule(1.0, **kwargs)
