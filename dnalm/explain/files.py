"""Attribution files: ``attributions.npz`` (arrays), ``summary.tsv`` (one row per sequence) and logo PNGs.

``attributions.npz`` holds ``x`` (N, 4, L) one-hot, ``mask`` (N, L), ``contributions`` and ``hypothetical``
(N, 4, L, see :mod:`dnalm.explain.attribution`), ``scores`` (N,) f(x), ``baseline_scores`` (N,; NaN where the
method has no baseline), ``names`` (N,), and for genomic input ``chrom``, ``start``, ``end``, ``strand`` (0-based
half-open; a ``-`` strand sequence is the reverse complement, so column ``i`` is genome position ``end - 1 - i``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dnalm.errors import InputError
from dnalm.explain.attribution import Attributions

NPZ_KEYS = ("x", "mask", "contributions", "hypothetical", "scores", "baseline_scores", "names")


def write_attributions(attr: Attributions, x: np.ndarray, mask: np.ndarray, names: Sequence[str], out_dir: str | os.PathLike,
                       coords: dict[str, np.ndarray] | None = None, top: int = 10, window: int = 10,
                       meta: dict | None = None, record: np.ndarray | None = None) -> dict:
    """Write the arrays, the per-sequence summary and logos of the ``top`` sequences by score (``logos/``, and the
    first again as ``top.png``).

    Args:
        attr: attributions of ``x``.
        x, mask: the one-hot batch and its mask.
        names: sequence names.
        out_dir: output folder (created).
        coords: ``chrom``, ``start``, ``end``, ``strand`` arrays for genomic input (logo axes in genome coordinates).
        top: logos for this many sequences (highest f(x) first).
        window: width of the summary's highest-attribution window.
        meta: extra JSON-able settings recorded in ``run.json``.
        record: (N,) the sequences' 0-based record numbers in the input (default 0..N-1), written as ``record``.

    Returns:
        A dict of what was written.
    """
    import json

    import pandas as pd

    from dnalm.explain.plots import save_logo
    from dnalm.utils import atomic_path, atomic_write

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    N = len(x)
    arrays = {"x": x.astype(np.float32), "mask": mask, "contributions": attr.contributions.astype(np.float32),
              "hypothetical": attr.hypothetical.astype(np.float32), "scores": attr.scores.astype(np.float32),
              "baseline_scores": (attr.baseline_scores if attr.baseline_scores is not None else np.full(N, np.nan)).astype(np.float32),
              "names": np.asarray(names, dtype=str),
              "record": np.arange(N, dtype=np.int64) if record is None else np.asarray(record, dtype=np.int64)}
    for k, v in (coords or {}).items():
        arrays[k] = np.asarray(v)
    with atomic_path(out / "attributions.npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    per_pos = attr.contributions.sum(1)  # (N, L)
    rows = []
    for i in range(N):
        n = int(mask[i].sum())
        w = min(window, n)
        sums = np.convolve(per_pos[i, :n], np.ones(w), mode="valid") if n else np.zeros(1)
        j = int(np.argmax(sums))
        row = {"name": names[i], "length": n, "score": float(attr.scores[i]),
               "baseline_score": float(arrays["baseline_scores"][i]), "total_attribution": float(per_pos[i].sum()),
               "abs_attribution": float(np.abs(per_pos[i]).sum()), "top_position": int(np.argmax(per_pos[i, :n])) if n else -1,
               "top_window_start": j, "top_window_end": j + w, "top_window_attribution": float(sums[j])}
        if coords:
            row.update({"chrom": coords["chrom"][i], "start": int(coords["start"][i]), "end": int(coords["end"][i]),
                        "strand": coords["strand"][i]})
        rows.append(row)
    table = pd.DataFrame(rows)
    with atomic_write(out / "summary.tsv") as fh:
        table.to_csv(fh, sep="\t", index=False, float_format="%.6g")
    logos = []
    for rank, i in enumerate(np.argsort(-attr.scores, kind="stable")[:top]):
        n = int(mask[i].sum())
        c = attr.contributions[i, :, :n]
        chrom = start = None
        if coords:
            chrom, start = str(coords["chrom"][i]), int(coords["start"][i])
            if str(coords["strand"][i]) == "-":  # show the genome's + strand: complement and reverse back
                c = c[::-1, ::-1]
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in str(names[i]))[:60]
        path = out / "logos" / f"{rank + 1:03d}_{safe}.png"
        path.parent.mkdir(exist_ok=True)
        save_logo(c, path, title=f"{names[i]}  f(x)={attr.scores[i]:.3g}  ({attr.method})", start=start or 0,
                  chrom=chrom, ylabel="contribution")
        logos.append(str(path))
        if rank == 0:  # a fixed name for reports and pipelines
            save_logo(c, out / "top.png", title=f"{names[i]}  f(x)={attr.scores[i]:.3g}  ({attr.method})",
                      start=start or 0, chrom=chrom, ylabel="contribution")
    with atomic_write(out / "run.json") as fh:
        json.dump({"method": attr.method, "n_sequences": N, "length": int(x.shape[2]), **attr.info_public(),
                   **(meta or {})}, fh, indent=2, default=str)
    return {"npz": str(out / "attributions.npz"), "summary": str(out / "summary.tsv"), "logos": logos}


def read_attributions(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of an ``attributions.npz`` (checked for the keys and shapes this module writes)."""
    path = Path(path)
    if path.is_dir():
        path = path / "attributions.npz"
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npz ({exc})") from None
    missing = [k for k in ("x", "hypothetical") if k not in data]
    if missing:
        raise InputError(f"{path}: missing array(s) {', '.join(missing)} (write it with dnalm attribute)")
    if data["x"].ndim != 3 or data["x"].shape[1] != 4 or data["hypothetical"].shape != data["x"].shape:
        raise InputError(f"{path}: x and hypothetical must both be (N, 4, L), got {data['x'].shape} and {data['hypothetical'].shape}")
    data.setdefault("mask", data["x"].sum(1) > 0)
    data.setdefault("contributions", data["x"] * data["hypothetical"])
    data.setdefault("names", np.array([str(i) for i in range(len(data["x"]))]))
    return data
