"""Train spiking classifiers with BPTT and surrogate gradients (experiment 4 of the paper).

One module per concern:

- :mod:`.config`: :class:`TrainConfig`, every option of a run, validated;
- :mod:`.data`: datasets in memory, normalisation and augmentation of a batch
  (:mod:`.augment` holds the image operations);
- :mod:`.encoding`: how an image becomes the ``(T, B, ...)`` input (``direct``, ``rate``,
  ``lif``);
- :mod:`.factory`: the MLP and CNN, and their initialization from the data;
- :mod:`.readout`: logits (``membrane`` or ``counts``) and the per-layer activity probe;
- :mod:`.optim`: Adam/AdamW and the warm-up + cosine schedule;
- :mod:`.loop`: :func:`train` and :func:`evaluate`;
- :mod:`.checkpoint` and :mod:`.metrics`: what a run saves, atomically.
"""

from spikeinit.data import DATASET_NAMES
from spikeinit.experiments.training.checkpoint import (
    CHECKPOINT,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
)
from spikeinit.experiments.training.config import (
    MODELS,
    NORMS,
    OPTIMIZERS,
    PRESETS,
    SCHEDULES,
    TrainConfig,
)
from spikeinit.experiments.training.data import ArrayData, augment_batch, load_data
from spikeinit.experiments.training.encoding import ENCODINGS, RunEncoder, encode
from spikeinit.experiments.training.factory import build_model, initialize_model
from spikeinit.experiments.training.loop import evaluate, train
from spikeinit.experiments.training.metrics import (
    TrainResult,
    metrics_rows,
    rows_to_csv,
    write_outputs,
)
from spikeinit.experiments.training.optim import make_optimizer, make_scheduler
from spikeinit.experiments.training.readout import LOSSES, TrainingProbe, logits, membrane_trace

__all__ = [
    "CHECKPOINT",
    "DATASET_NAMES",
    "ENCODINGS",
    "LOSSES",
    "MODELS",
    "NORMS",
    "OPTIMIZERS",
    "PRESETS",
    "SCHEDULES",
    "TrainingProbe",
    "RunEncoder",
    "ArrayData",
    "TrainConfig",
    "TrainResult",
    "augment_batch",
    "build_model",
    "encode",
    "evaluate",
    "initialize_model",
    "load_checkpoint",
    "load_data",
    "logits",
    "make_optimizer",
    "make_scheduler",
    "membrane_trace",
    "metrics_rows",
    "rows_to_csv",
    "save_checkpoint",
    "seed_everything",
    "train",
    "write_outputs",
]
