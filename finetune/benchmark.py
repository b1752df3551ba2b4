"""Benchmark runner: for every task of a suite, the fine-tuned model beside a frozen-embedding probe and a
k-mer baseline, written as ``results.csv``, ``results.md`` and ``results.png``.

A suite is a built-in name (``gue``, ``genomic-benchmarks``, ``bend``: tasks discovered in the data folder)
or a YAML file holding a :class:`BenchmarkConfig` (which may list its own task specs). Every method sees the
same (possibly subsampled) splits; subsampling is stated in ``results.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dnalm.config import from_dict, load_config
from dnalm.errors import ConfigError, DnalmError
from finetune.config import FinetuneConfig
from finetune.tasks import SUITES, Task, TaskSpec, discover_suite, load_task, parse_task_spec, select_tasks


@dataclass
class BenchmarkConfig:
    """What a benchmark runs (a suite YAML file is this dataclass; ``--set key=value`` overrides fields)."""

    suite: str = ""  # gue | genomic-benchmarks | bend (tasks found in `data`); "" = only the specs in `tasks`
    data: str = ""  # folder of the suite's data (--data); relative task paths are relative to it
    tasks: Any = field(default_factory=list)  # task names to run (all when empty), or {name: TASK SPEC}
    task_options: dict = field(default_factory=dict)  # {task: {TaskSpec key: value}} e.g. genomes of a GB task
    poolings: list[str] = field(default_factory=lambda: ["mean"])  # one fine-tuning run per pooling
    finetune: dict = field(default_factory=dict)  # FinetuneConfig fields for every task
    task_finetune: dict = field(default_factory=dict)  # {task: {FinetuneConfig field: value}} per-task changes
    run_finetune: bool = True  # fine-tune the model
    probe: bool = True  # frozen mean-pooled embedding + logistic/ridge probe
    probe_pooling: str = "mean"  # pooling of the probe's embeddings
    probe_grid: list[float] = field(default_factory=list)  # probe penalties (empty = default)
    probe_max_train: int = 0  # fit the probe on at most this many train rows (0 = the same train split as the rest)
    kmer: bool = True  # k-mer spectrum + logistic/ridge baseline
    kmer_k: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6])  # k values of the spectrum
    kmer_grid: list[float] = field(default_factory=list)  # k-mer penalties (empty = 1e-3..100 / ridge default)
    kmer_full_train: bool = True  # also fit the k-mer baseline on the full train split when train was subsampled
    gc: bool = False  # GC-content-only baseline (one feature + logistic/ridge): what base composition alone explains
    save_models: bool = False  # keep each fine-tuned model under OUT/TASK/finetune_POOLING/model
    workers: int = 1  # run (task, method) jobs in this many processes, one torch thread each
    progress_bar: bool = True  # progress bars
    seed: int = 0  # seed of subsampling, training and probes

    def __post_init__(self):
        # fine-tuning settings are checked here, at load, naming the dotted key (finetune.lr_hed -> lr_head)
        from_dict(FinetuneConfig, self.finetune, prefix="finetune")
        if not isinstance(self.task_finetune, dict):
            raise ConfigError(f"task_finetune: expected a mapping {{task: {{setting: value}}}}, got {self.task_finetune!r}")
        for name, extra in self.task_finetune.items():
            if not isinstance(extra, dict):
                raise ConfigError(f"task_finetune.{name}: expected a mapping of fine-tuning settings, got {extra!r}")
            from_dict(FinetuneConfig, {**self.finetune, **extra}, prefix=f"task_finetune.{name}")

    @classmethod
    def load(cls, path: str | Path, overrides=()) -> BenchmarkConfig:
        """Read a suite/settings YAML strictly (unknown keys are errors naming them), then ``--set`` overrides."""
        return load_config(cls, path, overrides)


def benchmark_overrides(sets) -> list[str]:
    """``--set`` strings for a :class:`BenchmarkConfig`: a bare fine-tuning key (``max_steps=200``) becomes
    ``finetune.max_steps=200``; a key known to neither is refused with the closest of both sets of keys."""
    from dnalm.config import unknown_key_error

    bench_keys = [f.name for f in dataclasses.fields(BenchmarkConfig)]
    ft_keys = [f.name for f in dataclasses.fields(FinetuneConfig)]
    out = []
    for item in sets or ():
        key = item.split("=", 1)[0].strip()
        head = key.split(".")[0].split("[")[0]
        if head not in bench_keys:
            if key not in ft_keys:
                raise ConfigError(f"--set {key}: {unknown_key_error('', key, bench_keys + ft_keys)}")
            item = f"finetune.{item.strip()}"
        out.append(item)
    return out


def task_specs(config: BenchmarkConfig, base_dir: Path | None = None) -> dict[str, TaskSpec]:
    """The task specs a benchmark runs, in order."""
    base = Path(config.data) if config.data else base_dir
    if config.suite:
        if not config.data:
            raise ConfigError(f"suite {config.suite!r} needs --data DIR (the folder holding its tasks)")
        specs = discover_suite(config.suite, config.data)
        names = config.tasks if isinstance(config.tasks, list) else list(config.tasks or [])
        if isinstance(config.tasks, dict):
            raise ConfigError("with a built-in suite, tasks is a list of names; use task_options for settings")
        specs = select_tasks(specs, [str(n) for n in names])
    else:
        if not isinstance(config.tasks, dict) or not config.tasks:
            raise ConfigError(f"no suite given: name one of {', '.join(SUITES)} with --data, or list task specs "
                              "under tasks: {name: SPEC} in a suite YAML")
        specs = {}
        for name, spec in config.tasks.items():
            s = parse_task_spec(spec, base_dir=base)
            s.name = s.name or str(name)
            specs[str(name)] = s
    for name, opts in (config.task_options or {}).items():
        if name not in specs:
            raise ConfigError(f"task_options for unknown task {name!r}; tasks are {', '.join(specs)}")
        d = dataclasses.asdict(specs[name])
        d.update(opts)
        d["base_dir"] = str(base) if base else d.get("base_dir", "")
        specs[name] = parse_task_spec(d)
    return specs


def _row(task: Task | None, name: str, method: str, metric: str, test: dict | None, dev: dict | None, **extra) -> dict:
    return {
        "task": name,
        "method": method,
        "metric": metric,
        "test": (test or {}).get(metric, float("nan")),
        "dev": (dev or {}).get(metric, float("nan")),
        "n_train": len(task.train) if task else 0,
        "n_dev": len(task.dev) if task else 0,
        "n_test": len(task.test) if task else 0,
        **extra,
        "test_metrics": json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v)
                                    for k, v in (test or {}).items()}),
    }


# --------------------------------------------------------------------------------------------- jobs
@dataclass
class _Job:
    """One method on one task; runs in this process or in a worker process (everything here pickles)."""

    order: int  # position in the results table
    name: str  # task name
    spec: TaskSpec
    method: str  # kmer | kmer_full | probe | finetune
    pooling: str  # for finetune
    config: BenchmarkConfig
    model: str
    out: str
    threads: int  # torch CPU threads in a worker process (0 = leave)
    cost: float = 0.0  # estimated work (token passes), to start the longest jobs first
    fingerprint: str = ""  # sha256 of the model weights when the benchmark started


def model_fingerprint(model) -> str:
    """sha256 (first 16 hex digits) of a model directory's ``model.safetensors``, or ``preset:NAME``."""
    import hashlib

    path = Path(str(model)) / "model.safetensors"
    if not path.exists():
        return f"preset:{model}"
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _job_cost(method: str, pooling: str, task: Task, full: Task, ft_cfg, config: BenchmarkConfig) -> float:
    """Rough work of a job in token passes (a training step ~ 3 forward passes); only orders the queue."""
    mean_len = float(np.mean([len(s) for s in task.test.sequences])) if len(task.test) else 1.0
    if method == "gc":
        return 0.01 * mean_len * len(task.train)
    if method in ("kmer", "kmer_full"):
        return 0.05 * mean_len * (len(full.train) if method == "kmer_full" else len(task.train))
    if method == "probe":
        n_train = min(len(task.train), config.probe_max_train or len(task.train))
        return mean_len * (n_train + len(task.dev) + len(task.test))
    tokens = 2 * mean_len + 3 if pooling in ("echo", "rc_echo") else mean_len + 2
    evals = max(1, ft_cfg.max_steps // max(1, min(ft_cfg.val_every, ft_cfg.max_steps)))
    return tokens * (3 * ft_cfg.max_steps * ft_cfg.batch_size + evals * len(task.dev) + len(task.dev) + len(task.test))


def _finetune_config(name: str, config: BenchmarkConfig) -> FinetuneConfig:
    return from_dict(FinetuneConfig, {**config.finetune, **(config.task_finetune or {}).get(name, {}),
                                      "seed": config.seed, "progress_bar": config.progress_bar,
                                      "save_model": config.save_models}, prefix=f"task_finetune.{name}")


def _prepare(name: str, spec: TaskSpec, config: BenchmarkConfig) -> tuple[Task, Task, object]:
    """(full task, the subsampled task every method sees, its FinetuneConfig); deterministic for a seed."""
    ft_cfg = _finetune_config(name, config)
    full = load_task(spec)
    task = full.subsample({"train": ft_cfg.max_train, "dev": ft_cfg.max_dev, "test": ft_cfg.max_test}, config.seed)
    return full, task, dataclasses.replace(ft_cfg, max_train=0, max_dev=0, max_test=0)


def _method_label(job_method: str, task: Task, config: BenchmarkConfig, pooling: str = "") -> str:
    learner = "ridge" if task.kind == "regression" else "logistic"
    if job_method in ("kmer", "kmer_full"):
        ks = [int(k) for k in config.kmer_k]
        span = f"{ks[0]}..{ks[-1]}" if ks == list(range(ks[0], ks[-1] + 1)) else ",".join(map(str, ks))
        return f"k-mer (k={span}) + {learner}" + (", full train" if job_method == "kmer_full" else "")
    if job_method == "gc":
        return f"GC content + {learner}"
    if job_method == "probe":
        return f"frozen {config.probe_pooling}-pooled embedding + {learner}"
    return f"fine-tuned ({pooling} pooling)"


def _run_job(job: _Job) -> dict:
    """Run one job; returns its results row (an error becomes the row's status)."""
    import torch

    if job.threads > 0:
        torch.set_num_threads(job.threads)
    t0 = time.time()
    config = job.config
    full, task, ft_cfg = _prepare(job.name, job.spec, config)
    label = _method_label(job.method, task, config, job.pooling)
    if job.fingerprint and model_fingerprint(job.model) != job.fingerprint:
        msg = f"the model {job.model} changed on disk during the benchmark (weights sha256 differ); rerun"
        print(f"   {job.name} / {label}: error: {msg}", flush=True)
        return {**_row(task, job.name, label, task.metric, None, None, status=f"error: {msg}"), "order": job.order}
    used = task
    try:
        if job.method in ("kmer", "kmer_full"):
            from finetune.baselines import kmer_baseline

            if job.method == "kmer_full":
                used = dataclasses.replace(task, train=full.train)
            r = kmer_baseline(used, list(config.kmer_k), config.kmer_grid or None, config.seed)
            test, dev, extra = r.test_metrics, r.dev_metrics, {"param": r.param}
        elif job.method == "gc":
            from finetune.baselines import gc_baseline

            r = gc_baseline(task, config.seed)
            test, dev, extra = r.test_metrics, r.dev_metrics, {"param": r.param}
        elif job.method == "probe":
            from finetune.heads import load_backbone
            from finetune.probes import run_probe

            if config.probe_max_train and len(task.train) > config.probe_max_train:
                used = task.subsample({"train": config.probe_max_train}, config.seed)
            r = run_probe(load_backbone(job.model), used, config.probe_pooling, grid=config.probe_grid or None,
                          seed=config.seed, progress=config.progress_bar)
            test, dev, extra = r.test_metrics, r.dev_metrics, {"param": r.param}
        else:
            from finetune.lightning import finetune

            cfg = dataclasses.replace(ft_cfg, pooling=job.pooling)
            if job.threads > 0:  # a worker process keeps to its one thread
                cfg = dataclasses.replace(cfg, threads=job.threads)
            res = finetune(job.model, task, cfg, out_dir=Path(job.out) / job.name / f"finetune_{job.pooling}")
            test, dev, extra = res.test_metrics, res.dev_metrics, {"steps": res.steps, "best_step": res.best_step}
    except DnalmError as exc:
        print(f"   {job.name} / {label}: error: {exc}", flush=True)
        return {**_row(used, job.name, label, task.metric, None, None, seconds=round(time.time() - t0, 1),
                       status=f"error: {exc}"), "order": job.order}
    secs = time.time() - t0
    print(f"   {job.name} / {label}: test {task.metric} {test[task.metric]:.4f} ({secs:.0f} s)", flush=True)
    return {**_row(used, job.name, label, task.metric, test, dev, seconds=round(secs, 1), status="ok", **extra),
            "order": job.order}


def _task_jobs(name: str, spec: TaskSpec, config: BenchmarkConfig, model: str, out: Path, threads: int,
               order: int, fingerprint: str = "") -> tuple[list[_Job], list[dict], list[str]]:
    """Load and describe one task (task.txt, skipped.csv) and list its jobs: (jobs, error rows, notes)."""
    from dnalm.utils import atomic_write

    try:
        full, task, ft_cfg = _prepare(name, spec, config)
    except DnalmError as exc:
        print(f"== {name}: not loaded: {exc}", flush=True)
        row = _row(None, name, "(task not loaded)", "", None, None, status=f"error: {exc}")
        return [], [{**row, "order": order}], [f"not run: {exc}"]
    task_dir = out / name
    task_dir.mkdir(parents=True, exist_ok=True)
    report = task.report()
    print(f"== {name}\n{report}", flush=True)
    with atomic_write(task_dir / "task.txt") as fh:
        fh.write(report + "\n")
    notes = list(task.notes)
    if len(task.skipped):
        with atomic_write(task_dir / "skipped.csv") as fh:
            task.skipped.to_csv(fh, index=False)
        notes.append(f"{len(task.skipped):,} input rows skipped (see {name}/skipped.csv)")
    methods: list[tuple[str, str]] = []
    if config.kmer and task.kind != "token_classification":
        methods.append(("kmer", ""))
        if config.kmer_full_train and len(full.train) > len(task.train):
            methods.append(("kmer_full", ""))
    if config.gc and task.kind != "token_classification":
        methods.append(("gc", ""))
    if config.probe:
        methods.append(("probe", ""))
        if config.probe_max_train and len(task.train) > config.probe_max_train:
            notes.append(f"frozen probe fitted on {config.probe_max_train:,} of the {len(task.train):,} train rows "
                         f"(stratified, seed {config.seed})")
    if config.run_finetune:
        methods += [("finetune", p) for p in config.poolings]
    jobs = [_Job(order + k, name, spec, m, p, config, str(model), str(out), threads,
                 _job_cost(m, p, task, full, dataclasses.replace(ft_cfg, pooling=p or ft_cfg.pooling), config),
                 fingerprint)
            for k, (m, p) in enumerate(methods)]
    return jobs, [], notes


def run_benchmark(model: str | Path, config: BenchmarkConfig, out_dir: str | Path, command: str = "",
                  base_dir: Path | None = None) -> pd.DataFrame:
    """Run every task of the benchmark and write ``results.csv``, ``results.md`` and ``results.png``.

    With ``config.workers > 1`` the (task, method) jobs run in that many worker processes, one torch thread
    each (on a small CPU machine this scales better than threads inside one process); the longest jobs start
    first.

    Args:
        model: a model directory (``save_pretrained``) or a preset name (random init).
        config: :class:`BenchmarkConfig`.
        out_dir: output folder (per-task logs and models go into ``OUT/TASK/``).
        command: the command line, recorded in ``results.md``.
        base_dir: folder relative task specs are relative to when ``config.data`` is empty.

    Returns:
        The results table (one row per task and method).
    """
    from dnalm.utils import atomic_write

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.time()
    load_start = _load_average()
    specs = task_specs(config, base_dir)
    for p in config.poolings:
        FinetuneConfig(pooling=p)  # validate early
    if config.workers < 1:
        raise ConfigError(f"workers must be at least 1, got {config.workers}")
    threads = 1 if config.workers > 1 else 0
    fingerprint = model_fingerprint(model)
    jobs: list[_Job] = []
    rows: list[dict] = []
    task_notes: dict[str, list[str]] = {}
    for t, (name, spec) in enumerate(specs.items()):
        task_jobs, error_rows, task_notes[name] = _task_jobs(name, spec, config, model, out, threads, 100 * t,
                                                             fingerprint)
        jobs += task_jobs
        rows += error_rows
    if config.workers == 1:
        rows += [_run_job(job) for job in jobs]
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        queue = sorted(jobs, key=lambda j: (-j.cost, j.order))  # longest first packs the workers best
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=config.workers, mp_context=ctx) as pool:
            rows += list(pool.map(_run_job, queue))
    rows.sort(key=lambda r: r["order"])
    rows = [{k: v for k, v in r.items() if k != "order"} for r in rows]
    df = pd.DataFrame(rows)
    for col in ("param", "steps", "best_step", "seconds", "status"):
        if col not in df.columns:
            df[col] = np.nan
    cols = ["task", "method", "metric", "test", "dev", "n_train", "n_dev", "n_test", "param", "steps", "best_step",
            "seconds", "status", "test_metrics"]
    df = df[cols]
    total = time.time() - t_all
    timing = {"model_sha256": fingerprint, "wall_s": total, "cpu_s": _cpu_seconds(),
              "load": (load_start, _load_average()), "workers": config.workers}
    with atomic_write(out / "results.csv") as fh:
        df.to_csv(fh, index=False)
    with atomic_write(out / "results.md") as fh:
        fh.write(results_markdown(df, config, model, task_notes, timing, command))
    plot_results(df, out / "results.png")
    return df


def _fmt(v) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _load_average() -> float:
    import os

    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (worker processes)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def results_markdown(df: pd.DataFrame, config: BenchmarkConfig, model, notes: dict[str, list[str]],
                     timing: dict | float, command: str = "") -> str:
    """The results table (test metric, task x method), the details and the settings as Markdown.

    ``timing``: wall seconds, or ``{"wall_s", "cpu_s", "load": (at start, at end), "workers"}``.
    """
    if not isinstance(timing, dict):
        timing = {"wall_s": float(timing)}
    lines = ["# dnalm benchmark results", ""]
    lines.append(f"- model: `{model}`" + (f" (weights sha256 {timing['model_sha256']}…)"
                                          if timing.get("model_sha256") else ""))
    if config.suite:
        lines.append(f"- suite: {config.suite} (`{config.data}`)")
    if command:
        lines.append(f"- command: `{command}`")
    line = f"- total time: {timing['wall_s'] / 60:.1f} min wall"
    if "cpu_s" in timing:
        line += (f", {timing['cpu_s'] / 60:.1f} min CPU (all processes; {timing.get('workers', 1)} worker "
                 f"process(es)); 1-minute load average {timing['load'][0]:.1f} at the start, "
                 f"{timing['load'][1]:.1f} at the end")
    lines.append(line)
    lines.append("")
    ok = df[df["status"] == "ok"]
    if len(ok):
        methods = list(dict.fromkeys(ok["method"]))
        lines.append("## Test metric per task (each task's own metric)")
        lines.append("")
        lines.append("| task | metric | train / dev / test | " + " | ".join(methods) + " |")
        lines.append("|---|---|---|" + "---|" * len(methods))
        for task, g in ok.groupby("task", sort=False):
            first = g.iloc[0]
            sizes = f"{int(first.n_train):,} / {int(first.n_dev):,} / {int(first.n_test):,}"
            values = []
            for m in methods:
                hit = g[g["method"] == m]
                values.append(_fmt(float(hit["test"].iloc[0])) if len(hit) else "—")
            lines.append(f"| {task} | {first.metric} | {sizes} | " + " | ".join(values) + " |")
        lines.append("")
        if any("full train" in m for m in methods):
            lines.append("Rows marked *full train* fit the k-mer baseline on the whole train split (the other methods "
                         "use the subsampled train split shown in the table); dev and test are the same for all.")
            lines.append("")
    lines.append("## Details")
    lines.append("")
    lines.append("| task | method | test | dev | penalty | steps (best) | seconds | status |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for _, r in df.iterrows():
        steps = "" if pd.isna(r["steps"]) else f"{int(r['steps'])} ({int(r['best_step'])})"
        param = "" if pd.isna(r["param"]) else f"{r['param']:g}"
        secs = "" if pd.isna(r["seconds"]) else f"{r['seconds']:.0f}"
        lines.append(f"| {r['task']} | {r['method']} | {_fmt(r['test'])} | {_fmt(r['dev'])} | {param} | {steps} | "
                     f"{secs} | {r['status']} |")
    lines.append("")
    lines.append("## Notes")
    lines.append("")
    for task, ns in notes.items():
        for n in ns:
            lines.append(f"- {task}: {n}")
    lines.append("")
    lines.append("## Settings")
    lines.append("")
    lines.append("```json")
    lines.append(json.dumps(dataclasses.asdict(config), indent=2, default=str))
    lines.append("```")
    lines.append("")
    lines.append("Fine-tuning picks the checkpoint with the best dev metric (evaluated every `val_every` steps, early "
                 "stopping after `patience` evaluations without improvement) and reports it on test. Probes and the "
                 "k-mer baseline choose their penalty on dev. Metrics: scikit-learn / scipy.")
    return "\n".join(lines) + "\n"


def plot_results(df: pd.DataFrame, path: str | Path) -> None:
    """Grouped bar plot of the test metric per task and method (PNG, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dnalm.utils import atomic_path

    ok = df[df["status"] == "ok"]
    tasks = list(dict.fromkeys(ok["task"]))
    methods = list(dict.fromkeys(ok["method"]))
    if not tasks:  # nothing ran: an empty figure that says so
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "no task produced results (see results.md)", ha="center", va="center")
        ax.axis("off")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
        return
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 + 1.6 * len(tasks) * max(1, len(methods)) / 3), 4.2))
    width = 0.8 / max(1, len(methods))
    x = np.arange(len(tasks))
    for j, m in enumerate(methods):
        vals = []
        for t in tasks:
            hit = ok[(ok["task"] == t) & (ok["method"] == m)]
            vals.append(float(hit["test"].iloc[0]) if len(hit) else np.nan)
        bars = ax.bar(x + (j - (len(methods) - 1) / 2) * width, vals, width, label=m)
        for b, v in zip(bars, vals):
            if not np.isnan(v):
                ax.annotate(f"{v:.2f}", (b.get_x() + b.get_width() / 2, max(v, 0)), ha="center", va="bottom", fontsize=7)
    metrics = {t: ok[ok["task"] == t]["metric"].iloc[0] for t in tasks}
    ax.set_xticks(x)
    ax.set_xticklabels([f"{t}\n({metrics[t]})" for t in tasks], fontsize=8)
    ax.set_ylabel("test metric")
    ax.axhline(0, color="black", lw=0.5)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
    ax.set_title("dnalm benchmark: fine-tuned model vs baselines", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, format="png")
    plt.close(fig)
