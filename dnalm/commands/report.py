"""The results page of a pipeline run (headline table + a section per stage) as Markdown and self-contained HTML;
free-form sections of result files (tables, Markdown, PNG plots) can be added."""

from __future__ import annotations

from dnalm.commands import options


def add_arguments(p) -> None:
    options.add_output_options(p, "file", "report.md (report.html is written beside it)")
    p.add_argument("--title", default="dnalm report")
    p.add_argument("--results", default=None, metavar="DIR",
                   help="a pipeline results folder: headline table (each stage vs its baseline) and stage sections")
    p.add_argument(
        "--section", action="append", default=[], metavar="TITLE=FILE[,FILE...]",
        help="a section and its files (repeatable)",
    )


def run(args) -> int:
    from dnalm.errors import InputError
    from dnalm.report import build_report, build_results_page

    sections = []
    for s in args.section:
        if "=" not in s:
            raise InputError(f"--section {s!r}: expected TITLE=FILE[,FILE...]")
        title, files = s.split("=", 1)
        sections.append((title.strip(), [f for f in files.split(",") if f]))
    if args.results:
        md, page = build_results_page(args.results, args.out, title=args.title, extra=sections)
    else:
        md, page = build_report(sections, args.out, title=args.title)
    print(f"wrote {md} and {page}")
    return 0
