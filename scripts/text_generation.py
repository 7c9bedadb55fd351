"""Character-level text generation on Tiny Shakespeare: train a char-LSTM, sample it, and sample it on the edge.

    python scripts/text_generation.py --out runs/char-lstm-shakespeare

Trains (or reuses) `char-lstm` (Embedding -> 2 x LSTM(256) -> next-character logits at every position of a
100-character window), prints its test loss in nats per character, continues a prompt at a few temperatures
(0 is greedy), then exports the single-step model ([character, state] in, [logits, new state] out) to TFLite
and lets the TF-free edge runner continue the same prompt with the same seed: the same characters come out.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kerasdl.commands import positive_int
from kerasdl.errors import KerasdlError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("char-lstm", "char-gru"), default="char-lstm")
    parser.add_argument("--epochs", type=positive_int, default=12)
    parser.add_argument("--windows-per-epoch", type=positive_int, default=6400, help="100-character training windows")
    parser.add_argument("--learning-rate", type=float, default=4e-3, help="Adam, cosine-decayed to 0 over the run")
    parser.add_argument("--prompt", default="ROMEO:")
    parser.add_argument("--length", type=positive_int, default=300, help="characters to generate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/char-lstm-shakespeare")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from kerasdl.edge.runner import EdgeModel, generate_text
    from kerasdl.evaluation.report import format_report
    from kerasdl.export.exporter import export_run
    from kerasdl.models.char_rnn import generate
    from kerasdl.training import TrainConfig
    from kerasdl.tuning.runs import train_once

    config = TrainConfig(
        args.model, epochs=args.epochs, learning_rate=args.learning_rate, lr_schedule="cosine", clipnorm=5.0,
        seed=args.seed, model_params={"units": 256, "layers": 2, "embedding_dim": 64},
        task_params={"sequence_length": 100, "train_samples": args.windows_per_epoch},
    )
    try:
        # 1. Train: cross-entropy of every next character, in nats (ln 65 = 4.17 is a uniform guess).
        run, metrics = train_once(config, Path(args.out), verbose="auto")
        print(format_report(metrics))
        # 2. Sample: temperature divides the logits; low is safe and repetitive, high is inventive and garbled.
        model, tokenizer = _load(run)
        for temperature in (0.0, 0.5, 0.8, 1.2):
            text = generate(model, tokenizer, args.prompt, args.length, temperature, seed=args.seed)
            print(f"\n--- temperature {temperature} ---\n{text}")
        # 3. On the edge: the single-step model in TFLite, looped by the runner with NumPy sampling only.
        exported = export_run(run.path, "tflite")
        edge = EdgeModel(exported.artifact)
        on_device = generate_text(edge.logits, edge.preprocessing.encoder, edge.preprocessing.spec["state_size"],
                                  args.prompt, args.length, 0.8, seed=args.seed)
    except KerasdlError as err:
        raise SystemExit(f"text_generation: error: {err}") from None
    same = on_device == generate(model, tokenizer, args.prompt, args.length, 0.8, seed=args.seed)
    print(f"\nTFLite ({exported.report['bytes']} bytes, builtin ops only: {exported.report['builtin_ops_only']}, "
          f"one step: [character, state] of shape {edge.preprocessing.shape}), temperature 0.8, seed {args.seed}; same characters as Keras: {same}\n{on_device}")
    return 0


def _load(run):
    """The run's trained model and its saved character vocabulary."""
    import keras

    return keras.saving.load_model(run.model_path), run.read_data_state()["tokenizer"]


if __name__ == "__main__":
    raise SystemExit(main())
