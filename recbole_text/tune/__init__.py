"""Ray Tune sweeps through RecBole's trainer and evaluator.

``python run_recbole_text.py --tune --model=gSASRec --dataset=Scientific --search_space=properties/tune/gSASRec.yaml``

* **Search space** (YAML, one setting per line)::

      learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
      hidden_dropout_prob: {uniform: [0.1, 0.5]}
      num_negatives: {choice: [64, 128, 256]}
      hidden_size: {quniform: [32, 128, 32]}     # integers when all three are integers
      n_layers: {grid: [1, 2]}                   # every value, times --num_samples
      MAX_ITEM_LIST_LENGTH: 50                   # a plain value is fixed ({value: ...} for a mapping)

* **Trials** run :func:`~recbole_text.tune.trial.train_trial`: this package's config, dataset and loaders, the model from the registry
  and RecBole's trainer (with safe checkpoints) and evaluator. After every validation the trial calls
  ``tune.report`` with the validation metrics (``valid_ndcg@10``, …) and a checkpoint (latest training state +
  best weights), so the scheduler (ASHA by default, over ``epochs_done``) can stop bad trials early, a crashed
  trial is retried from its last epoch (``max_failures``) and ``--resume`` continues an interrupted sweep.
* **Metric and mode** come from ``valid_metric`` (``max``; ``min`` for RecBole's smaller-is-better metrics
  such as RMSE or LogLoss, or with ``valid_metric_bigger: False``).
* **Resources**: each trial asks Ray for ``cpus_per_trial`` CPUs and ``gpus_per_trial`` GPUs; Ray hands GPUs
  to trials through ``CUDA_VISIBLE_DEVICES``, which nothing here overwrites (``gpu_id`` is cleared).
* **Paths**: the dataset is built once by the driver before any trial starts (``ensure_dataset``);
  ``data_path`` and config files are made absolute, because trials run in their own working directories.
* **Results** (in the experiment folder ``<experiment_dir>/<name>``): ``trials.csv`` and ``trials.md`` (every
  trial with status, retries, error, epochs run and why it stopped), ``best.json`` (best config, its
  validation and test metrics: its best checkpoint evaluated on the test split), ``learning_curves.png`` and
  ``metric_vs_hyperparameters.png``.

Layout: :mod:`~recbole_text.tune.search_space` (YAML → Ray Tune space), :mod:`~recbole_text.tune.trial` (one
trial, built by :func:`recbole_text.job.build_job` like every other job), :mod:`~recbole_text.tune.sweep` (the
driver), :mod:`~recbole_text.tune.report` (tables, ``best.json``, plots), :mod:`~recbole_text.tune.callbacks`.
Ray is imported only inside the functions that need it.
"""
from recbole_text.tune.search_space import (load_search_space, metric_and_mode, num_trials, searched,
                                            to_param_space)
from recbole_text.tune.sweep import make_scheduler, prepare_sweep, tune
from recbole_text.tune.trial import evaluate_best, train_trial, trial_overrides

__all__ = ["evaluate_best", "load_search_space", "make_scheduler", "metric_and_mode", "num_trials", "prepare_sweep",
           "searched", "to_param_space", "train_trial", "trial_overrides", "tune"]
