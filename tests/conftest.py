"""Shared fixtures: tiny synthetic text datasets and the location of the real benchmark data."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_configure(config):
    """pytest resets warning filters around every test, so the known library warnings that
    ``recbole_text.compat`` silences at import are silenced here too: the same list, exactly those."""
    from recbole_text import compat

    for category, message, module in compat.KNOWN_WARNINGS:
        config.addinivalue_line("filterwarnings", f"ignore:{message}:{category.__name__}:{module}")

REPO = Path(__file__).resolve().parents[1]
SCIENTIFIC_SRC = REPO.parent / "shared" / "data" / "Scientific"

# Settings that make RecBole's models train in seconds on tiny data (no progress bars in test logs).
FAST = {
    "show_progress": False,
    "hidden_size": 16,
    "inner_size": 32,
    "n_layers": 1,
    "n_heads": 1,
    "embedding_size": 16,
    "MAX_ITEM_LIST_LENGTH": 10,
    "train_batch_size": 256,
    "eval_batch_size": 256,
    "epochs": 1,
    "state": "WARNING",
}
FAST_ARGS = [f"--{k}={v}" for k, v in FAST.items()]


def write_tiny_dataset(root: Path, name: str = "tiny", users: int = 60, items: int = 60, length: int = 12) -> Path:
    """A chronological dataset with a learnable pattern (user u sees items u, u+1, u+2, ... mod ``items``)
    and an ``.itemtext`` where item 1 has no text and item 2's title holds a TAB, a newline and a quote."""
    from recbole_text.data.atomic import write_atomic_file, write_item_text

    folder = root / name
    rows = []
    for user in range(users):
        for step in range(length):
            item = (user + step) % items + 1
            rows.append((f"u{user}", f"i{item}", user * 1000 + step))
    write_atomic_file(folder / f"{name}.inter",
                      [("user_id", "token"), ("item_id", "token"), ("timestamp", "float")], rows)
    texts = []
    for item in range(1, items + 1):
        if item == 1:
            continue
        title = 'Tab\there, "quoted"\nsecond line' if item == 2 else f"Item number {item}"
        texts.append((f"i{item}", {"title": title, "brand": f"Brand {item % 3}"}))
    write_item_text(folder / f"{name}.itemtext", ["title", "brand"], texts)
    return folder


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    """``data_path`` holding the dataset ``tiny``."""
    write_tiny_dataset(tmp_path)
    return tmp_path


@pytest.fixture
def in_tmp_cwd(tmp_path, monkeypatch):
    """Run with the working directory in tmp (RecBole writes log/ and saved/ relative to it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def scientific_src() -> Path:
    if not (SCIENTIFIC_SRC / "Scientific.text").is_file():
        pytest.skip(f"the shared Scientific data is not at {SCIENTIFIC_SRC}")
    return SCIENTIFIC_SRC


@pytest.fixture(scope="module")
def text_data(tmp_path_factory):
    """Three tiny domains ``a``, ``b``, ``c`` (40, 30 and 50 items) and a tiny random BERT as the text encoder:
    ``(data_path, bert folder)``."""
    from test_text_encoder import save_tiny_bert

    root = tmp_path_factory.mktemp("text_domains")
    for name, items in (("a", 40), ("b", 30), ("c", 50)):
        write_tiny_dataset(root, name, users=40, items=items, length=10)
    return root, save_tiny_bert(root / "bert", seed=0)


def run_cli(*args, cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    """``run_recbole_text.py *args`` in a fresh process from ``cwd``, output captured."""
    return subprocess.run([sys.executable, str(REPO / "run_recbole_text.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def cli_run_record(model: str, cwd: Path, *settings: str, timeout: int = 900) -> dict:
    """Train ``model`` on the embedded ml-100k-text (built under ``cwd/data``) through the CLI; it must succeed
    and print its test metrics. Returns the run record (``--result_file``)."""
    result_file = cwd / f"{model}.json"
    done = run_cli(f"--model={model}", "--dataset=ml-100k-text", f"--data_path={cwd / 'data'}",
                   "--show_progress=False", f"--result_file={result_file}", *settings, cwd=cwd, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "test result" in done.stdout + done.stderr
    return json.loads(result_file.read_text())
