"""A GPT on Tiny Shakespeare: train a decoder-only Transformer, sample it, and sample it on the edge.

    python scripts/gpt_shakespeare.py --out runs/gpt-shakespeare [--tokenizer subword]

nanoGPT's CPU configuration (4 blocks of width 128 and 4 heads, windows of 64 tokens, Adam at 1e-3, no
dropout); same as `kerasdl train gpt --layers 4 --heads 4 --embedding-dim 128 --sequence-length 64
--batch-size 12 --learning-rate 1e-3 --epochs 10 --train-samples 2400` (2,000 steps).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kerasdl.commands import positive_int
from kerasdl.errors import KerasdlError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", choices=("character", "subword"), default="character")
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--windows-per-epoch", type=positive_int, default=2400, help="64-token training windows")
    parser.add_argument("--prompt", default="ROMEO:")
    parser.add_argument("--length", type=positive_int, default=300, help="tokens to generate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/gpt-shakespeare")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    import keras

    from kerasdl.edge.runner import EdgeModel, RunnerError, generate_text
    from kerasdl.evaluation.report import format_report
    from kerasdl.export.exporter import export_run
    from kerasdl.tasks.language_modelling import generate
    from kerasdl.training import TrainConfig
    from kerasdl.tuning.runs import train_once

    config = TrainConfig(
        "gpt", epochs=args.epochs, batch_size=12, learning_rate=1e-3, seed=args.seed,
        model_params={"layers": 4, "heads": 4, "embedding_dim": 128, "dropout": 0.0},
        task_params={"sequence_length": 64, "train_samples": args.windows_per_epoch, "tokenizer": args.tokenizer},
    )
    try:
        # 1. Train: the cross-entropy of every next token, each position seeing only the ones before it.
        run, metrics = train_once(config, Path(args.out), verbose="auto")
        print(format_report(metrics))
        # 2. Sample, one cached step a token: temperature, then top-k and nucleus (top-p) truncation.
        model, tokenizer = keras.saving.load_model(run.model_path), run.read_data_state()["tokenizer"]
        for temperature, top_k, top_p in ((0.0, None, None), (0.8, None, None), (1.0, 20, None), (1.0, None, 0.9)):
            text = generate(model, tokenizer, args.prompt, args.length, temperature, top_k, args.seed, top_p)
            print(f"\n--- temperature {temperature}, top-k {top_k}, top-p {top_p} ---\n{text}")
        # 3. On the edge: the cached step in TFLite (the cache an explicit input and output), looped by NumPy.
        exported = export_run(run.path, "tflite")
        edge = EdgeModel(exported.artifact)
        spec = edge.preprocessing.spec
        on_device = generate_text(edge.logits, edge.preprocessing.encoder, spec["state_size"], args.prompt,
                                  args.length, 0.8, seed=args.seed, context_length=spec["context_length"])
    except (KerasdlError, RunnerError) as err:
        raise SystemExit(f"gpt_shakespeare: error: {err}") from None
    same = on_device == generate(model, tokenizer, args.prompt, args.length, 0.8, seed=args.seed)
    print(f"\nTFLite ({exported.report['bytes']} bytes, builtin ops only: {exported.report['builtin_ops_only']}, "
          f"state: position + caches, {spec['state_size']} floats): same tokens as Keras: {same}\n{on_device}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
