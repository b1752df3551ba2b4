"""Command-line options of the property tables read by the generation commands (finetune-generator,
train-oracle, evaluate-cre), and the comma-separated list parser they share."""

from __future__ import annotations

from collections.abc import Sequence

from dnalm.commands.options import non_negative_int


def add_table_arguments(p) -> None:
    """Add the table options shared by the generation commands (``--sequence-column``, ``--no-header``, ...)."""
    p.add_argument("--sequence-column", default="sequence", help="column with the DNA sequences (default: sequence)")
    p.add_argument("--no-header", action="store_true", help="the table has no header line")
    p.add_argument("--column-names", default=None,
                   help="comma-separated names for the columns of a headerless table (default 1,2,...)")
    p.add_argument("--skip-rows", type=non_negative_int, default=0, help="leading metadata lines to skip")
    p.add_argument("--sep", default=None, help="field separator (default: tab for .tsv/.txt, comma for .csv)")


def table_from_args(args, path, value_columns: Sequence[str], label_columns: Sequence[str] = ()):
    """Read ``path`` with the options of :func:`add_table_arguments` (a :class:`generate.data.PropertyTable`)."""
    from generate.data import read_property_table

    names = split_list(args.column_names) or None
    return read_property_table(
        path, args.sequence_column, value_columns, header=not args.no_header, skip_rows=args.skip_rows,
        sep=args.sep, column_names=names, label_columns=label_columns,
    )


def split_list(text: str | None) -> list[str]:
    """``"A, B"`` -> ``["A", "B"]`` (None -> [])."""
    return [x.strip() for x in (text or "").split(",") if x.strip()]
