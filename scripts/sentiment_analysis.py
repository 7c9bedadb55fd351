"""Sentiment analysis: a bidirectional LSTM or Kim's CNN on movie-review sentences, its report, and raw sentences.

    python scripts/sentiment_analysis.py --model bilstm --data sst2 --out runs/sentiment
    python scripts/sentiment_analysis.py --model text-cnn --data reviews.csv --text "a gorgeous, witty film"

Trains on SST-2, MR or a CSV/TSV of text and label (tokenized with a vocabulary of its training split),
prints the test report, then the predicted class and probability of each raw sentence given.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kerasdl.commands import positive_int
from kerasdl.errors import KerasdlError

# The training settings tests/test_rnn.py asserts the accuracies with (more epochs overfit these sets).
SETTINGS = {
    "bilstm": {"epochs": 2},
    "text-cnn": {"epochs": 3, "batch_size": 50, "learning_rate": 1e-3, "lr_schedule": "cosine"},
}
EXAMPLES = (
    "a gorgeous, witty, seductive movie.",
    "the story is a mess and the jokes fall flat.",
    "not as good as the first one, but still worth seeing.",
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(SETTINGS), default="bilstm")
    parser.add_argument("--data", default="sst2", help="sst2, mr, or a CSV/TSV file of text and label")
    parser.add_argument("--epochs", type=positive_int, help="default: the tested setting for the model")
    parser.add_argument("--text", action="append", help="a sentence to classify (repeatable; default: examples)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/sentiment")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    import keras

    from kerasdl.evaluation.metrics import probabilities
    from kerasdl.evaluation.report import format_report
    from kerasdl.training import TrainConfig
    from kerasdl.training.train import load_for
    from kerasdl.tuning.runs import train_once

    settings = {**SETTINGS[args.model], **({"epochs": args.epochs} if args.epochs else {})}
    config = TrainConfig(args.model, data=args.data, seed=args.seed, **settings)
    try:
        run, metrics = train_once(config, Path(args.out), verbose="auto")
    except KerasdlError as err:
        raise SystemExit(f"sentiment_analysis: error: {err}") from None
    print(format_report(metrics))

    data = load_for(run.read_config(), state=run.read_data_state())  # the vocabulary training used
    model = keras.saving.load_model(run.model_path)
    texts = args.text or list(EXAMPLES)
    for text, row in zip(texts, probabilities(model.predict(data.inputs_for(texts), verbose=0))):
        print(f"{data.info.class_names[row.argmax()]:>10} {row.max():.3f}  {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
