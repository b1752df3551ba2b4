"""Next-nucleotide pretraining with Lightning: config, data, LightningModule, outputs and the run, one module each.

- :mod:`dnalm.pretrain.config`: :class:`PretrainConfig` (loaded strictly by :mod:`dnalm.config`; no Lightning import).
- :mod:`dnalm.pretrain.data`: windows per optimizer step (:class:`StepBatches`), :class:`PretrainDataModule`.
- :mod:`dnalm.pretrain.module`: :class:`PretrainModule` (loss, optimiser and schedule from :mod:`dnalm.training`).
- :mod:`dnalm.pretrain.outputs`: ``metrics.csv``, ``curves.png``, the exported model folder (:class:`RunOutputs`).
- :mod:`dnalm.pretrain.run`: :func:`pretrain`.

The model stays a plain :class:`~dnalm.models.lm.DNALM`; :class:`PretrainModule` holds the loss, AdamW with
weight-decay groups, the warm-up + cosine schedule and the metrics; :class:`PretrainDataModule` serves windows
from :class:`~dnalm.data.GenomeWindows`. Lightning does all scale-out (devices, nodes, DDP/FSDP, precision); this
is the only package of ``dnalm`` that imports lightning.

Exact resume. Batch ``s`` (0-based optimizer step) is a pure function of (seed, s): its windows are the random
windows ``offset + s*B + j`` (``j < B``, global batch B) of the stage's :class:`GenomeWindows`, split between
ranks by position, and the torch RNG (dropout) is reseeded from (seed, s, rank) before every step. The train
DataLoader is *stateful* in Lightning's sense: its state (the next step) goes into ``last.ckpt`` together with
model, optimizer, scheduler and loop counters, and Lightning's resume path restores it. So killing a run and
resuming from ``last.ckpt`` gives the same weights as an uninterrupted run, and the batches do not depend on the
number of devices.

Lightning checkpoints (``checkpoints/*.ckpt``) are pickles by Lightning's design: load them only through
``dnalm pretrain --resume`` (Lightning's own resume path) and only from runs you made. The exported model
(``model/``: ``config.json`` + ``model.safetensors`` + ``tokenizer.json``) is pickle-free; share that.
"""

from dnalm.utils import lazy_exports

_EXPORTS = {
    "GenomeSpec": "dnalm.pretrain.config", "PretrainConfig": "dnalm.pretrain.config", "Stage": "dnalm.pretrain.config",
    "config_from_dict": "dnalm.pretrain.config", "load_config": "dnalm.pretrain.config",
    "PretrainDataModule": "dnalm.pretrain.data", "StepBatches": "dnalm.pretrain.data", "make_targets": "dnalm.pretrain.data",
    "open_genomes": "dnalm.pretrain.data",
    "PretrainModule": "dnalm.pretrain.module", "score_bases": "dnalm.pretrain.module",
    "RunOutputs": "dnalm.pretrain.outputs", "export_model": "dnalm.pretrain.outputs",
    "build_pretrain_model": "dnalm.pretrain.run", "latest_checkpoint": "dnalm.pretrain.run", "pretrain": "dnalm.pretrain.run",
}
__all__ = [
    "GenomeSpec",
    "PretrainConfig",
    "PretrainDataModule",
    "PretrainModule",
    "RunOutputs",
    "Stage",
    "StepBatches",
    "build_pretrain_model",
    "config_from_dict",
    "export_model",
    "latest_checkpoint",
    "load_config",
    "make_targets",
    "open_genomes",
    "pretrain",
    "score_bases",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
