"""Variant windows and alleles: the REF and ALT windows of a variant on each strand, as token-id pairs.

Windows (:func:`variant_windows`). On the + strand the window reads ``L = window // 2`` genome bases left of the
variant, then the allele, then the genome from just after REF until the window holds ``window`` bases (N past a
chromosome end). REF and ALT windows therefore share their first ``L`` bases, and an indel only moves where the
right flank stops: a deletion pulls in more genome on the right, an insertion pushes it out. An allele longer
than the room left is cut at the window end. The - strand is the mirror image: the reverse complement of
(genome left of the variant, allele, ``R = window - L - 1`` bases right of REF), where the *right* flank is
fixed and the left flank absorbs the length change. For an SNV the - strand window is exactly the reverse
complement of the + strand window, and in both directions the flank that the model reads first is identical for
REF and ALT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dnalm.errors import InputError
from dnalm.tokenizer import DNATokenizer, reverse_complement


def window_split(window: int, strand: str = "+") -> int:
    """Bases of genome flank the model reads before the allele: ``window // 2`` on +, ``window - window//2 - 1``
    on - (so that an SNV's - strand window is the reverse complement of its + strand window)."""
    left = window // 2
    return left if strand == "+" else window - left - 1


def _assemble(left: str, allele: str, right: str, window: int, strand: str) -> str:
    """left + allele + right cut to ``window``: on + the left flank is fixed, on - the right flank is."""
    if strand == "+":
        return (left + allele + right)[:window]
    s = left + allele + right
    return reverse_complement(s[len(s) - window :])


def variant_windows(
    genome, chrom: str, pos: int, ref: str, alt: str, window: int, strand: str = "+"
) -> tuple[str, str]:
    """The REF and ALT windows of one variant, each exactly ``window`` bases (see the module docstring).

    Args:
        genome: :class:`dnalm.Genome` (the windows' flanks come from it, N-padded past the chromosome ends).
        chrom: chromosome name (aliases allowed).
        pos: 1-based position of the first REF base (VCF POS).
        ref, alt: alleles (REF is written into the REF window as given; it should match the genome).
        window: window length in bases.
        strand: ``"+"`` or ``"-"`` (the - strand windows are reverse complemented).

    Returns:
        (ref_window, alt_window), upper case, in the strand's reading direction.
    """
    if strand not in ("+", "-"):
        raise InputError(f"strand must be '+' or '-', got {strand!r}")
    p = pos - 1
    # every base either window can use
    span = genome.fetch(chrom, p - window, p + len(ref) + window, pad=True)
    return windows_in_span(span, window, ref, alt, window, strand)


def windows_in_span(span: str, off: int, ref: str, alt: str, window: int, strand: str) -> tuple[str, str]:
    """:func:`variant_windows` on a pre-fetched stretch ``span`` in which REF starts at index ``off``
    (``span`` holds at least ``window`` bases on either side of REF)."""
    r = len(ref)
    ref, alt = ref.upper(), alt.upper()
    short = min(len(ref), len(alt))
    if strand == "+":
        n_left = window_split(window, "+")
        n_right = max(0, window - n_left - short)  # enough right flank for the shorter allele
    else:
        n_right = window_split(window, "-")
        n_left = max(0, window - n_right - short)
    left = span[off - n_left : off]
    right = span[off + r : off + r + n_right]
    return (_assemble(left, ref, right, window, strand), _assemble(left, alt, right, window, strand))


# ---------------------------------------------------------------------------------------------------------------
# REF/ALT pairs of token ids
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class WindowPair:
    """One REF/ALT window pair (a variant on one strand) and where the two first differ."""

    ref: np.ndarray  # (W,) token ids
    alt: np.ndarray  # (W,)
    split: int  # first index where ref and alt differ (capped at W - 1)


def first_difference(a: np.ndarray, b: np.ndarray) -> int:
    """First index where ``a`` and ``b`` differ (``len(a) - 1`` when they are equal)."""
    diff = np.flatnonzero(a != b)
    return int(diff[0]) if len(diff) else len(a) - 1

def model_tokenizer(model) -> DNATokenizer:
    """The model's tokenizer, or the default :class:`DNATokenizer`."""
    return getattr(model, "tokenizer", None) or DNATokenizer()


def make_pair(tok: DNATokenizer, ref_seq: str, alt_seq: str) -> WindowPair:
    """Token ids of an equal-length REF/ALT window pair and where they first differ."""
    ref_ids, alt_ids = tok.encode_np(ref_seq), tok.encode_np(alt_seq)
    if len(ref_ids) != len(alt_ids):
        raise InputError(f"REF and ALT windows differ in length ({len(ref_ids)} vs {len(alt_ids)})")
    return WindowPair(ref_ids, alt_ids, first_difference(ref_ids, alt_ids))
