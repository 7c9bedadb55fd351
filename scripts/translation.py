"""English to French with a Transformer: train a translator on fra-eng, translate greedily and by beam search.

    python scripts/translation.py --out runs/translator-fra-eng
    python scripts/translation.py --model seq2seq-attention --out runs/seq2seq-fra-eng   # the LSTM baseline

Same as `kerasdl train translator --epochs 5 --learning-rate 1e-3 --lr-schedule cosine --sequence-length 10`
then `kerasdl translate RUN_DIR "..." --beam-size 4`. Training is teacher forcing (the decoder reads [start] +
the reference and predicts the reference + [end]); translating feeds the model its own tokens, one at a time.
BLEU and chrF (sacrebleu) score the first 500 pairs of fra-eng's fixed test split.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kerasdl.commands import positive_int
from kerasdl.errors import KerasdlError

SENTENCES = ("The cat sat on the mat.", "I love you.", "Where is the train station?", "We are going home now.")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("translator", "seq2seq-attention"), default="translator")
    parser.add_argument("--epochs", type=positive_int, default=5)
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam, cosine decay")
    parser.add_argument("--sequence-length", type=positive_int, default=10, help="longest sentence kept, in words")
    parser.add_argument("--beam-size", type=positive_int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/translator-fra-eng")
    parser.add_argument("sentences", nargs="*", default=SENTENCES, help="English sentences to translate")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    import keras

    from kerasdl.data.translation import TranslationPairs
    from kerasdl.evaluation.report import format_report
    from kerasdl.tasks.translation import translate
    from kerasdl.training import TrainConfig
    from kerasdl.tuning.runs import train_once

    config = TrainConfig(
        args.model, data="fra-eng", epochs=args.epochs, learning_rate=args.learning_rate, lr_schedule="cosine",
        seed=args.seed, task_params={"sequence_length": args.sequence_length},
    )
    try:
        # 1. Train on (English, [start] + French) -> French + [end]; evaluation decodes the held-out pairs.
        run, metrics = train_once(config, Path(args.out), verbose="auto")
        print(format_report(metrics))
        # 2. Translate new sentences with the run's own vocabularies: greedy, then the best of `beam_size` beams.
        model = keras.saving.load_model(run.model_path)
        data = TranslationPairs.from_state("fra-eng", run.read_data_state())
        greedy = translate(model, data, list(args.sentences))
        beam = translate(model, data, list(args.sentences), beam_size=args.beam_size)
    except KerasdlError as err:
        raise SystemExit(f"translation: error: {err}") from None
    for sentence, first, best in zip(args.sentences, greedy, beam):
        print(f"\n{sentence}\n  greedy: {first}\n  beam {args.beam_size}: {best}")
    # 3. The scores: n-gram overlap with the references (BLEU) and character n-gram F-score (chrF).
    print(f"\nBLEU {metrics['test_bleu']:.2f} greedy, {metrics['test_bleu_beam']:.2f} beam {metrics['beam_size']}; "
          f"chrF {metrics['test_chrf']:.2f} greedy, {metrics['test_chrf_beam']:.2f} beam "
          f"({metrics['bleu_pairs']} test pairs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
