"""`kerasdl translate RUN_DIR "The cat sat on the mat."`: translate sentences with a trained translation model.

Greedy decoding by default (the edge runner's own loop, so `kerasdl infer` on an export gives the same
words); `--beam-size K` keeps the K most probable partial translations instead.
"""

from __future__ import annotations

import argparse

from kerasdl.commands import check_run_dir, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("translate", help="translate sentences with a trained translator (or seq2seq)")
    parser.add_argument("run_dir", help="a run directory of a translation model (kerasdl train translator)")
    parser.add_argument("sentences", nargs="+", help="source sentences, each one argument (quote it)")
    parser.add_argument("--beam-size", type=positive_int, default=1, help="beam search width (default 1: greedy)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_run_dir(args.run_dir)  # before TensorFlow is imported
    import keras

    from kerasdl.data.translation import TranslationPairs
    from kerasdl.errors import KerasdlError, RunDirError
    from kerasdl.registry import model_spec
    from kerasdl.tasks.translation import translate
    from kerasdl.training.run_dir import RunDirectory

    run_dir = RunDirectory(args.run_dir)
    config = run_dir.read_config()
    spec = model_spec(config["model"])
    if spec.task != "translation":
        raise KerasdlError(f"{run_dir.path} holds a {spec.name} run ({spec.task}); translate needs a translation "
                           "model such as translator")
    state = run_dir.read_data_state()
    if not state or "target_tokenizer" not in state:
        raise RunDirError(f"{run_dir.path} has no saved vocabularies (data_state.json); train the run again")
    data = TranslationPairs.from_state(config["data"], state)  # the vocabularies only: no pairs are read
    model = keras.saving.load_model(run_dir.require_model(), safe_mode=True)
    for translation in translate(model, data, args.sentences, args.beam_size):
        print(translation)
    return 0
