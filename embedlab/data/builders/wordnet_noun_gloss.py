"""WordNet noun gloss embeddings as a tensorflow-datasets builder (``wordnet_noun_gloss``).

Source: ``<data_dir>/wordnet/noun_gloss_minilm.npz`` (shared/data README, section 9):
``synsets`` ``[N]`` str, the noun synset names, sorted and unique; ``features``
``[N, 384]`` float16, the all-MiniLM-L6-v2 embedding of each synset's lemmas and gloss.

One ``train`` example per synset, in the file's row order (shuffling is disabled, so record
``i`` is row ``i``):

* ``synset``: ``Text``, e.g. ``dog.n.01``;
* ``index``: ``int64``, the row, i.e. the position in the sorted names: the synset's node id in
  ``wordnet/noun_closure.tsv.gz`` (:mod:`embedlab.data.closure`);
* ``embedding``: ``float16 [384]``, stored as raw bytes (``Encoding.BYTES``).

Why float16: it is the source's dtype, so the records hold exactly the stored values, at 768
bytes a row (72 MB prepared). A ``tf.train.Example`` has no float16 list, so the default
encoding would widen every value to a float32 list (97 MB) and decode ~30% slower; readers
cast to float32 themselves.

Prepare and read (no TensorFlow)::

  names, embeddings = wordnet_noun_gloss.load(data_dir)    # builds on first use
  records = source.prepare(WordnetNounGloss, source_dir=data_dir).as_data_source("train")
  records[0]   # {'synset': b"'hood.n.01", 'index': 0, 'embedding': array([...], float16)}
"""

from __future__ import annotations

import os
import pathlib
import zipfile

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from embedlab.data import closure as closure_lib
from embedlab.data.builders import source

SOURCE_PATH = "wordnet/noun_gloss_minilm.npz"
EMBEDDING_DIM = 384
_EXPECTED = (f"arrays 'synsets' [N] str (sorted, unique) and 'features' [N, {EMBEDDING_DIM}] "
             "float16 (finite)")
_READ_CHUNK = 8192  # records decoded per as_data_source batch: bounds the list of dicts


def read_source(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
  """Reads and checks the source npz.

  Returns:
    ``(names [N] str, embeddings float16 [N, 384])``.

  Raises:
    ValueError: the file is not an npz, or its arrays are not ``_EXPECTED`` (the message
      names the file and what was found).
  """
  path = pathlib.Path(path)

  def bad(found: str) -> ValueError:
    return ValueError(f"{path}: {found}; expected {_EXPECTED}.")

  try:
    stored = np.load(path, allow_pickle=False)
    stored.files  # np.load returns a bare array for .npy bytes: no `.files`.
  except (OSError, ValueError, zipfile.BadZipFile, AttributeError) as e:
    # Bytes that are neither npz nor npy read as a pickle, which allow_pickle=False refuses.
    raise bad(f"not a readable .npz archive ({type(e).__name__}: {e})") from e
  with stored:
    missing = sorted({"synsets", "features"} - set(stored.files))
    if missing:
      raise bad(f"missing {missing} (it holds {sorted(stored.files)})")
    try:
      names, embeddings = stored["synsets"], stored["features"]
    except ValueError as e:  # allow_pickle=False refuses object arrays
      raise bad("an object (pickled) array") from e
  if names.ndim != 1 or names.dtype.kind != "U" or names.size == 0:
    raise bad(f"'synsets' is {names.dtype} {list(names.shape)}")
  if embeddings.shape != (names.size, EMBEDDING_DIM) or embeddings.dtype != np.float16:
    raise bad(f"'features' is {embeddings.dtype} {list(embeddings.shape)} for "
              f"{names.size} synsets")
  unordered = np.flatnonzero(names[1:] <= names[:-1])
  if unordered.size:
    i = int(unordered[0])
    raise bad(f"'synsets' rows {i} and {i + 1} ({names[i]!r}, {names[i + 1]!r}) are not "
              "strictly increasing")
  if not np.isfinite(embeddings).all():
    raise bad(f"'features' row {int(np.flatnonzero(~np.isfinite(embeddings).all(1))[0])} "
              "is not finite")
  return names, embeddings


class WordnetNounGloss(tfds.core.GeneratorBasedBuilder):
  """WordNet 3.0 noun synsets with their all-MiniLM-L6-v2 gloss embeddings (module docstring)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {
      "1.0.0": ("One record per WordNet 3.0 noun synset (82,115 in the shared data): name, row "
                "id, 384-d all-MiniLM-L6-v2 gloss embedding as float16 bytes."),
  }
  SOURCE_FILES = (SOURCE_PATH,)
  # tfds 4.9.10's own `code_path` reaches for the `importlib_resources` backport, which it
  # only declares for Python < 3.9, and fails on a build without it (tensorflow/datasets
  # issue 11212). This is the value its fallback branch computes for a module on disk.
  code_path = epath.Path(__file__)
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      f"Nothing is downloaded: point manual_dir (embedlab: data_dir or "
      f"${closure_lib.DATA_DIR_ENV}) at the folder that holds {SOURCE_PATH}.")

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=("WordNet 3.0 noun synsets (names sorted, as in wordnet/noun_closure.tsv.gz) "
                     "with the all-MiniLM-L6-v2 embedding of each synset's lemmas and gloss, "
                     "from embedlab's shared data wordnet/noun_gloss_minilm.npz."),
        features=tfds.features.FeaturesDict({
            "synset": tfds.features.Text(),
            "index": np.int64,
            "embedding": tfds.features.Tensor(shape=(EMBEDDING_DIM,), dtype=np.float16,
                                              encoding=tfds.features.Encoding.BYTES),
        }),
        disable_shuffling=True,  # record i must stay row i (= the closure's node id)
        metadata=tfds.core.MetadataDict(),
        citation=("G. A. Miller, WordNet: a lexical database for English, CACM 1995; "
                  "N. Reimers, I. Gurevych, Sentence-BERT, EMNLP 2019."),
    )

  def _split_generators(self, dl_manager):
    names, embeddings = read_source(dl_manager.manual_dir / SOURCE_PATH)
    self.info.metadata[source.SOURCE_DIGEST_KEY] = source.source_digest(
        dl_manager.manual_dir, self.SOURCE_FILES)
    return {"train": self._generate_examples(names, embeddings)}

  def _generate_examples(self, names, embeddings):
    for i in range(names.size):
      yield i, {"synset": names[i], "index": i, "embedding": embeddings[i]}


def read_all(builder: tfds.core.DatasetBuilder) -> tuple[np.ndarray, np.ndarray]:
  """Every record of a prepared builder, batched through ``as_data_source``.

  Returns:
    ``(names [N] str, embeddings float16 [N, 384])`` in record (= source row) order.

  Raises:
    ValueError: a record's ``index`` is not its position (a damaged or foreign dataset).
  """
  records = builder.as_data_source(split="train")
  n = len(records)
  names: list[str] = []
  embeddings = np.empty((n, EMBEDDING_DIM), np.float16)
  index = np.empty(n, np.int64)
  for start in range(0, n, _READ_CHUNK):
    batch = records.__getitems__(range(start, min(start + _READ_CHUNK, n)))
    stop = start + len(batch)
    names.extend(r["synset"].decode() for r in batch)
    embeddings[start:stop] = np.stack([r["embedding"] for r in batch])
    index[start:stop] = [r["index"] for r in batch]
  if not np.array_equal(index, np.arange(n)):
    raise ValueError(f"'{builder.data_dir}': record {int(np.flatnonzero(index != np.arange(n))[0])}"
                     " is out of order; delete the folder to rebuild it.")
  return np.asarray(names, dtype=str).reshape(n), embeddings


def load(source_dir: str | os.PathLike | None = None, *,
         tfds_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
  """``(names [N] str, embeddings float16 [N, 384])``, preparing the dataset on first use.

  Args:
    source_dir: the data folder holding ``wordnet/noun_gloss_minilm.npz``; ``None`` reads
      ``$EMBEDLAB_DATA_DIR``.
    tfds_dir: the prepared-dataset folder (:func:`source.default_tfds_dir` if ``None``).
  """
  return read_all(source.prepare(WordnetNounGloss, source_dir=source_dir, tfds_dir=tfds_dir))
