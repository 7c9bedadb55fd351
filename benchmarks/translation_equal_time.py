"""The Transformer `translator` against the `seq2seq-attention` LSTM baseline on fra-eng, at equal training time.

Both models train in this one process on the same batches (same data, same seed, Adam at each model's
registered learning rate unless `--learning-rate MODEL=RATE`), in alternating slices of `--slice` CPU seconds
until each has had `--budget` CPU seconds of training steps: CPU time of this process, not wall-clock, so the
other jobs of a shared machine slow neither model more than the other, and alternating spreads any drift over
both. The first step of each (tracing) is untimed and reported apart. Then both translate the same held-out
pairs (the first 500 of fra-eng's fixed test split, as `kerasdl evaluate` scores them) greedily and by beam
search, scored by sacrebleu's corpus BLEU and chrF; the teacher-forced test loss is measured on the same pairs.

    python benchmarks/translation_equal_time.py                      # 150 CPU seconds each
    python benchmarks/translation_equal_time.py --budget 150 --learning-rate seq2seq-attention=3e-3 \\
        --out benchmarks/results/translation_equal_time_seq2seq_lr3e-3.json

Prints a table and writes benchmarks/results/translation_equal_time.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

MODELS = ("translator", "seq2seq-attention")
RESULTS = Path(__file__).parent / "results" / "translation_equal_time.json"


class Trainee:
    """One model, its optimizer and its own pass over the shared batches, trained a slice at a time."""

    def __init__(self, name: str, data: Any, batch_size: int, seed: int, learning_rate: float | None):
        import keras

        from kerasdl.registry import model_spec
        from kerasdl.tasks import get_task

        spec = model_spec(name)
        keras.utils.set_random_seed(seed)
        self.name, self.model = name, spec.build(data.info)
        self.learning_rate = learning_rate or spec.train_defaults.get("learning_rate", 1e-3)
        get_task(spec.task).compile(self.model, keras.optimizers.Adam(self.learning_rate), jit_compile=spec.jit_compile)
        self.batches = iter(data.dataset("train", batch_size, shuffle_seed=seed).repeat())
        started = time.process_time()
        self.loss = self._step()
        self.warmup_cpu_seconds = time.process_time() - started
        self.cpu_seconds = self.wall_seconds = 0.0
        self.steps = 0

    def _step(self) -> float:
        logs = self.model.train_on_batch(*next(self.batches), return_dict=True)
        return float(logs["loss"])

    def train_for(self, cpu_seconds: float) -> None:
        """Training steps until this slice's CPU seconds are spent (the last step may overrun a little)."""
        cpu, wall = time.process_time(), time.perf_counter()
        while time.process_time() - cpu < cpu_seconds:
            self.loss = self._step()
            self.steps += 1
        self.cpu_seconds += time.process_time() - cpu
        self.wall_seconds += time.perf_counter() - wall


def scores(trainee: Trainee, data: Any, pairs: int, beam_size: int) -> dict[str, Any]:
    """Teacher-forced loss, and BLEU and chrF of greedy and beam decoding, on the first `pairs` test pairs."""
    import numpy as np
    import sacrebleu

    from kerasdl.data.translation import reference
    from kerasdl.tasks.translation import masked_cross_entropy, translate

    sources, targets = (texts[:pairs] for texts in data.pairs_texts("test"))
    references = [reference(text, data.target_level) for text in targets]
    source_ids, decoder_inputs, labels = (array[:pairs] for array in data.arrays("test"))
    logits = trainee.model({"source": source_ids, "target": decoder_inputs}, training=False)
    result: dict[str, Any] = {"test_loss": float(np.asarray(masked_cross_entropy(labels, logits)))}
    started = time.perf_counter()
    for kind, beam in (("", 1), ("_beam", beam_size)):
        hypotheses = translate(trainee.model, data, sources, beam_size=beam)
        result[f"bleu{kind}"] = sacrebleu.corpus_bleu(hypotheses, [references], tokenize=data.bleu_tokenize).score
        result[f"chrf{kind}"] = sacrebleu.corpus_chrf(hypotheses, [references]).score
        result[f"examples{kind}"] = [{"source": s, "reference": r, "translation": h}
                                     for s, r, h in list(zip(sources, references, hypotheses))[:5]]
    result["decode_seconds"] = round(time.perf_counter() - started, 1)
    return result


def learning_rate(text: str) -> tuple[str, float]:
    """"seq2seq-attention=3e-3" -> ("seq2seq-attention", 0.003)."""
    name, _, rate = text.partition("=")
    if name not in MODELS or not rate:
        raise SystemExit(f"--learning-rate takes MODEL=RATE with MODEL one of {', '.join(MODELS)}; got {text!r}")
    return name, float(rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=150.0, help="CPU seconds of training per model")
    parser.add_argument("--slice", type=float, default=30.0, help="CPU seconds per turn before switching")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--sequence-length", type=int, default=10, help="longest sentence kept, in words")
    parser.add_argument("--vocabulary-size", type=int, default=8000)
    parser.add_argument("--pairs", type=int, default=500, help="held-out test pairs scored")
    parser.add_argument("--beam-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learning-rate", action="append", default=[], metavar="MODEL=RATE",
                        help="Adam's rate for one model (default: its registered one, 1e-3); repeatable")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    from kerasdl.quiet import quiet_libraries

    with quiet_libraries():
        compare(args)


def compare(args: argparse.Namespace) -> None:
    """Train both models for the same CPU time, score them, print the table and write the JSON."""
    from kerasdl.data import load
    from kerasdl.tasks import get_task

    data = get_task("translation").adapt_data(
        load("fra-eng", seed=args.seed),
        {"sequence_length": args.sequence_length, "vocabulary_size": args.vocabulary_size},
    )
    rates = dict(learning_rate(text) for text in args.learning_rate)
    trainees = [Trainee(name, data, args.batch_size, args.seed, rates.get(name)) for name in MODELS]
    turn = 0
    while any(trainee.cpu_seconds < args.budget for trainee in trainees):
        order = trainees if turn % 2 == 0 else trainees[::-1]  # who goes first alternates too
        for trainee in order:
            left = args.budget - trainee.cpu_seconds
            if left > 0:
                trainee.train_for(min(args.slice, left))
        turn += 1

    rows = []
    for trainee in trainees:
        rows.append({
            "model": trainee.name,
            "parameters": trainee.model.count_params(),
            "learning_rate": trainee.learning_rate,
            "train_cpu_seconds": round(trainee.cpu_seconds, 1),
            "train_wall_seconds": round(trainee.wall_seconds, 1),
            "warmup_cpu_seconds": round(trainee.warmup_cpu_seconds, 1),
            "steps": trainee.steps,
            "pairs_seen": trainee.steps * args.batch_size,
            "last_train_loss": round(trainee.loss, 4),
            **scores(trainee, data, args.pairs, args.beam_size),
        })
    report = {
        "data": "fra-eng", "train_pairs": data.info.split_sizes["train"], "source_length": data.info.input_shape[0],
        "target_length": data.info.target_length, "target_vocabulary": data.info.num_classes,
        "settings": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()},
        "results": rows,
    }
    print(f"fra-eng, {report['train_pairs']} training pairs of <= {args.sequence_length} words, "
          f"{args.budget:g} CPU s of training each, {args.pairs} test pairs")
    print(f"{'model':<20}{'params':>10}{'rate':>8}{'steps':>7}{'loss':>8}{'BLEU':>7}{'beam':>7}{'chrF':>7}{'beam':>7}")
    for row in rows:
        print(f"{row['model']:<20}{row['parameters']:>10,}{row['learning_rate']:>8.0e}{row['steps']:>7}"
              f"{row['test_loss']:>8.3f}{row['bleu']:>7.2f}{row['bleu_beam']:>7.2f}{row['chrf']:>7.2f}"
              f"{row['chrf_beam']:>7.2f}")
    for row in rows:
        for example in row["examples_beam"][:3]:
            print(f"  {row['model']}: {example['source']!r} -> {example['translation']!r} "
                  f"(reference {example['reference']!r})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
