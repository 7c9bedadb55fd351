"""The one way kerasdl loads a `.keras` model file: as an untrusted file, in Keras's safe mode.

A `.keras` file is a zip of a JSON config and the weights; the config can carry Python bytecode (a `Lambda`
layer's function, a `lambda` activation) that plain loading would run. Safe mode refuses that, and Keras
3.15 only ever imports `keras` modules or classes registered with it (ours, `package="kerasdl"`), so loading
a stranger's file runs none of its code. A refusal, or a truncated or corrupt file, is one line naming it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from kerasdl.edge.runner import first_line
from kerasdl.errors import KerasdlError

if TYPE_CHECKING:
    import keras

SAFE_MODE_HINT = "safe_mode=False"  # in every message of Keras's safe-mode refusals, and in no other


class ModelFileError(KerasdlError):
    """A model file that is refused (it holds code) or cannot be read (truncated, corrupt, not a .keras)."""


def load_model_file(path: str | Path) -> "keras.Model":
    """The model saved at `path` (a `.keras` zip), loaded in safe mode; ModelFileError when it cannot be."""
    import keras

    path = Path(path)
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path} is not a .keras model file (a zip archive): it is truncated, corrupt or another format")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except ValueError as err:
        if SAFE_MODE_HINT in str(err):
            raise ModelFileError(
                f"{path} contains Python code (a Lambda layer or a lambda); kerasdl loads models in safe mode, "
                "which never runs code from a file: rebuild the model from registered layers"
            ) from None
        raise ModelFileError(f"{path} cannot be loaded ({first_line(err)})") from err
    except Exception as err:  # a corrupt archive fails anywhere in Keras's reader (zip, JSON, HDF5, config)
        raise ModelFileError(f"{path} cannot be loaded ({type(err).__name__}: {first_line(err)})") from err
