"""`kerasdl neighbours RUN WORD... [--top-k K]` and `--analogy A B C`: query a word2vec run's vectors."""

from __future__ import annotations

import argparse

from kerasdl.commands import check_run_dir, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "neighbours", help="nearest words of a word2vec run (cosine), or an analogy: A is to B as C is to ?"
    )
    parser.add_argument("run_dir", help="a finished word2vec run directory")
    parser.add_argument("words", nargs="*", metavar="WORD", help="words whose nearest neighbours to list")
    parser.add_argument("--analogy", nargs=3, metavar=("A", "B", "C"), help="the words nearest B - A + C")
    parser.add_argument("--top-k", type=positive_int, default=10, help="words to list (default 10)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kerasdl.errors import KerasdlError

    if not args.words and not args.analogy:
        raise KerasdlError("give at least one WORD, or --analogy A B C")
    check_run_dir(args.run_dir)  # before TensorFlow is imported
    from kerasdl.tasks.word_embedding import WordVectors

    words = WordVectors.from_run(args.run_dir)
    queries = {word: words.neighbours(word, args.top_k) for word in args.words}
    if args.analogy:
        a, b, c = args.analogy
        queries[f"{a} : {b} :: {c} : ?"] = words.analogy(a, b, c, args.top_k)
    for query, found in queries.items():
        print(f"{query}: " + ", ".join(f"{n['word']} ({n['cosine']:.3f})" for n in found))
    return 0
