"""The Tune callback behind the sweep's status column (imported only while Ray Tune runs).

It records, in this process, which trials completed, failed or are being retried. The class lives at module
level so the copy Tune restores on ``--resume`` (from its experiment state) is this same class and fills the
same record; :mod:`recbole_text.tune` merges the record into ``trial_events.json`` after the sweep returns
(files written into the experiment folder while Tune runs can be overwritten by Tune's own syncing).
"""
from __future__ import annotations

from pathlib import Path

from ray.tune import Callback

EVENTS: dict[str, str] = {}  # trial folder name → RUNNING | RETRYING | TERMINATED | ERROR


class TrialEvents(Callback):
    @staticmethod
    def _note(trial, status: str) -> None:
        EVENTS[Path(trial.path).name] = status

    def on_trial_start(self, iteration, trials, trial, **info):
        self._note(trial, "RUNNING")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._note(trial, "TERMINATED")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._note(trial, "RETRYING")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._note(trial, "ERROR")
