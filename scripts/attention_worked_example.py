"""Attention by hand: the lesson's self-attention for "sat" in "The cat sat on the mat.", with our layer.

    python scripts/attention_worked_example.py

The query of "sat" meets each word's key: the dot products are the scores, softmax turns them into weights
that sum to 1, and the output is the weighted sum of the values. Dividing the scores by sqrt(d_k) first (the
Transformer's scaled dot product) flattens the weights. The lesson gives no value vectors; its 3-d token
embeddings serve.
"""

from __future__ import annotations

import numpy as np

WORDS = ("the", "cat", "sat", "on", "mat")
QUERY_SAT = np.array([[0.5, 1.0]], np.float32)
KEYS = np.array([[1.0, 0.0], [0.5, 0.5], [0.5, 1.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
VALUES = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 1, 1], [1, 0, 0]], np.float32)


def show(title: str, row: np.ndarray) -> None:
    print(f"{title:<28}" + "".join(f"{value:>8.4f}" for value in row))


def main() -> int:
    import keras

    from kerasdl.layers import ScaledDotProductAttention

    print(f"{'':<28}" + "".join(f"{word:>8}" for word in WORDS))
    show("scores  Q . K", QUERY_SAT[0] @ KEYS.T)
    for scale, name in ((False, "softmax(scores)"), (True, "softmax(scores / sqrt(2))")):
        outputs, weights = ScaledDotProductAttention(scale=scale)(
            QUERY_SAT[None], KEYS[None], VALUES[None], return_attention_scores=True
        )
        weights, outputs = keras.ops.convert_to_numpy(weights)[0, 0], keras.ops.convert_to_numpy(outputs)[0, 0]
        show(name, weights)
        print(f"{'':<28}sum {weights.sum():.4f}; most attended: {WORDS[weights.argmax()]!r}; "
              f"output for 'sat' = [{', '.join(f'{v:.4f}' for v in outputs)}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
