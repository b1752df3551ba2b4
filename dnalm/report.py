"""Collect a pipeline's result files into one Markdown report and a self-contained HTML page.

Each section is a title and a list of files. Markdown files are included as they are, CSV/TSV files as tables,
JSON files as key/value tables (nested values pretty-printed), PNG files as images (linked in Markdown,
embedded as base64 in HTML), any other text file as a code block. A missing file is listed as missing, so an
incomplete pipeline still gives an honest report.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

import pandas as pd


def _table_md(df: pd.DataFrame, max_rows: int) -> str:
    more = len(df) - max_rows
    df = df.head(max_rows)
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.tolist()]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if more > 0:
        lines.append(f"\n_{more} more rows in the file._")
    return "\n".join(lines)


def _json_df(path: Path) -> pd.DataFrame:
    data = json.loads(path.read_text())
    if isinstance(data, list):
        return pd.DataFrame(data)
    rows = []
    for k, v in data.items():
        rows.append({"key": k, "value": v if not isinstance(v, (dict, list)) else json.dumps(v)})
    return pd.DataFrame(rows)


def build_report(sections: list[tuple[str, list[str]]], out: str | os.PathLike, title: str = "dnalm report",
                 max_rows: int = 30) -> tuple[Path, Path]:
    """Write ``out`` (Markdown) and ``out`` with suffix ``.html``; return both paths."""
    from dnalm.utils import atomic_write

    out = Path(out)
    md = [f"# {title}", ""]
    body = [f"<h1>{html.escape(title)}</h1>"]
    for name, files in sections:
        md += [f"## {name}", ""]
        body.append(f"<h2>{html.escape(name)}</h2>")
        for f in files:
            p = Path(f)
            rel = os.path.relpath(p, out.parent)
            if not p.exists():
                md += [f"_missing: `{f}`_", ""]
                body.append(f"<p><em>missing: {html.escape(str(f))}</em></p>")
                continue
            suffix = "".join(p.suffixes[-1:]).lower()
            if suffix == ".png":
                md += [f"![{p.stem}]({rel})", ""]
                data = base64.b64encode(p.read_bytes()).decode()
                body.append(f'<p><img alt="{html.escape(p.stem)}" src="data:image/png;base64,{data}" '
                            'style="max-width:900px"></p>')
            elif suffix in (".csv", ".tsv"):
                df = pd.read_csv(p, sep="," if suffix == ".csv" else "\t")
                md += [f"`{p.name}`", "", _table_md(df, max_rows), ""]
                body.append(f"<p><code>{html.escape(p.name)}</code></p>" + df.head(max_rows).to_html(index=False, float_format=lambda v: f"{v:.4g}"))
            elif suffix == ".json":
                df = _json_df(p)
                md += [f"`{p.name}`", "", _table_md(df, max_rows), ""]
                body.append(f"<p><code>{html.escape(p.name)}</code></p>" + df.head(max_rows).to_html(index=False))
            elif suffix == ".md":
                text = p.read_text()
                md += [text, ""]
                body.append(f"<pre>{html.escape(text)}</pre>")
            else:
                text = p.read_text(errors="replace")
                md += ["```", text.rstrip(), "```", ""]
                body.append(f"<pre>{html.escape(text)}</pre>")
    with atomic_write(out) as fh:
        fh.write("\n".join(md))
    html_path = out.with_suffix(".html")
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>"
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}</style></head><body>"
        + "\n".join(body) + "</body></html>"
    )
    with atomic_write(html_path) as fh:
        fh.write(page)
    return out, html_path
