"""The ISM figure's x axis is in the TSV's coordinates (1-based genome positions), not 0-based offsets."""

import numpy as np
import pandas as pd


def test_ism_plot_x_axis_is_the_tsv_position(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dnalm.variants.plots import plot_ism

    figs = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figs.append(fig))
    rng = np.random.default_rng(0)
    pos = np.arange(54664, 54704)
    table = pd.DataFrame({"chrom": "chrVI", "position": pos, "ref": rng.choice(list("ACGT"), len(pos))})
    for b in "ACGT":
        table[b] = rng.normal(size=len(pos))
    table["importance"] = rng.random(len(pos))
    out = plot_ism(table, tmp_path / "ism.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax_logo, ax_map = figs[0].axes[:2]
    lo, hi = ax_map.get_xlim()
    assert (lo, hi) == (54663.5, 54703.5)  # every TSV position sits at its own number
    assert "chrVI position (1-based" in ax_map.get_xlabel()
    assert ax_logo.get_xlim() == (lo, hi)
