"""tensorflow-datasets builders for the larger local datasets, written as array_record.

Each builder reads files already in the data folder (no download) and is prepared once by
:func:`prepare` into the tfds folder (``tfds_dir``, ``$EMBEDLAB_TFDS_DIR`` or
``~/.cache/embedlab/tfds``; see :mod:`embedlab.data.builders.source`), then read with
``builder.as_data_source(split)``: random-access records, no TensorFlow needed.

To add one: a module with a ``tfds.core.GeneratorBasedBuilder`` subclass that sets
``SOURCE_FILES`` (paths under the data folder) and reads them from ``dl_manager.manual_dir``,
plus one line in :data:`BUILDERS`.
"""

from embedlab.data.builders import wordnet_noun_gloss
from embedlab.data.builders.source import TFDS_DIR_ENV
from embedlab.data.builders.source import default_tfds_dir
from embedlab.data.builders.source import prepare

# tfds builder name -> class (the name tfds derives from the class name, snake_case).
BUILDERS = {
    "wordnet_noun_gloss": wordnet_noun_gloss.WordnetNounGloss,
}

__all__ = ["BUILDERS", "TFDS_DIR_ENV", "default_tfds_dir", "prepare", "wordnet_noun_gloss"]
