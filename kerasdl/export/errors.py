"""Errors of an export a user can act on; the CLI prints them as one line."""

from __future__ import annotations

from kerasdl.errors import KerasdlError


class ExportError(KerasdlError):
    """An export that cannot produce a working edge artifact."""


class NonBuiltinOpsError(ExportError):
    """The model needs ops outside the TFLite builtin set (Flex/SELECT_TF_OPS or custom ops).

    `ops` holds (op name, layer name or None) pairs, so callers and tests can see what to replace.
    """

    def __init__(self, fmt: str, ops: list[tuple[str, str | None]]):
        self.ops = ops
        named = ", ".join(op + (f" (layer {layer!r})" if layer else "") for op, layer in ops)
        super().__init__(
            f"{fmt}: the model needs ops that are not TFLite builtins: {named}. Edge artifacts use builtin ops "
            "only (no Flex/SELECT_TF_OPS): replace that layer, or register an edge adapter for the model's "
            "family (kerasdl.export.edge_model.register_edge_adapter) that rewrites it before conversion"
        )
