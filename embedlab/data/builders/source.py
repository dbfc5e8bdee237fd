"""Preparing tensorflow-datasets builders from local source files, without TensorFlow.

Every builder in :data:`embedlab.data.builders.BUILDERS` reads files that already sit in the
data folder (``data_dir`` / ``$EMBEDLAB_DATA_DIR``, handed to tfds as its ``manual_dir``) and
lists them, relative to that folder, in a ``SOURCE_FILES`` class attribute. Nothing is
downloaded: ``dl_manager.download*`` is never called and tfds' GCS look-up is switched off.

:func:`prepare` writes the dataset once as ``array_record`` under the tfds folder:

  ``<tfds_dir>/<builder name>/<version>/`` (``dataset_info.json``, ``features.json``,
  ``metadata.json``, ``<name>-<split>.array_record-*``)

where ``tfds_dir`` is, first match wins: the ``tfds_dir`` argument, ``$EMBEDLAB_TFDS_DIR``,
``$XDG_CACHE_HOME/embedlab/tfds``, ``~/.cache/embedlab/tfds``. (Not the data folder: that one
is treated as read-only.) Later calls reuse it and only read it through ``as_data_source``;
neither ``as_dataset`` nor ``tfds.load`` (both need TensorFlow) is used.

Safety of the reuse:

* tfds generates into an ``incomplete.<random>_<version>`` folder beside the version folder
  and renames it only once every split and the info files are written. An exception removes
  that folder; a killed process leaves it behind, but a build is reused only when the version
  folder itself exists, so half a dataset is never loaded.
* Concurrent preparations (e.g. pytest-xdist workers) take an exclusive ``fcntl`` lock on
  ``<tfds_dir>/<name>.lock``; the loser finds the winner's dataset and reuses it.
* The SHA-256 of the source files is stored in the dataset's ``metadata.json``; reusing a
  dataset built from different files (a regenerated source, or another data folder sharing
  the same cache) is refused with a :class:`ValueError` that names both.

Messages tfds prints on a build (``Downloading and preparing dataset ...`` and a progress bar,
once per build) are left as they are; none says anything about TensorFlow (checked with
tensorflow-datasets 4.9.10 and no TensorFlow installed).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pathlib
import tempfile
from typing import Iterator

import tensorflow_datasets as tfds

from embedlab.data import closure as closure_lib

TFDS_DIR_ENV = "EMBEDLAB_TFDS_DIR"
FILE_FORMAT = "array_record"
SOURCE_DIGEST_KEY = "source_sha256"


def default_tfds_dir() -> pathlib.Path:
  """``$EMBEDLAB_TFDS_DIR``, else ``$XDG_CACHE_HOME/embedlab/tfds``, else ``~/.cache/...``."""
  if os.environ.get(TFDS_DIR_ENV):
    return pathlib.Path(os.environ[TFDS_DIR_ENV]).expanduser()
  cache = os.environ.get("XDG_CACHE_HOME") or pathlib.Path("~/.cache").expanduser()
  return pathlib.Path(cache) / "embedlab" / "tfds"


def source_digest(source_dir: str | os.PathLike, files: tuple[str, ...]) -> str:
  """SHA-256 over the relative names and the bytes of ``files`` under ``source_dir``."""
  digest = hashlib.sha256()
  for name in files:
    digest.update(name.encode() + b"\0")
    with open(pathlib.Path(source_dir) / name, "rb") as f:
      for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
  return digest.hexdigest()


@contextlib.contextmanager
def _exclusive(lock_path: pathlib.Path) -> Iterator[None]:
  # The kernel drops an flock when its holder dies, so a killed build never blocks the next.
  with open(lock_path, "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def prepare(builder_cls: type[tfds.core.GeneratorBasedBuilder], *,
            source_dir: str | os.PathLike | None = None,
            tfds_dir: str | os.PathLike | None = None) -> tfds.core.GeneratorBasedBuilder:
  """Builds ``builder_cls`` from its local source files once; returns the prepared builder.

  Args:
    builder_cls: a builder class with a ``SOURCE_FILES`` tuple of paths relative to
      ``source_dir``.
    source_dir: the data folder; ``None`` reads ``$EMBEDLAB_DATA_DIR``.
    tfds_dir: where prepared datasets live; ``None``: :func:`default_tfds_dir`.

  Returns:
    The builder, ready for ``as_data_source``.

  Raises:
    ValueError: no data folder given; the source files are malformed (raised by the builder,
      naming the file and what was expected); or a dataset prepared from other source files
      already sits at the target (the message names it).
    FileNotFoundError: the data folder or a source file is missing (the message names the
      expected path and ``EMBEDLAB_DATA_DIR``).
  """
  source_dir = closure_lib.resolve_data_dir(source_dir)
  for name in builder_cls.SOURCE_FILES:
    if not (source_dir / name).is_file():
      raise FileNotFoundError(
          f"{builder_cls.name}: source file '{source_dir / name}' not found. Set "
          f"{closure_lib.DATA_DIR_ENV} or --config.data_dir to the folder that holds {name}.")
  digest = source_digest(source_dir, builder_cls.SOURCE_FILES)
  root = pathlib.Path(tfds_dir).expanduser() if tfds_dir else default_tfds_dir()
  root.mkdir(parents=True, exist_ok=True)

  def make():
    return builder_cls(data_dir=os.fspath(root), file_format=FILE_FORMAT)

  # The version folder appears (by rename) only when complete: the test tfds itself uses.
  builder = make()
  if not builder.data_path.exists():
    with _exclusive(root / f"{builder_cls.name}.lock"):
      builder = make()  # Another process may have finished it while we waited.
      if not builder.data_path.exists():
        config = tfds.download.DownloadConfig(manual_dir=os.fspath(source_dir),
                                              try_download_gcs=False)
        # tfds creates its download folders eagerly; keep them out of the cache.
        with tempfile.TemporaryDirectory() as scratch:
          builder.download_and_prepare(download_dir=scratch, download_config=config,
                                       file_format=FILE_FORMAT)
  built = (builder.info.metadata or {}).get(SOURCE_DIGEST_KEY)
  if built != digest:
    raise ValueError(
        f"The prepared dataset '{builder.data_dir}' was built from other source files "
        f"(sha256 {str(built)[:12]}) than {list(builder_cls.SOURCE_FILES)} in '{source_dir}' "
        f"(sha256 {digest[:12]}). Delete that folder to rebuild it from the current files, "
        f"or pass another tfds_dir / set {TFDS_DIR_ENV}.")
  return builder
