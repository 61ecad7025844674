"""Evaluation tools beyond RecBole's ranking metrics.

``calibration``: is σ(score) a probability? Predicted probability vs observed hit rate by rank bucket,
as a table, a summary (slot-weighted ECE) and a reliability diagram.
"""
from recbole_text.evaluation.calibration import (
    DEFAULT_BUCKETS,
    calibration_summary,
    calibration_table,
    collect_full_scores,
    write_calibration_report,
)

__all__ = [
    "DEFAULT_BUCKETS",
    "calibration_summary",
    "calibration_table",
    "collect_full_scores",
    "write_calibration_report",
]
