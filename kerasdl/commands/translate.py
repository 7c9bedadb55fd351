"""`kerasdl translate RUN_DIR "The cat sat on the mat."`: translate sentences with a trained translation model.

Greedy decoding by default (the edge runner's own loop, so `kerasdl infer` on an export gives the same
words); `--beam-size K` keeps the K most probable partial translations instead.
"""

from __future__ import annotations

import argparse

from kerasdl.commands import load_text_run, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("translate", help="translate sentences with a trained translator (or seq2seq)")
    parser.add_argument("run_dir", help="a run directory of a translation model (kerasdl train translator)")
    parser.add_argument("sentences", nargs="+", help="source sentences, each one argument (quote it)")
    parser.add_argument("--beam-size", type=positive_int, default=1, help="beam search width (default 1: greedy)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config, state, model = load_text_run(args.run_dir, "translation", "translate needs a translation model such as "
                                         "translator", "target_tokenizer")
    from kerasdl.data.translation import TranslationPairs
    from kerasdl.tasks.translation import translate

    data = TranslationPairs.from_state(config["data"], state)  # the vocabularies only: no pairs are read
    for translation in translate(model, data, args.sentences, args.beam_size):
        print(translation)
    return 0
