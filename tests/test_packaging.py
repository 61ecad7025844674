"""A wheel built from the repo carries the package's YAML and, installed elsewhere and run from another folder,
resolves the same config and trains to the same metrics as the checkout."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest

from conftest import FAST, REPO, write_tiny_dataset

SHIPPED_YAML = [
    "recbole_text/properties/overall.yaml",
    "recbole_text/properties/model/gSASRec.yaml",
    "recbole_text/properties/model/SeqSASRec.yaml",
    "recbole_text/properties/model/SeqGRU4Rec.yaml",
    "recbole_text/properties/model/UniSRec.yaml",
    "recbole_text/properties/model/Recformer.yaml",
    "recbole_text/properties/dataset/ml-100k-text.yaml",
    "recbole_text/properties/dataset/Scientific.yaml",
    "recbole_text/properties/dataset/Scientific-Recformer.yaml",
    "recbole_text/properties/tune/gSASRec.yaml",
    "recbole_text/properties/tune/UniSRec.yaml",
]

PROBE = """
import json, sys
import recbole_text
from recbole_text.compat import plain_config
from recbole_text.config import TextConfig
config = plain_config(TextConfig("gSASRec", "tiny", config_dict=json.loads(sys.argv[1])))
result = recbole_text.run("gSASRec", "tiny", config_dict=json.loads(sys.argv[1]))
print(json.dumps({"file": recbole_text.__file__, "config": config, "test": result["test_result"]}))
"""


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory):
    """The wheel of this checkout, and a folder it is installed into (no dependencies: they are shared)."""
    root = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(root / "dist"), str(REPO)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (root / "dist").glob("recbole_text-*.whl")
    site = root / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                                str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-2000:]
    return wheel, site


def test_the_wheel_ships_the_yaml(installed_wheel):
    wheel, _ = installed_wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in SHIPPED_YAML if name not in names]
    assert missing == []


def _probe(python_path, cwd, overrides) -> dict:
    env = {**os.environ, "PYTHONPATH": str(python_path)}
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(overrides)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_installed_wheel_resolves_the_same_config_and_metrics_from_another_folder(installed_wheel, tmp_path):
    _, site = installed_wheel
    write_tiny_dataset(tmp_path / "data")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    overrides = {**FAST, "data_path": str(tmp_path / "data"), "num_negatives": 8, "epochs": 1,
                 "checkpoint_dir": str(tmp_path / "saved")}
    from_wheel = _probe(site, elsewhere, overrides)
    from_checkout = _probe(REPO, REPO, overrides)
    assert from_wheel["file"].startswith(str(site))
    assert from_checkout["file"].startswith(str(REPO))
    assert from_wheel["config"]["loss_type"] == "gBCE" and from_wheel["config"]["item_bias"] is True
    assert from_wheel["config"] == from_checkout["config"]
    assert from_wheel["test"] == from_checkout["test"]
