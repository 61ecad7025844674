"""A seeded synthetic dataset shaped like MovieLens-1M, in this package's atomic format.

    python benchmarks/synthetic_dataset.py --out dataset/data --name synthetic-1M

writes ``<out>/<name>/<name>.inter`` (``user_id:token item_id:token timestamp:float``) and ``<name>.itemtext``
(a title and a genre per item). Defaults: 6,040 users, 3,416 items, about 165 interactions per user (≈ 1M in
all; per-user lengths are log-normal, at least ``min_length``), so memory and time figures are comparable with
ML-1M's. It has structure a sequential model can learn:

* popularity skew: background items are drawn from a Zipf-like law (``P(rank r) ∝ r^−popularity_exponent``);
* a sequential pattern: every item has ``successors`` fixed follow-up items, and with probability
  ``follow_prob`` the next item is one of the previous item's successors (the first successor most often);
* genres: an item's successors mostly share its genre, and its title names that genre.

The same arguments give the same files (one ``numpy`` generator seeded with ``seed``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GENRES = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
WORDS = ("Night", "River", "Return", "Garden", "Shadow", "Summer", "Empire", "Letter", "Storm", "Island", "Secret",
         "City", "Winter", "Journey", "Stranger", "Dream", "Fire", "Road", "House", "Heart")


def item_sequences(users: int, items: int, mean_length: float, rng: np.random.Generator, *, min_length: int = 20,
                   successors: int = 4, follow_prob: float = 0.6, popularity_exponent: float = 1.0,
                   same_genre: float = 0.8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Item ids 1..items per user → ``(lengths (users,), flat (total,), genre (items + 1,))``.

    User ``u``'s sequence is ``flat[offsets[u]:offsets[u + 1]]`` with ``offsets = [0, cumsum(lengths)]``.
    Vectorised over users (one step per position of the longest sequence).
    """
    sigma = 0.9
    lengths = np.maximum(rng.lognormal(np.log(mean_length) - sigma ** 2 / 2, sigma, users).round(), min_length)
    lengths = lengths.astype(np.int64)
    genre = np.r_[0, rng.integers(0, len(GENRES), items)]  # genre[0] is padding
    popularity = 1.0 / np.arange(1, items + 1) ** popularity_exponent
    popularity /= popularity.sum()
    by_rank = rng.permutation(items) + 1  # item id of each popularity rank
    # successors: mostly popular items of the same genre
    follow = np.empty((items + 1, successors), dtype=np.int64)
    members = [by_rank[genre[by_rank] == g] for g in range(len(GENRES))]
    weights = [popularity[genre[by_rank] == g] / popularity[genre[by_rank] == g].sum() for g in range(len(GENRES))]
    for g in range(len(GENRES)):  # one vectorised draw per genre
        own = np.flatnonzero(genre == g)
        if len(own) == 0:
            continue
        inside = rng.choice(members[g], size=(len(own), successors), p=weights[g])
        outside = rng.choice(by_rank, size=(len(own), successors), p=popularity)
        follow[own] = np.where(rng.random((len(own), successors)) < same_genre, inside, outside)
    follow[0] = follow[1]
    successor_p = 0.5 ** np.arange(1, successors + 1)
    successor_p /= successor_p.sum()

    longest = int(lengths.max())
    steps = np.zeros((users, longest), dtype=np.int64)
    steps[:, 0] = rng.choice(by_rank, size=users, p=popularity)
    for t in range(1, longest):
        background = rng.choice(by_rank, size=users, p=popularity)
        pick = rng.choice(successors, size=users, p=successor_p)
        followed = follow[steps[:, t - 1], pick]
        steps[:, t] = np.where(rng.random(users) < follow_prob, followed, background)
    flat = steps[np.arange(longest)[None, :] < lengths[:, None]]  # row-major: user by user, in order
    return lengths, flat, genre


def item_title(item: int, genre: int, rng: np.random.Generator) -> str:
    first, second = rng.choice(len(WORDS), size=2, replace=False)
    return f"The {WORDS[first]} {WORDS[second]} ({GENRES[genre]} #{item})"


def write_dataset(out: Path, name: str = "synthetic-1M", users: int = 6040, items: int = 3416,
                  mean_length: float = 165.0, seed: int = 0, **pattern) -> Path:
    """Write ``out/name/name.inter`` and ``name.itemtext``; return the dataset folder."""
    from recbole_text.data.atomic import write_atomic_file, write_item_text

    rng = np.random.default_rng(seed)
    lengths, flat, genre = item_sequences(users, items, mean_length, rng, **pattern)
    user_of = np.repeat(np.arange(1, users + 1), lengths)
    # timestamps: each user starts somewhere in a year, then one interaction every few minutes to days
    start = rng.integers(956_700_000, 956_700_000 + 365 * 86_400, users)
    gaps = rng.exponential(3_600.0, len(flat)).astype(np.int64) + 1
    first = np.r_[0, np.cumsum(lengths)[:-1]]
    gaps[first] = 0
    since_start = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[first], lengths)
    times = np.repeat(start, lengths) + since_start
    folder = Path(out) / name
    rows = zip((f"u{u}" for u in user_of.tolist()), (f"i{i}" for i in flat.tolist()), times.tolist())
    write_atomic_file(folder / f"{name}.inter", [("user_id", "token"), ("item_id", "token"), ("timestamp", "float")],
                      rows)
    texts = ((f"i{i}", {"title": item_title(i, int(genre[i]), rng), "genre": GENRES[genre[i]]})
             for i in range(1, items + 1))
    write_item_text(folder / f"{name}.itemtext", ["title", "genre"], texts)
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "dataset" / "data"), help="data_path to write into")
    parser.add_argument("--name", default="synthetic-1M")
    parser.add_argument("--users", type=int, default=6040)
    parser.add_argument("--items", type=int, default=3416)
    parser.add_argument("--mean_length", type=float, default=165.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    folder = write_dataset(Path(args.out), args.name, args.users, args.items, args.mean_length, args.seed)
    print(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
