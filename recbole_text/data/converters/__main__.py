"""``python -m recbole_text.data.converters {unisrec,recformer,amazon2018,ml100k} ...`` — build a dataset folder.

Errors in the inputs (malformed files, missing files, bad arguments) print one ``error: ...`` line on stderr
and exit with status 2.
"""
from __future__ import annotations

import argparse
import sys

from recbole_text.data.atomic import AtomicFileError
from recbole_text.data.converters import (
    DEFAULT_OUT, convert_amazon2018, convert_ml100k, convert_recformer, convert_unisrec,
)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", default=DEFAULT_OUT, help=f"output root; the dataset goes to OUT/NAME (default {DEFAULT_OUT})")
    parser = argparse.ArgumentParser(
        prog="python -m recbole_text.data.converters",
        description="Convert a dataset into NAME.inter + NAME.itemtext (text-attribute atomic format).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    unisrec = sub.add_parser("unisrec", parents=[common], help="UniSRec layout (X.train/valid/test.inter, X.text, ...)")
    unisrec.add_argument("--src", required=True, help="folder holding X.train.inter, X.text, X.item2index, ...")
    unisrec.add_argument("--name", default=None, help="dataset name (default: the file prefix X)")

    recformer = sub.add_parser("recformer", parents=[common], help="Recformer json (smap, umap, train, val, ...)")
    recformer.add_argument("--src", required=True, help="folder holding smap.json, umap.json, train.json, ...")
    recformer.add_argument("--name", default=None, help="dataset name (default: the folder's name)")

    amazon = sub.add_parser("amazon2018", parents=[common], help="Amazon Review Data (2018) raw files")
    amazon.add_argument("--meta", required=True, help="meta_<Category>.json.gz")
    source = amazon.add_mutually_exclusive_group(required=True)
    source.add_argument("--reviews", help="<Category>_5.json.gz (reviewerID, asin, unixReviewTime)")
    source.add_argument("--ratings", help="<Category>.csv without header: item,user,rating,timestamp")
    amazon.add_argument("--name", required=True, help="dataset name, e.g. Scientific")
    amazon.add_argument("--min_core", type=int, default=5, help="k of the iterative k-core filter (default 5)")

    ml100k = sub.add_parser("ml100k", parents=[common], help="MovieLens-100k bundled with recbole")
    ml100k.add_argument("--name", default="ml-100k-text", help="dataset name (default ml-100k-text)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "unisrec":
            convert_unisrec(args.src, args.out, name=args.name)
        elif args.command == "recformer":
            convert_recformer(args.src, args.out, name=args.name)
        elif args.command == "amazon2018":
            convert_amazon2018(args.meta, args.reviews or args.ratings, args.out, args.name, min_core=args.min_core)
        else:
            convert_ml100k(args.out, name=args.name)
    except (AtomicFileError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
