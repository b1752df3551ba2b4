"""Collect result files (tables, JSON, Markdown, PNG plots) into a Markdown report and a self-contained HTML page."""

from __future__ import annotations

from dnalm.commands import options


def add_arguments(p) -> None:
    options.add_output_options(p, "file", "report.md (report.html is written beside it)")
    p.add_argument("--title", default="dnalm report")
    p.add_argument(
        "--section", action="append", default=[], metavar="TITLE=FILE[,FILE...]",
        help="a section and its files (repeatable)",
    )


def run(args) -> int:
    from dnalm.errors import InputError
    from dnalm.report import build_report

    sections = []
    for s in args.section:
        if "=" not in s:
            raise InputError(f"--section {s!r}: expected TITLE=FILE[,FILE...]")
        title, files = s.split("=", 1)
        sections.append((title.strip(), [f for f in files.split(",") if f]))
    md, page = build_report(sections, args.out, title=args.title)
    print(f"wrote {md} and {page}")
    return 0
