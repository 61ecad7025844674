"""A randomly initialised Longformer saved as a Hugging Face checkpoint, with a tokenizer copied beside it.

    python benchmarks/random_longformer.py OUT_FOLDER                 # longformer-base-4096's shape (149 M weights)
    python benchmarks/random_longformer.py OUT_FOLDER --layers 2 --hidden 32 --heads 2 --intermediate 64

Recformer's paper profile runs ``allenai/longformer-base-4096``, whose weights are not on this project's machines
(and a lent GPU machine reaches no hub). A random checkpoint of the same shape times the paper profile's steps (the
cost of a step does not depend on the weights' values) and, at a tiny size, tests the native-Longformer path of
``plm_name``. The tokenizer is the packaged MiniLM's (a BERT WordPiece, not Longformer's byte-level BPE): shapes
and code paths as with the real backbone, its accuracy not.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # recbole_text from this checkout when run as a script


def save_random_longformer(folder, *, layers: int = 12, hidden: int = 768, heads: int = 12, intermediate: int = 3072,
                           positions: int = 4098, window: int = 512, seed: int = 0) -> Path:
    """Save a random ``LongformerModel`` of the given sizes (defaults: longformer-base-4096's) to ``folder``, with
    Longformer's special-token layout (pad 1, so token positions start at 2) and one token type, as released."""
    import torch
    from transformers import AutoTokenizer, LongformerConfig, LongformerModel

    from recbole_text.text.encoder import packaged_encoder_path

    tokenizer = AutoTokenizer.from_pretrained(str(packaged_encoder_path()), local_files_only=True)
    config = LongformerConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                              num_attention_heads=heads, intermediate_size=intermediate,
                              max_position_embeddings=positions, attention_window=[window] * layers, pad_token_id=1,
                              bos_token_id=0, eos_token_id=2, type_vocab_size=1)
    torch.manual_seed(seed)
    model = LongformerModel(config, add_pooling_layer=False)
    folder = Path(folder)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--intermediate", type=int, default=3072)
    args = parser.parse_args(argv)
    return save_random_longformer(args.folder, layers=args.layers, hidden=args.hidden, heads=args.heads,
                                  intermediate=args.intermediate)


if __name__ == "__main__":
    print(main())
