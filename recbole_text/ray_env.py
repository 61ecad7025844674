"""Starting (or joining) Ray for sweeps and distributed training: offline, quiet, and able to import this package.

Ray is imported here lazily, only by :mod:`recbole_text.tune` and :mod:`recbole_text.distributed`; a plain
``run()`` never loads it.

* A local cluster binds to the loopback interface (``127.0.0.1``), starts no dashboard and sends no usage
  statistics: nothing leaves the machine. (Ray resolves ``127.0.0.1`` given as the node address to the
  machine's outward address; its local-only mode, ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, keeps everything on
  loopback, gloo's rendezvous included. Ray reads that setting when it is first imported, so
  :func:`init_ray` must run before anything imports Ray.)
* Ray's worker processes start in their own working directories (Tune's trial folders), where this repository
  is not on ``sys.path``; the repository root is put on the workers' ``PYTHONPATH`` so ``recbole_text``
  imports there as it does here. On an existing cluster (``--ray_address``) the package must be installed on,
  or reachable from, every node at the same path.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EXPERIMENT_DIR = "ray_results"  # sweeps and Ray Train runs go to <this>/<name>
LOCAL_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": Ray uses the loopback address for its node


def worker_env(local: bool) -> dict[str, str]:
    """Environment variables for Ray's workers."""
    paths = [str(REPO_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)), "RAY_USAGE_STATS_ENABLED": "0"}
    if local:
        env["GLOO_SOCKET_IFNAME"] = os.environ.get("GLOO_SOCKET_IFNAME", "lo")  # gloo on loopback only
    return env


class RayConnectionError(ConnectionError):
    """The Ray cluster named by ``--ray_address`` could not be joined (reported to CLI users as one line)."""


def init_ray(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None) -> bool:
    """Start a local Ray (``address`` None) or connect to ``address``; reuse a running session.

    Returns True when this call started Ray (the caller then shuts it down when done).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    local = not address
    if local and "ray" not in sys.modules:
        os.environ.setdefault(LOCAL_ONLY, "0")
    import ray

    if ray.is_initialized():
        return False
    options = dict(
        include_dashboard=False,
        log_to_driver=False,  # trial/worker output goes to their log files, not the driver's console
        configure_logging=False,
        runtime_env={"env_vars": worker_env(local)},
    )
    if local:
        # "local": always a new local instance, never one found through RAY_ADDRESS or `ray start`'s marker file
        ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, **options)
    else:
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as e:
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            hint = ""
            if "AuthToken" in f"{e} {e.__cause__ or ''}":
                hint = " (a token-authenticated cluster: set RAY_AUTH_MODE=token and make its token available)"
            raise RayConnectionError(f"could not join the Ray cluster at {address}: "
                                     f"{lines[-1] if lines else type(e).__name__}{hint}") from None
    return True


def shutdown_ray(started: bool) -> None:
    if started:
        import ray

        ray.shutdown()
