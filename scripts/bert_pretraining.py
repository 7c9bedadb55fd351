"""BERT pretrained here: masked-LM pretraining on local English, then SST-2 fine-tuned from it vs from scratch.

    python scripts/bert_pretraining.py --out runs/bert
    python scripts/bert_pretraining.py --pretrain-rows 30000 --text "the acting was [MASK] ."

1. Pretrain bert-mini on english-corpus (SST-2's GLUE train sentences, MR, Multi30k English, Shakespeare)
   by masked-language modelling: 15% of the words chosen, 80% of those masked, 10% random, 10% kept.
2. Fine-tune bert-classifier on SST-2 from its encoder, and the same classifier from random weights, with
   the same epochs, learning rate and seed: the difference is what pretraining bought.
3. Fill the [MASK] of a few sentences with the pretrained model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kerasdl.commands import positive_int

PRETRAIN = {"epochs": 1, "batch_size": 64, "learning_rate": 2e-3, "lr_schedule": "cosine"}
FINE_TUNE = {"epochs": 2, "batch_size": 64, "learning_rate": 5e-4, "lr_schedule": "cosine"}
EXAMPLES = ("the movie was [MASK] .", "a man is playing the [MASK] on stage .", "she is eating an [MASK] .")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-rows", type=positive_int, default=12_800, help="rows of 32 words pretrained on")
    parser.add_argument("--data", default="sst2", help="the labelled set to fine-tune on (sst2, mr, a CSV/TSV)")
    parser.add_argument("--text", action="append", help="a sentence with [MASK] to fill (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bert")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from kerasdl.tasks.masked_language_modelling import fill_mask
    from kerasdl.training import TrainConfig
    from kerasdl.tuning.runs import train_once

    out = Path(args.out)
    pretraining = TrainConfig("bert-mini", data="english-corpus", seed=args.seed,
                              task_params={"train_samples": args.pretrain_rows}, **PRETRAIN)
    backbone, metrics = train_once(pretraining, out / "bert-mini", verbose="auto")
    print(f"pretrained: {metrics['test_loss']:.3f} nats per masked word (unigram baseline "
          f"{metrics['unigram_loss']:.3f}), masked-word accuracy {metrics['test_masked_accuracy']:.3f}")

    accuracies = {}
    for start, backbone_path in (("pretrained", str(backbone.path)), ("random", None)):
        params = {"backbone": backbone_path} if backbone_path else {}
        config = TrainConfig("bert-classifier", data=args.data, seed=args.seed, model_params=params, **FINE_TUNE)
        _, result = train_once(config, out / f"bert-classifier-{start}", verbose="auto")
        accuracies[start] = result["test_accuracy"]
    for start, accuracy in accuracies.items():
        print(f"{args.data} test accuracy, encoder from {start} weights: {accuracy:.4f}")

    import keras

    model = keras.saving.load_model(backbone.model_path)
    tokenizer = backbone.read_data_state()["tokenizer"]
    for text in args.text or EXAMPLES:
        guesses = fill_mask(model, tokenizer, text, top_k=5)[0]
        print(f"{text}  ->  " + ", ".join(f"{g['token']} ({g['probability']:.2f})" for g in guesses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
