"""Contextual embeddings: "bass" (fish, instrument) and "apple" (fruit, company) in a pretrained BERT's encoder.

    python scripts/contextual_embeddings.py runs/bert/bert-mini

For each word, the encoder's vector at the word in three sentences of each sense; the table gives the mean
cosine of the vectors within a sense and across the two. A static embedding would give 1.0 everywhere: one
vector per word. Contextual vectors separate the senses when the within-sense cosines beat the across one.
"""

from __future__ import annotations

import argparse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a bert-mini run (kerasdl train bert-mini, or scripts/bert_pretraining.py)")
    args = parser.parse_args()

    import keras

    from kerasdl.evaluation.contextual_embeddings import SENSES, sense_similarities
    from kerasdl.evaluation.table import format_table
    from kerasdl.models.bert import ENCODER
    from kerasdl.training.run_dir import RunDirectory

    run = RunDirectory(args.run_dir)
    encoder = keras.saving.load_model(run.require_model()).get_layer(ENCODER)
    tokenizer = run.read_data_state()["tokenizer"]
    for word, senses in SENSES.items():
        for sense, sentences in senses.items():
            print(f"{word} ({sense}): " + " | ".join(sentences))
    print(format_table(sense_similarities(encoder, tokenizer)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
