"""Recformer (KDD'23) processed-data json → a chronological ``.inter``, Recformer's split as pre-split
``.train/.valid/.test.inter`` files, and ``.itemtext``.

The Recformer folder ``X/`` holds six json objects:

* ``smap.json`` ``{ASIN: item index}`` and ``umap.json`` ``{reviewer id: user index}``;
* ``train.json`` ``{user index (string): [item indices]}``: the user's sequence without its last two items, or
  the whole sequence for a user with fewer than 3 interactions;
* ``val.json`` / ``test.json`` ``{user index: [one item index]}``: the second-to-last / last item;
* ``meta_data.json`` ``{ASIN: {"title", "brand", "category"}}`` (strings, possibly empty).

The output folder ``<name>/`` (tokens everywhere: the reviewer ids of ``umap.json``, the ASINs of ``smap.json``):

``<name>.inter`` (``user_id:token item_id:token timestamp:float``)
    Each user's full sequence ``train + val + test``, users in user-index order, timestamps ``0..n-1``. For
    tools that read one interaction table, and for RecBole's leave-one-out.
``<name>.train.inter``, ``<name>.valid.inter``, ``<name>.test.inter`` (``user_id:token item_id_list:token_seq
item_id:token``, the layout UniSRec's files use)
    Recformer's split, one row per prediction: train = every prefix → next item of the ``train.json``
    sequence (``[s1] → s2, [s1 s2] → s3, ...``, a user's rows in that order, users in user-index order); valid =
    the ``train.json`` sequence → the ``val.json`` item; test = ``train + val`` → the ``test.json`` item. Every
    history keeps only its :data:`MAX_HISTORY` (50) most recent items, as UniSRec's files do.
``<name>.itemtext``
    ``title``, ``brand``, ``category`` of every ``smap.json`` item, in item-index order.

Which split RecBole uses. ``benchmark_filename: [train, valid, test]`` reads the pre-split files: exactly
Recformer's split. ``recbole_text/properties/dataset/Scientific-Recformer.yaml`` sets it, so the dataset named
``Scientific-Recformer`` gets it by default; a folder converted under another name gets it with
``--benchmark_filename="[train,valid,test]"`` (in Python ``config_dict={"benchmark_filename": ["train",
"valid", "test"]}``), and ``--benchmark_filename=~`` goes back to the leave-one-out below. Without it RecBole
splits ``<name>.inter`` leave-one-out in time order (``eval_args: {split: {LS: valid_and_test}, order: TO}``,
this package's default), which keeps at least one training row per user and so differs for one kind of user:

* 4 or more interactions: the same as Recformer's split;
* 3 interactions ``[a, b, c]`` (``train.json`` ``[a]``): Recformer validates on ``[a] → b`` and has no training
  row; leave-one-out **trains** on ``[a] → b`` and has no validation row (test ``[a, b] → c`` in both).
  Scientific-Recformer has 28 such users;
* 2 interactions ``[a, b]``: one training row ``[a] → b`` in both; 1 interaction: no row in either.

The vocabularies under ``benchmark_filename``: RecBole concatenates the three files, filters nothing and maps
``user_id`` over all rows and ``item_id`` together with ``item_id_list`` (this package's config adds the
history field to ``alias_of_item_id`` whenever ``benchmark_filename`` is set), so every item of any history or
target is in the catalogue and ranked. A user with a single interaction is in no row, so RecBole does not know
it (nothing would be trained or evaluated on it anyway; Scientific-Recformer: 1 such user, so 11,040 of its
11,041 users); an item that occurs only in such users' sequences would be missing from the catalogue, which the
converter warns about (none in Scientific-Recformer: all 5,327 items are known). The pre-split histories are up
to 50 items wide, and RecBole's models size their position tables by ``MAX_ITEM_LIST_LENGTH``: keep it at 50 or
more with these files (a shorter window needs the leave-one-out layout). The package's ``sequence`` / ``rss``
training strategies rebuild each user's whole ``train.json`` sequence from the training rows (the first row's
history, one item, then every target, see :func:`recbole_text.data.sequence_data.full_histories`), so even the
sequences longer than 50 items are trained on in full.

Checks (each a ``FileNotFoundError`` or an :class:`AtomicFileError` naming the file, with the line for
malformed json): every file exists and is a json object without repeated keys; ``smap.json`` / ``umap.json`` map
non-empty tokens (no TAB or newline; an ASIN no space either, as the pre-split histories are space-separated
token sequences) to distinct integer indices; the keys of ``train.json`` are ``umap.json``
indices and its values non-empty lists of ``smap.json`` indices; ``val.json`` and ``test.json`` hold the same
users, all in ``train.json``, each with a list of exactly one ``smap.json`` index; a user of ``train.json``
without a ``val.json`` / ``test.json`` entry has fewer than 3 items (else RecBole would evaluate on items that
Recformer trains on); every ``smap.json`` ASIN has a ``meta_data.json`` entry. A missing entry is an error, not an
item without text: Recformer's preprocessing drops items without metadata before it indexes them, so a missing
ASIN means a mismatched meta file (e.g. one keyed by item index instead of ASIN). An empty (or blank) attribute
string means "no such attribute"; keys other than ``title``, ``brand``, ``category`` are ignored. ``meta_data.json``
entries of ASINs outside ``smap.json`` are ignored; ``umap.json`` users without a ``train.json`` entry and
``smap.json`` items in no sequence draw a warning (they have no interactions, so RecBole never sees them), as do
items that occur only in sequences of one interaction (they are in ``<name>.inter`` but in no pre-split row).
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from recbole_text.data.atomic import AtomicFileError, write_atomic_file
from recbole_text.data.converters.common import check_name, progress, write_dataset

TEXT_KEYS = ("title", "brand", "category")
FILES = ("smap.json", "umap.json", "train.json", "val.json", "test.json", "meta_data.json")
MAX_HISTORY = 50  # most recent items a pre-split history keeps, as in UniSRec's files
SPLITS = ("train", "valid", "test")  # <name>.<split>.inter, read with benchmark_filename: [train, valid, test]
SPLIT_HEADER = [("user_id", "token"), ("item_id_list", "token_seq"), ("item_id", "token")]


class _RepeatedKey(Exception):
    """Raised inside ``json.load`` when an object repeats a key (json keeps the last one silently)."""


def convert_recformer(src_dir, out_root, name: str | None = None) -> Path:
    """Convert the Recformer folder ``src_dir`` (the six json files above) into ``<out_root>/<name>/`` holding
    ``<name>.inter``, ``<name>.{train,valid,test}.inter`` and ``<name>.itemtext`` (all or nothing); return that
    folder. ``name`` defaults to the folder's name."""
    src = Path(src_dir)
    if not src.is_dir():
        raise FileNotFoundError(f"Recformer source folder not found: {src}")
    name = check_name(name or src.resolve().name)
    for file in FILES:
        if not (src / file).is_file():
            raise FileNotFoundError(f"missing Recformer file: {src / file}")
    asins = read_index(src / "smap.json", in_sequences=True)  # item index → ASIN
    reviewers = read_index(src / "umap.json")  # user index → reviewer id
    train = read_split(src / "train.json", asins, reviewers.index, one_item=False)
    val = read_split(src / "val.json", asins, train.index, one_item=True)
    test = read_split(src / "test.json", asins, train.index, one_item=True)
    check_users(src, train, val, test)
    inter = join_splits(train, val, test, reviewers, asins)
    rows = split_rows(train, val, test, reviewers, asins)
    texts = read_meta(src / "meta_data.json", asins)
    unused_users = len(reviewers) - len(train)
    if unused_users:
        print(f"warning: {unused_users} user(s) of umap.json have no train.json entry (no interactions)")
    unused_items = len(asins) - inter["item_id"].nunique()
    if unused_items:
        print(f"warning: {unused_items} item(s) of smap.json occur in no sequence; RecBole will not rank them")
    in_rows = inter.groupby("user_id", sort=False)["item_id"].transform("size") >= 2  # users with a pre-split row
    only_single = set(inter["item_id"]) - set(inter["item_id"][in_rows])
    if only_single:
        print(f"warning: {len(only_single)} item(s) occur only in sequences of one interaction, e.g. "
              f"{min(only_single)!r}: they are in no pre-split row, so benchmark_filename runs do not rank them")

    def split_files(folder: Path) -> None:
        for split in SPLITS:
            write_atomic_file(folder / f"{name}.{split}.inter", SPLIT_HEADER,
                              progress(rows[split], f"write {name}.{split}.inter", total=len(rows[split]), unit="row"))

    final = write_dataset(out_root, name, inter, TEXT_KEYS, texts, more_files=split_files)
    print(f"Recformer's split in {name}.{{train,valid,test}}.inter: " + " / ".join(
        f"{len(rows[split]):,} {split}" for split in SPLITS) + ' rows (--benchmark_filename="[train,valid,test]")')
    return final


def load_json(path: Path) -> dict:
    """Read the json object in ``path``; malformed json, a repeated key or another top-level value is an
    :class:`AtomicFileError` naming the file (and the line json reports)."""

    def no_repeats(pairs):
        data = dict(pairs)
        if len(data) != len(pairs):
            seen = set()
            raise _RepeatedKey(next(key for key, _ in pairs if key in seen or seen.add(key)))
        return data

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f, object_pairs_hook=no_repeats)
    except json.JSONDecodeError as e:
        raise AtomicFileError(path, e.lineno, f"malformed JSON: {e.msg} (column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise AtomicFileError(path, None, f"not valid UTF-8 ({e.reason} at byte {e.start})") from None
    except _RepeatedKey as e:
        raise AtomicFileError(path, None, f"key {e.args[0]!r} appears twice in one object") from None
    if not isinstance(data, dict):
        raise AtomicFileError(path, None, f"expected a JSON object {{...}}, found {type(data).__name__}")
    return data


def read_index(path: Path, in_sequences: bool = False) -> pd.Series:
    """``smap.json`` / ``umap.json`` ``{token: index}`` → the tokens as a Series indexed by the int index.
    ``in_sequences``: the tokens go into space-separated ``token_seq`` histories, so they cannot hold a space."""
    data = load_json(path)
    tokens = pd.Series(list(data), dtype=object)
    indices = list(data.values())
    if data and pd.api.types.infer_dtype(indices, skipna=False) != "integer":
        bad = next(token for token, index in data.items() if type(index) is not int)
        raise AtomicFileError(path, None, f"{bad!r}: expected an integer index, found {data[bad]!r}")
    bad = tokens[(tokens.str.strip() == "") | tokens.str.contains("[\t\r\n ]" if in_sequences else "[\t\r\n]")]
    if len(bad):
        holds = "TAB/newline/space" if in_sequences else "TAB/newline"
        raise AtomicFileError(path, None, f"{bad.iloc[0]!r} cannot be a token (empty, or holds {holds})")
    tokens.index = pd.Index(np.asarray(indices, dtype=np.int64))
    repeated = tokens.index[tokens.index.duplicated()]
    if len(repeated):
        raise AtomicFileError(path, None, f"index {repeated[0]} is given to more than one token")
    return tokens


def read_split(path: Path, asins: pd.Series, users: pd.Index, one_item: bool) -> pd.Series:
    """``train.json`` / ``val.json`` / ``test.json`` ``{user index: [item indices]}`` → the lists as a Series
    indexed by the int user index, in user-index order. ``users`` are the allowed user indices (those of
    ``umap.json`` for train, of ``train.json`` for val/test); ``one_item`` requires lists of exactly one item."""
    data = load_json(path)
    allowed = set(users.astype(str))
    unknown = [key for key in data if key not in allowed]
    if unknown:
        source = "umap.json" if path.name == "train.json" else "train.json"
        raise AtomicFileError(path, None, f"user index {unknown[0]!r} is not in {source}")
    lists = pd.Series(list(data.values()), index=pd.Index(np.asarray(list(data), dtype=np.int64)), dtype=object)
    want = "a list of exactly one item index" if one_item else "a non-empty list of item indices"
    for user, items in lists.items():  # one check per user
        if not isinstance(items, list) or not items or (one_item and len(items) != 1):
            raise AtomicFileError(path, None, f"user {user}: expected {want}, found {items!r}")
    flat = list(itertools.chain.from_iterable(lists))
    if pd.api.types.infer_dtype(flat, skipna=False) != "integer":
        bad = next(i for i, item in enumerate(flat) if type(item) is not int)
        raise AtomicFileError(path, None, f"user {_owner(lists, bad)}: item {flat[bad]!r} is not an integer index")
    unknown_items = ~pd.Index(np.asarray(flat, dtype=np.int64)).isin(asins.index)
    if unknown_items.any():
        bad = int(np.argmax(unknown_items))
        raise AtomicFileError(path, None, f"user {_owner(lists, bad)}: item index {flat[bad]} is not in smap.json")
    return lists.sort_index()


def _owner(lists: pd.Series, position: int) -> int:
    """The user whose list holds the ``position``-th item of the concatenated lists."""
    ends = np.cumsum([len(items) for items in lists])
    return int(lists.index[np.searchsorted(ends, position, side="right")])


def check_users(src: Path, train: pd.Series, val: pd.Series, test: pd.Series) -> None:
    """``train.json`` has users; ``val.json`` and ``test.json`` hold the same users; a ``train.json`` user
    without them has fewer than 3 items."""
    if train.empty:
        raise AtomicFileError(src / "train.json", None, "no users: nothing to convert")
    for this, other, file, other_file in ((val, test, "val.json", "test.json"), (test, val, "test.json", "val.json")):
        alone = this.index.difference(other.index)
        if len(alone):
            raise AtomicFileError(src / file, None, f"user {alone[0]} has no entry in {other_file}")
    lengths = train.map(len)
    long_alone = lengths[~train.index.isin(val.index) & (lengths >= 3)]
    if len(long_alone):
        raise AtomicFileError(
            src / "train.json", None,
            f"user {long_alone.index[0]} has {long_alone.iloc[0]} items but no val.json/test.json entry; "
            "Recformer keeps only users with fewer than 3 interactions wholly in train",
        )


def join_splits(train: pd.Series, val: pd.Series, test: pd.Series, reviewers: pd.Series, asins: pd.Series
                ) -> pd.DataFrame:
    """Each user's ``train + val + test`` → the ``.inter`` frame ``user_id, item_id, timestamp`` (raw tokens,
    timestamps = positions ``0..n-1``), users in the order of ``train`` (user-index order)."""
    tails = {user: v + t for user, v, t in zip(val.index, val, test.loc[val.index])}  # user → [val, test item]
    sequences = [items + tails.get(user, []) for user, items in train.items()]  # one concatenation per user
    counts = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    items = np.fromiter(itertools.chain.from_iterable(sequences), dtype=np.int64, count=int(counts.sum()))
    return pd.DataFrame({
        "user_id": np.repeat(reviewers.loc[train.index].to_numpy(), counts),
        "item_id": asins.loc[items].to_numpy(),
        "timestamp": np.arange(len(items)) - np.repeat(np.cumsum(counts) - counts, counts),
    })


def split_rows(train: pd.Series, val: pd.Series, test: pd.Series, reviewers: pd.Series, asins: pd.Series,
               max_history: int = MAX_HISTORY) -> dict[str, list[tuple[str, str, str]]]:
    """Recformer's split as pre-split rows ``(user token, space-separated history tokens, target token)``:
    ``train`` = every prefix → next item of each ``train.json`` sequence (in sequence order), ``valid`` = the
    ``train.json`` sequence → the ``val.json`` item, ``test`` = ``train + val`` → the ``test.json`` item; users in
    the order of ``train`` (user-index order), each history cut to its ``max_history`` most recent items."""
    token, reviewer = asins.to_dict(), reviewers.to_dict()  # item index → ASIN, user index → reviewer id
    held_out = {user: (token[v[0]], token[t[0]]) for user, v, t in zip(val.index, val, test.loc[val.index])}
    rows: dict[str, list[tuple[str, str, str]]] = {split: [] for split in SPLITS}
    for user, items in train.items():
        who, seq = reviewer[user], [token[i] for i in items]
        rows["train"].extend((who, " ".join(seq[max(0, k - max_history):k]), seq[k]) for k in range(1, len(seq)))
        if user in held_out:  # val.json and test.json hold the same users (check_users)
            valid_item, test_item = held_out[user]
            rows["valid"].append((who, " ".join(seq[-max_history:]), valid_item))
            rows["test"].append((who, " ".join((seq + [valid_item])[-max_history:]), test_item))
    return rows


def read_meta(path: Path, asins: pd.Series) -> list[tuple[str, dict[str, str]]]:
    """``meta_data.json`` → ``[(ASIN, {title, brand, category} without empty strings)]`` in item-index order,
    one per ``smap.json`` item; an ASIN without an entry or a non-string attribute is an error."""
    meta = load_json(path)
    missing = [asin for asin in asins if asin not in meta]
    if missing:
        raise AtomicFileError(
            path, None, f"{len(missing)} ASIN(s) of smap.json have no entry, e.g. {missing[0]!r} "
            "(meta_data.json must be keyed by ASIN, as smap.json is)",
        )
    out = []
    for asin in asins.sort_index():
        attrs = meta[asin]
        if not isinstance(attrs, dict):
            raise AtomicFileError(path, None, f"{asin!r}: expected an object of attributes, found {attrs!r}")
        for key in TEXT_KEYS:
            if not isinstance(attrs.get(key, ""), str):
                raise AtomicFileError(path, None, f"{asin!r}: {key!r} is not a string: {attrs[key]!r}")
        out.append((asin, {key: attrs[key] for key in TEXT_KEYS if attrs.get(key, "").strip()}))
    return out
