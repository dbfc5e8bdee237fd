"""What every run writes to its workdir: ``config.json``, ``results.json``, the machine.

Both the training loop (:mod:`embedlab.train.loop`) and the runners that train nothing
(:mod:`embedlab.train.trees`) write through here, so a workdir reads the same whichever made it:

* ``config.json``: the config as JSON (:func:`config_dict`);
* ``results.json``: :func:`new_results` (``finished``, ``machine``, and the runner's own
  keys), completed by the task and written by :func:`write_results`, which adds
  ``wall_seconds_this_run``.

Writes are atomic (a temporary file, then ``os.replace``): a crash never leaves a truncated
file that a resumed run or a sweep would read.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import time
from typing import Any

import jax
import ml_collections


def config_dict(config: ml_collections.ConfigDict) -> dict:
  """``config`` as plain JSON values (what ``config.json`` holds)."""
  return json.loads(config.to_json_best_effort())


def write_text(path: pathlib.Path, text: str) -> None:
  """Writes ``text`` to ``path`` atomically."""
  path = pathlib.Path(path)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text)
  os.replace(tmp, path)


def write_json(path: pathlib.Path, value: Any) -> None:
  """Writes ``value`` as indented JSON with sorted keys (numbers NumPy gives as floats)."""
  write_text(path, json.dumps(value, indent=2, sort_keys=True, default=float))


def _cpu_model() -> str:
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def machine_info() -> dict:
  """Where a run ran: platform, device kind and count, CPU model and cores, jax version."""
  device = jax.devices()[0]
  return {"platform": device.platform, "device_kind": device.device_kind,
          "num_devices": jax.device_count(), "cpu_count": os.cpu_count(),
          "processor": _cpu_model(), "jax": jax.__version__}


def new_results(*, finished: bool, **fields) -> dict:
  """The skeleton of ``results.json``: ``finished``, ``machine`` and the runner's ``fields``."""
  return {**fields, "finished": finished, "machine": machine_info()}


def write_results(workdir: pathlib.Path, results: dict, *, wall_start: float) -> None:
  """Sets ``results["wall_seconds_this_run"]`` (since ``time.perf_counter() == wall_start``)
  and writes ``workdir/results.json``."""
  results["wall_seconds_this_run"] = round(time.perf_counter() - wall_start, 3)
  write_json(pathlib.Path(workdir) / "results.json", results)
