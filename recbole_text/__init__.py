"""recbole_text: text-based and efficient sequential recommenders on RecBole 1.2.1.

``compat`` is imported first so RecBole runs on NumPy 2, pandas 2.x and torch >= 2.6.
"""
from recbole_text import compat  # noqa: F401  (must precede every RecBole import)
from recbole_text.quick_start import run
from recbole_text.registry import get_model, get_trainer

__version__ = "0.1.0"
__all__ = ["run", "get_model", "get_trainer", "__version__"]
