"""tmkt.train: config, methods, the training loop, checkpoints, evaluation, experiments."""

from tmkt.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tmkt.train.config import Config, ConfigError, apply_overrides, load_config, save_config
from tmkt.train.evaluate import evaluate
from tmkt.train.experiment import run_experiment
from tmkt.train.loop import RunResult, Trainer, TrainingDiverged, train
from tmkt.train.methods import METHODS, Batch, Method, build_method

__all__ = [
    "METHODS",
    "Batch",
    "CheckpointError",
    "Config",
    "ConfigError",
    "Method",
    "RunResult",
    "Trainer",
    "TrainingDiverged",
    "apply_overrides",
    "build_method",
    "evaluate",
    "load_checkpoint",
    "load_config",
    "run_experiment",
    "save_checkpoint",
    "save_config",
    "train",
]
