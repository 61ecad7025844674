"""Train and evaluate a recommender the RecBole way: ``python run_recbole_text.py --model=SASRec --dataset=Scientific``.

See ``python run_recbole_text.py --help``.
"""
import sys

from recbole_text.cli import main

if __name__ == "__main__":
    sys.exit(main())
