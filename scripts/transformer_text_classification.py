"""Text classification with a Transformer encoder: train on SST-2 (or MR, or your CSV/TSV), report, classify.

    python scripts/transformer_text_classification.py --data sst2 --out runs/transformer-sst2
    python scripts/transformer_text_classification.py --layers 2 --heads 4 --text "a gorgeous, witty film"

token ids -> token + position embeddings -> encoder blocks (self-attention with a padding mask, feed-forward)
-> mean of the real tokens -> logits. The run's plots/attention_map.png shows where each head looks on a
test sentence.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kerasdl.commands import positive_int
from kerasdl.errors import KerasdlError

EXAMPLES = (
    "a gorgeous, witty, seductive movie.",
    "the story is a mess and the jokes fall flat.",
    "not as good as the first one, but still worth seeing.",
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="sst2", help="sst2, mr, or a CSV/TSV file of text and label")
    parser.add_argument("--layers", type=positive_int, default=1, help="encoder blocks")
    parser.add_argument("--heads", type=positive_int, default=2, help="attention heads per block")
    parser.add_argument("--embedding-dim", type=positive_int, default=64, help="model width (heads divide it)")
    parser.add_argument("--epochs", type=positive_int, default=2, help="SST-2 overfits after two")
    parser.add_argument("--text", action="append", help="a sentence to classify (repeatable; default: examples)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/transformer-classifier")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    import kerasdl
    from kerasdl.evaluation.report import format_report
    from kerasdl.training import TrainConfig
    from kerasdl.tuning.runs import train_once

    config = TrainConfig(
        "transformer-classifier", data=args.data, epochs=args.epochs, lr_schedule="cosine", seed=args.seed,
        model_params={"layers": args.layers, "heads": args.heads, "embedding_dim": args.embedding_dim},
    )
    try:
        run, metrics = train_once(config, Path(args.out), verbose="auto")
    except KerasdlError as err:
        raise SystemExit(f"transformer_text_classification: error: {err}") from None
    print(format_report(metrics))
    print(f"attention map: {run.path / 'plots' / 'attention_map.png'}")

    classify = kerasdl.pipeline("sentiment-analysis", run.path)  # the curriculum's pipeline(), on our own run
    texts = args.text or list(EXAMPLES)
    for text, answer in zip(texts, classify(texts)):
        print(f"{answer['label']:>10} {answer['score']:.3f}  {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
