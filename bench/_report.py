"""Medians over runs, Medark/other ratios and the printed results table."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

MB = 1_000_000


@dataclass(frozen=True)
class Figure:
    key: str
    title: str
    unit: str
    better: str  # "lower" or "higher"
    is_bytes: bool = False
    ratio: bool = True  # False: no Medark/other ratio (e.g. a signed error)


FIGURES: tuple[Figure, ...] = (
    Figure("full_backup_s", "full backup: time", "s", "lower"),
    Figure("full_backup_mbps", "full backup: throughput", "MB/s", "higher"),
    Figure("full_backup_rss", "full backup: peak RSS", "MB", "lower", True),
    Figure("incr_backup_s", "incremental backup (+1%): time", "s", "lower"),
    Figure(
        "incr_backup_data_added", "incremental: data added (tool's own figure)", "MB", "lower", True
    ),
    Figure("incr_repo_growth", "incremental: repository growth (du)", "MB", "lower", True),
    Figure("mf_first_backup_s", "many files: first backup time", "s", "lower"),
    Figure("mf_nochange_s", "many files: no-change re-backup time", "s", "lower"),
    Figure("mf_nochange_rss", "many files: no-change re-backup peak RSS", "MB", "lower", True),
    Figure("mf_touched_s", "many files: re-backup after touch, time", "s", "lower"),
    Figure("mf_restore_s", "many files: restore time", "s", "lower"),
    Figure("mf_restore_fps", "many files: restore throughput", "files/s", "higher"),
    Figure("restore_s", "full restore: time", "s", "lower"),
    Figure("restore_mbps", "full restore: throughput", "MB/s", "higher"),
    Figure("check_s", "check --read-data: time", "s", "lower"),
    Figure("check_mbps", "check --read-data: throughput", "MB/s", "higher"),
    Figure("stored_bytes", "stored size (du of repository)", "MB", "lower", True),
    Figure("peak_rss", "peak RSS over all steps", "MB", "lower", True),
)

Measurements = dict[str, dict[str, float]]  # tool label -> figure key -> value


def medians(runs: list[Measurements], labels: list[str]) -> Measurements:
    """Per tool and figure, the median over the runs that produced a value."""
    out: Measurements = {}
    for label in labels:
        keys = {k for run in runs for k in run.get(label, {})}
        out[label] = {
            k: float(statistics.median(vals))
            for k in sorted(keys)
            if (vals := [run[label][k] for run in runs if k in run.get(label, {})])
        }
    return out


def ratio_pairs(
    tools: list[tuple[str, str]], others: tuple[str, ...] = ("restic", "borg")
) -> list[tuple[str, str]]:
    """(medark label, other label) for every Medark column against each of ``others``."""
    meds = [label for label, name in tools if name == "medark"]
    rest = [label for label, name in tools if name in others]
    return [(m, o) for m in meds for o in rest]


def ratios(
    med: Measurements,
    pairs: list[tuple[str, str]],
    figures: tuple[Figure, ...] = FIGURES,
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for m, o in pairs:
        row: dict[str, float] = {}
        for fig in figures:
            a = med.get(m, {}).get(fig.key)
            b = med.get(o, {}).get(fig.key)
            if fig.ratio and a is not None and b:
                row[fig.key] = a / b
        out[f"{m}/{o}"] = row
    return out


def _num(value: float | None, fig: Figure) -> str:
    if value is None:
        return "-"
    if fig.is_bytes:
        value = value / MB
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _rows(
    med: Measurements,
    labels: list[str],
    rat: dict[str, dict[str, float]],
    figures: tuple[Figure, ...],
    times: str,
) -> list[list[str]]:
    rows: list[list[str]] = []
    for fig in figures:
        if not any(fig.key in med.get(lbl, {}) for lbl in labels):
            continue
        cells = [fig.title, fig.unit]
        cells += [_num(med.get(lbl, {}).get(fig.key), fig) for lbl in labels]
        cells += [f"{r[fig.key]:.2f}{times}" if fig.key in r else "-" for r in rat.values()]
        rows.append(cells)
    return rows


def format_markdown(
    med: Measurements,
    labels: list[str],
    rat: dict[str, dict[str, float]],
    figures: tuple[Figure, ...] = FIGURES,
) -> str:
    """The same table as ``format_table``, as a Markdown table (figure and unit merged)."""
    lines = [
        "| " + " | ".join(["figure", *labels, *rat]) + " |",
        "|" + "---|" * (1 + len(labels) + len(rat)),
    ]
    for cells in _rows(med, labels, rat, figures, "×"):
        lines.append("| " + " | ".join([f"{cells[0]} ({cells[1]})", *cells[2:]]) + " |")
    return "\n".join(lines)


def format_table(
    med: Measurements,
    labels: list[str],
    rat: dict[str, dict[str, float]],
    figures: tuple[Figure, ...] = FIGURES,
) -> str:
    header = ["figure", "unit", *labels, *rat]
    rows = _rows(med, labels, rat, figures, "x")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def print_report(table: str, notes: list[str], errors: list[str], results: str,
                 errors_title: str = "ERRORS:") -> None:
    """The table, its notes, any errors and where the results were written."""
    print(table)
    print()
    for note in notes:
        print(f"* {note}")
    if errors:
        print("\n" + errors_title)
        for err in errors:
            print(f"  - {err}")
    print(f"\nresults: {results}")
