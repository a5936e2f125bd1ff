"""nbval with numeric tolerance: checked notebook outputs that survive another CPU.

nbval compares a re-executed cell's output with the committed one as exact text. Floating-point
results differ between CPUs (vector width, BLAS kernels), thread counts and GPUs, so an exact
comparison of printed measurements fails on the next machine even when nothing is wrong. This
plugin keeps nbval's comparison and adds one rule, the same for every ``# NBVAL_CHECK_OUTPUT``
cell:

* text and integers must match exactly (names, shapes, counts, layer lists);
* decimal numbers (``0.67``, ``45.24``, ``1e-3``) must match within the tolerance the cell
  states on a comment line of its own, e.g. ``# NBVAL_TOLERANCE abs=0.03 (why)`` or
  ``# NBVAL_TOLERANCE rel=0.05`` (both may be given: a number passes if either holds; text
  in parentheses after the values is the reason, for the reader);
* a cell that prints decimals without stating a tolerance compares them exactly, and
  ``tests/test_notebook_checks.py`` refuses such cells, so every tolerance is a decision.

Written here because nbval has no numeric comparison: its sanitizers rewrite text with regular
expressions, which can round but cannot say "within 0.03" (0.67 and 0.68 round apart).

Loaded by the repository's root ``conftest.py``; usable elsewhere with ``-p tests.nbval_tolerance``.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass

import nbformat
import pytest

MARKER = "NBVAL_TOLERANCE"

# A number that stands on its own: not part of a name such as "layer3.5", "blocks.2" or "vit_b_16".
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class Tolerance:
    """How far a printed decimal may move: ``|a - b| <= abs`` or ``|a - b| <= rel * |reference|``."""

    abs: float = 0.0
    rel: float = 0.0

    def accepts(self, reference: float, value: float) -> bool:
        if math.isnan(reference) or math.isnan(value):
            return math.isnan(reference) and math.isnan(value)
        return abs(value - reference) <= max(self.abs, self.rel * abs(reference)) + 1e-12

    def __str__(self) -> str:
        return " ".join(f"{k}={v:g}" for k, v in (("abs", self.abs), ("rel", self.rel)) if v)


def is_decimal(token: str) -> bool:
    """Decimals carry a point or an exponent; everything else is an integer, compared exactly."""
    return any(c in token for c in ".eE")


def parse_tolerance(source: str) -> Tolerance | None:
    """The cell's ``# NBVAL_TOLERANCE abs=... rel=...`` line, or ``None`` if it has none."""
    for line in source.splitlines():
        text = line.strip()
        if not text.startswith("#"):
            continue
        words = text.lstrip("#").split("(")[0].split()  # "(...)" after the values is a free-text reason
        if not words or words[0] != MARKER:
            continue
        values = {}
        for word in words[1:]:
            key, sep, value = word.partition("=")
            if not sep or key not in ("abs", "rel"):
                raise ValueError(f"{MARKER}: expected 'abs=NUMBER' and/or 'rel=NUMBER', got {word!r} in {line!r}")
            values[key] = float(value)
        if not values:
            raise ValueError(f"{MARKER} needs abs=NUMBER and/or rel=NUMBER; got {line!r}")
        return Tolerance(**values)
    return None


def decimals_in(text: str) -> list[str]:
    """The decimal numbers printed in ``text``."""
    return [m.group() for m in NUMBER.finditer(text) if is_decimal(m.group())]


def align_numbers(reference: str, actual: str, tolerance: Tolerance) -> str:
    """Return ``actual`` with each decimal that is within ``tolerance`` of the reference's
    corresponding decimal replaced by the reference's text.

    If the texts around the numbers differ, or the numbers differ in count, ``actual`` comes
    back unchanged, so the exact comparison that follows fails and shows the difference.
    """
    ref_parts, act_parts = NUMBER.split(reference), NUMBER.split(actual)
    ref_nums, act_nums = NUMBER.findall(reference), NUMBER.findall(actual)
    if ref_parts != act_parts or len(ref_nums) != len(act_nums):
        return actual
    out = [act_parts[0]]
    for ref, act, tail in zip(ref_nums, act_nums, act_parts[1:]):
        if is_decimal(ref) and is_decimal(act) and tolerance.accepts(float(ref), float(act)):
            act = ref
        out += [act, tail]
    return "".join(out)


def _align_output(reference: dict, actual: dict, tolerance: Tolerance) -> dict:
    """One output (stream or display data) of the actual run, aligned with the reference."""
    aligned = nbformat.from_dict(copy.deepcopy(dict(actual)))
    if isinstance(reference.get("text"), str) and isinstance(actual.get("text"), str):
        aligned["text"] = align_numbers(reference["text"], actual["text"], tolerance)
    ref_data, act_data = reference.get("data") or {}, aligned.get("data") or {}
    for key, value in act_data.items():
        if isinstance(value, str) and isinstance(ref_data.get(key), str) and key.startswith("text/"):
            act_data[key] = align_numbers(ref_data[key], value, tolerance)
    return aligned


def _tolerant_cell_class(base: type) -> type:
    class TolerantCell(base):
        """An nbval cell whose checked decimals may differ by the cell's stated tolerance."""

        def compare_outputs(self, test, ref, skip_compare=None):
            tolerance = parse_tolerance(self.cell.source)
            if tolerance is not None and len(test) == len(ref):
                test = [_align_output(r, t, tolerance) for r, t in zip(ref, test)]
            same = super().compare_outputs(test, ref, skip_compare)
            if not same and tolerance is not None:
                self.comparison_traceback.append(f"(decimals compared within {tolerance}; text and integers exactly)")
            return same

    return TolerantCell


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    """Give every collected nbval cell the tolerant comparison."""
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:  # nbval not installed: no notebook items to adapt
        return
    tolerant = _tolerant_cell_class(IPyNbCell)
    for item in items:
        if type(item) is IPyNbCell:
            item.__class__ = tolerant
