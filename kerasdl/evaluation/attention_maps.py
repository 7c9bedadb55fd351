"""Where a trained Transformer looks: each head's attention weights over a sentence, as heat maps.

Works on any functional model built from our `TransformerEncoderBlock`s, directly or in a nested encoder model
(the transformer classifier, a BERT classifier): it reads each block's input and padding mask from the model's
graph and calls the block again with `return_attention_scores=True`, so the model needs no extra outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from kerasdl.layers import TransformerEncoderBlock

MAX_TOKENS_SHOWN = 30  # a longer sentence would make unreadable axes
PLOT_NAME = "attention_map"


def encoder_blocks(model: keras.Model) -> list[TransformerEncoderBlock]:
    """The model's encoder blocks in graph order, nested models included ([] for a model without any)."""
    blocks = []
    for layer in model.layers:
        if isinstance(layer, TransformerEncoderBlock):
            blocks.append(layer)
        elif isinstance(layer, keras.Model):
            blocks.extend(encoder_blocks(layer))
    return blocks


def attention_weights(model: keras.Model, token_ids: np.ndarray) -> list[np.ndarray]:
    """Each encoder block's attention weights for `token_ids`: a list of (batch, heads, length, length)."""
    holders = [layer for layer in model.layers if isinstance(layer, TransformerEncoderBlock)
               or (isinstance(layer, keras.Model) and encoder_blocks(layer))]
    feeds = [_feed(layer) for layer in holders]
    probe = keras.Model(model.input, [t for feed in feeds for t in feed if t is not None])
    values = iter(keras.tree.flatten(probe(token_ids, training=False)))  # one output comes back unlisted
    weights = []
    for layer, (_, mask) in zip(holders, feeds):
        x, mask = next(values), None if mask is None else next(values)
        if isinstance(layer, TransformerEncoderBlock):
            _, scores = layer(x, padding_mask=mask, return_attention_scores=True, training=False)
            weights.append(keras.ops.convert_to_numpy(scores))
        else:  # a nested encoder (a BERT classifier's): its own blocks, on what the outer graph feeds it
            weights.extend(attention_weights(layer, x))
    return weights


def _feed(layer: keras.layers.Layer) -> tuple[Any, Any]:
    """The graph tensors a layer is called on: its first input and its padding mask (None when not given)."""
    call = layer._inbound_nodes[0].arguments
    return call.args[0], call.kwargs.get("padding_mask")


def plot_attention_map(weights: np.ndarray, tokens: Sequence[str], path: Path, title: str) -> Path:
    """One heat map per head and their mean: row = the attending token, column = the token attended to."""
    from kerasdl.evaluation.plots import plt, save_figure

    panels = [*weights, weights.mean(axis=0)] if len(weights) > 1 else list(weights)
    names = [f"head {h + 1}" for h in range(len(weights))] + (["mean of heads"] if len(weights) > 1 else [])
    size = 1.5 + 0.28 * len(tokens)
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size + 0.6), squeeze=False)
    for ax, panel, name in zip(axes[0], panels, names):
        ax.imshow(panel, cmap="viridis", vmin=0.0, vmax=panel.max())
        ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=8)
        ax.set_yticks(range(len(tokens)), tokens, fontsize=8)
        ax.set(title=name, xlabel="attended to")
    axes[0][0].set_ylabel("query token")
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def pick_sentence(lengths: np.ndarray, shortest: int = 6) -> int:
    """The first text with `shortest` to MAX_TOKENS_SHOWN real tokens (else the first): a readable example."""
    fits = np.flatnonzero((lengths >= shortest) & (lengths <= MAX_TOKENS_SHOWN))
    return int(fits[0]) if len(fits) else 0


def write_attention_maps(model: keras.Model, texts: Sequence[str], token_ids: np.ndarray,
                         vocabulary: Sequence[str], class_names: Sequence[str], plots_dir: Path,
                         suffix: str = "") -> Path | None:
    """The last encoder block's heads on one of `texts` (rows of `token_ids`), as plots/attention_map.png;
    None for a model without encoder blocks."""
    if not encoder_blocks(model):
        return None
    lengths = (token_ids != 0).sum(axis=1)
    chosen = pick_sentence(lengths)
    ids = token_ids[chosen: chosen + 1]
    real = int(min(lengths[chosen], MAX_TOKENS_SHOWN))
    weights = attention_weights(model, ids)[-1][0, :, :real, :real]
    logits = keras.ops.convert_to_numpy(model(ids, training=False))[0]
    tokens = [vocabulary[i] for i in ids[0, :real]]
    title = f"{_shortened(texts[chosen])}  ->  {class_names[int(logits.argmax())]}"
    return plot_attention_map(weights, tokens, plots_dir / f"{PLOT_NAME}{suffix}.png", title)


def _shortened(text: Any, limit: int = 70) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
