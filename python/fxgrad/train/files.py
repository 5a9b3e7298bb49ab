"""The names of the files a run folder holds (one definition, used by every writer and reader)."""

CHECKPOINT = "checkpoint.pt"  # the latest state: `fxgrad train --resume` continues it
BEST = "best.pt"  # the epoch with the lowest validation loss (see Trainer.best_by)
LOCK = "train.lock"  # held while a trainer writes the folder
STATIC = "static.json"  # fit_static's setting
LOG = "log.csv"  # one row per train.log_every steps and per epoch
FAULTS = "faults.jsonl"  # one JSON line per plugin fault: the reproducer
PLUGIN_LOG = "plugins.log"  # what plugins in isolated workers printed
CONFIG = "config.yaml"  # the resolved config the run was started with
