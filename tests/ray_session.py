"""One local Ray session (loopback only, 2 CPUs) shared by the tests that need Ray."""
from __future__ import annotations

import os

import pytest

# Ray reads this once, when first imported (some tests import it before the session starts): a local
# cluster on the loopback address only (see recbole_text.ray_env).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture(scope="session")
def ray_session():
    from recbole_text.ray_env import init_ray, shutdown_ray

    started = init_ray(num_cpus=2)
    yield
    shutdown_ray(started)
