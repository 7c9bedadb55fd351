"""`kerasdl generate RUN_DIR --prompt TEXT`: continue a prompt with a trained language model (char-lstm, gpt...).

Sampling is the edge runner's own (`kerasdl.edge.runner.generate_text`) over the Keras model's single step,
so `kerasdl infer model.tflite --prompt ...` on an export gives the same tokens for the same seed.
"""

from __future__ import annotations

import argparse

from kerasdl.commands import _checked, load_text_run, non_negative_float, non_negative_int

probability = _checked(float, lambda value: 0 < value <= 1, "a number in (0, 1]")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help="continue a prompt with a trained language model (char-lstm...)")
    parser.add_argument("run_dir", help="a run directory of a language model (kerasdl train char-lstm)")
    parser.add_argument("--prompt", required=True, help="the text to continue (tokens of the run's vocabulary)")
    parser.add_argument("--length", type=non_negative_int, default=300, help="tokens to generate (default 300)")
    parser.add_argument(
        "--temperature", type=non_negative_float, default=1.0,
        help="divides the logits before sampling: below 1 safer, above 1 wilder, 0 greedy (default 1)",
    )
    parser.add_argument("--top-k", type=non_negative_int, default=0, help="sample among the k likeliest (0: all)")
    parser.add_argument(
        "--top-p", type=probability, default=1.0,
        help="nucleus sampling: among the likeliest tokens that hold this much probability (default 1: all)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same text")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    _, state, model = load_text_run(args.run_dir, "language-modelling", "generate needs a language model such as "
                                    "char-lstm or gpt", "tokenizer")
    from kerasdl.edge.runner import RunnerError
    from kerasdl.errors import KerasdlError
    from kerasdl.tasks.language_modelling import generate

    try:
        print(generate(model, state["tokenizer"], args.prompt, args.length, args.temperature, args.top_k, args.seed,
                       args.top_p))
    except RunnerError as err:
        raise KerasdlError(str(err)) from err
    return 0
