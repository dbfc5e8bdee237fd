"""Geometries: one module of pure functions per manifold, and the explicit registry.

>>> from embedlab import geometry
>>> ball = geometry.get("poincare")
>>> ball.dist(x, y, c=1.0)  # doctest: +SKIP

A geometry written elsewhere (a notebook, a user's module) joins the registry with
:func:`register`; every config field ``geometry=`` then finds it by name::

    geometry.register(my_manifold)          # ValueError if the name is taken
    with geometry.registered(my_manifold):  # registered only inside the block
      ...
"""

from __future__ import annotations

import contextlib

from embedlab.geometry import euclidean, lorentz, poincare, sphere
from embedlab.geometry._numerics import row_dots
from embedlab.geometry.base import Manifold, check_on_manifold, checkify_on_manifold

GEOMETRIES: dict[str, Manifold] = {
    "euclidean": euclidean.MANIFOLD,
    "poincare": poincare.MANIFOLD,
    "lorentz": lorentz.MANIFOLD,
    "sphere": sphere.MANIFOLD,
}
_BUILT_IN = dict(GEOMETRIES)


def get(name: str) -> Manifold:
  """The registered geometry called ``name``; ``ValueError`` listing the valid names otherwise."""
  try:
    return GEOMETRIES[name]
  except KeyError:
    raise ValueError(
        f"unknown geometry {name!r}; expected one of {sorted(GEOMETRIES)}") from None


def register(manifold: Manifold, *, replace: bool = False) -> Manifold:
  """Adds ``manifold`` to :data:`GEOMETRIES` under ``manifold.name``; returns the registered
  record.

  Run ``conformance.assert_conforms(manifold)`` first: every loss and task relies on what the
  suite checks. Registering a record equal to the one already registered under its name does
  nothing and returns the registered one.

  Args:
    manifold: a :class:`Manifold` record.
    replace: replace a different geometry already registered under the same name (a built-in
      one included) instead of raising.

  Raises:
    TypeError: ``manifold`` is not a :class:`Manifold`.
    ValueError: its name is empty, or taken by a different geometry and ``replace`` is false.
  """
  if not isinstance(manifold, Manifold):
    raise TypeError(f"geometry.register expects a Manifold record; got "
                    f"{type(manifold).__name__}")
  name = manifold.name
  if not isinstance(name, str) or not name:
    raise ValueError(f"geometry.register: a Manifold needs a non-empty name; got {name!r}")
  current = GEOMETRIES.get(name)
  if current is not None and current == manifold:
    return current
  if current is not None and not replace:
    raise ValueError(f"geometry {name!r} is already registered ({current!r}); pick another "
                     "name or pass replace=True")
  GEOMETRIES[name] = manifold
  return manifold


def unregister(name: str) -> Manifold:
  """Removes the geometry registered as ``name`` and returns it; a replaced built-in geometry
  comes back. ``ValueError`` for an unknown name or a built-in that was not replaced."""
  current = get(name)
  if name in _BUILT_IN:
    if current is _BUILT_IN[name]:
      raise ValueError(f"geometry {name!r} is built in; it cannot be unregistered")
    GEOMETRIES[name] = _BUILT_IN[name]
  else:
    del GEOMETRIES[name]
  return current


@contextlib.contextmanager
def registered(manifold: Manifold, *, replace: bool = False):
  """Context manager: ``manifold`` is registered inside the block only (see :func:`register`);
  what was registered under its name before comes back on exit."""
  previous = GEOMETRIES.get(manifold.name) if isinstance(manifold, Manifold) else None
  register(manifold, replace=replace)
  try:
    yield manifold
  finally:
    if previous is None:
      GEOMETRIES.pop(manifold.name, None)
    else:
      GEOMETRIES[manifold.name] = previous


__all__ = ["GEOMETRIES", "Manifold", "check_on_manifold", "checkify_on_manifold", "get",
           "register", "registered", "row_dots", "unregister", "euclidean", "lorentz",
           "poincare", "sphere"]
