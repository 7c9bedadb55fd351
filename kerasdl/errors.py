"""Errors a user can cause and fix; the CLI prints them as one line, without a traceback."""


FOLDER_HINT = "or a folder of images with one sub-folder per class, or a CSV/TSV of text and label"  # --data besides names


class KerasdlError(Exception):
    """Base class for user-facing errors (bad name, missing file, bad value)."""


class UnknownNameError(KerasdlError, KeyError):
    """A model, data set, loop or format name that is not registered."""

    def __init__(self, kind: str, name: str, known: list[str], hint: str = ""):
        self.kind, self.name, self.known = kind, name, sorted(known)
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known)}" + (f" ({hint})" if hint else ""))

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.args[0]


class DataError(KerasdlError):
    """A data set that is missing, truncated or corrupt."""


class RunDirError(KerasdlError):
    """A run directory that is missing, incomplete, or would be overwritten."""


class TrainingError(KerasdlError):
    """Training that cannot go on, such as a loss that became NaN."""
