"""Turning runs into results: summaries, markdown tables, JSON, PNG charts
and the results section of a README.

- ``summarise(client, runs)``: median, min and max of every figure over the
  runs that worked, totals of requests and errors, or the reason none did.
- ``markdown(scenario, summaries, info)``: the scenario's table with ratios
  to its baseline row (fasttransport; pycurl for the fan-out scenarios),
  then its notes, then the system calls per request when counted.
- ``chart(scenario, summaries, path)``: a PNG of the scenario's panels
  (matplotlib, Agg backend); returns False with a reason when matplotlib is
  not installed.
- ``update_readme(path, sections)``: replaces what is between
  ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` for each section,
  appending a section whose markers are missing.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import textwrap
from typing import Any, Optional

from .scenarios import ROW_KINDS, Scenario, Summary

TOTALS = ("requests", "errors", "bad_bodies")


def summarise(client: str, runs: list[dict[str, Any]]) -> Summary:
    good = [r for r in runs if "status" not in r]
    if not good:
        last = runs[-1] if runs else {"status": "not run", "error": ""}
        return {"client": client, "status": last["status"], "error": last.get("error", "")}
    out: Summary = {
        "client": client,
        "version": good[0].get("version", ""),
        "runs": len(good),
    }
    for key, sample in good[0].items():
        if key in TOTALS or isinstance(sample, bool) or not isinstance(sample, (int, float)):
            continue
        values = [r[key] for r in good if isinstance(r.get(key), (int, float))]
        values = [v for v in values if not math.isnan(v)]
        if values:
            out[key] = statistics.median(values)
            out[f"{key}_min"] = min(values)
            out[f"{key}_max"] = max(values)
    for key in TOTALS:
        out[f"{key}_total"] = sum(r.get(key, 0) for r in good)
    errors = [r["last_error"] for r in good if r.get("last_error")]
    if errors:
        out["last_error"] = errors[-1]
    failed = [r for r in runs if "status" in r]
    if failed:
        out["failed_runs"] = len(failed)
        out["failed_error"] = failed[-1].get("error", "")
    return out


def _label(s: Summary) -> str:
    text: str = s["client"]
    if s.get("version") and s["version"] not in text:
        text += f" {s['version']}"
    if s["client"] in ROW_KINDS:
        text += f" ({ROW_KINDS[s['client']]})"
    if s.get("failed_runs"):
        text += f" ({s['failed_runs']} runs failed)"
    return text


def _status(s: Summary) -> str:
    error = s.get("error", "")
    if s["status"] == "not installed":
        return f"not installed ({error})" if error else "not installed"
    if s["status"] == "not supported yet":
        return "not supported yet"
    if s["status"] == "not available":
        return f"not available: {error}" if error else "not available"
    return f"{s['status']}: {error}" if error else s["status"]


def _cell_text(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(scenario: Scenario, summaries: list[Summary], info: dict[str, Any]) -> str:
    """The scenario's section: heading, what was run, the table, notes."""
    base = next(
        (s for s in summaries if s["client"] == scenario.baseline and "status" not in s), None
    )
    lines = [f"### `{scenario.name}`: {scenario.title}", ""]
    lines.append(info["how"])
    lines.append("")
    header = ["client" if scenario.kind != "parser" else "parser"]
    header += [c.label for c in scenario.columns]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for s in summaries:
        if "status" in s:
            cells = [_label(s), _cell_text(_status(s))] + [""] * (len(scenario.columns) - 1)
        else:
            cells = [_label(s)] + [c.cell(s, base) for c in scenario.columns]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", scenario.note]
    if info.get("syscalls"):
        lines += ["", *syscall_lines(info["syscalls"])]
    seen = [
        f"- {s['client']}: {_cell_text(s['last_error'])}"
        for s in summaries
        if s.get("last_error") and "status" not in s
    ]
    seen += [
        f"- {s['client']} (failed runs): {_cell_text(s['failed_error'])}"
        for s in summaries
        if s.get("failed_error")
    ]
    if seen:
        lines += ["", "Last error seen per client:", "", *seen]
    return "\n".join(lines) + "\n"


def syscall_lines(counted: dict[str, Any]) -> list[str]:
    """The system calls per request: a line saying why they were not
    counted, or a paragraph and a small table (``Suite.count_syscalls``)."""
    if counted.get("skipped"):
        return [f"System calls per request: not counted: {counted['skipped']}."]
    n1, n2 = counted["requests"]
    w1, w2 = counted["wrk_seconds"]
    lines = [
        f"System calls per request, counted with `strace -f -c` (every thread) in separate, "
        f"untimed runs, since strace slows the client: (calls of a run of {n2:,} requests − "
        f"calls of a run of {n1:,}) / {n2 - n1:,}, both after the same start-up and warm-up, "
        f"which cancels them; wrk: between a {w1} s and a {w2} s run, over the difference "
        "in its requests. Failed calls (EAGAIN and the like) in parentheses.",
        "",
        "| client | syscalls/req | most frequent, per request |",
        "|---|---|---|",
    ]
    for row, r in counted["rows"].items():
        label = f"{row} ({ROW_KINDS[row]})" if row in ROW_KINDS else row
        if "error" in r:
            cells = [label, "—", _cell_text(f"not counted: {r['error']}")]
        else:
            cells = [label, f"{r['per_req']:.1f}", _cell_text(r["breakdown"])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


# ---------------------------------------------------------------------------
# charts

FT_COLOR = "#d95f02"
PEER_COLOR = "#7570b3"
#: Rows that are not Python clients (wrk).
REFERENCE_COLOR = "#999999"


def chart(scenario: Scenario, summaries: list[Summary], path: str) -> Optional[str]:
    """Write the scenario's PNG; returns None, or why no chart was made."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib): no charts"
    rows = list(reversed(summaries))  # first client at the top
    panels = scenario.panels
    height = 1.2 + 0.42 * len(rows)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), height), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        names: list[str] = []
        values: list[float] = []
        lows: list[float] = []
        highs: list[float] = []
        colors: list[str] = []
        notes: list[Optional[str]] = []
        for s in rows:
            names.append(f"{s['client']} (C load generator)" if s["client"] in ROW_KINDS
                         else s["client"])
            value: Optional[float] = s.get(panel.key) if "status" not in s else None
            values.append(value if value is not None else 0.0)
            lows.append(s.get(f"{panel.key}_min", value) if value is not None else 0.0)
            highs.append(s.get(f"{panel.key}_max", value) if value is not None else 0.0)
            colors.append(FT_COLOR if _uses_fasttransport(s["client"]) else
                          REFERENCE_COLOR if s["client"] in ROW_KINDS else PEER_COLOR)
            notes.append(None if value is not None else _status(s) if "status" in s else "—")
        y = list(range(len(rows)))
        xerr = [
            [max(0.0, v - lo) for v, lo in zip(values, lows)],
            [max(0.0, hi - v) for v, hi in zip(values, highs)],
        ]
        ax.barh(y, values, color=colors, xerr=xerr, ecolor="#333333", capsize=3, height=0.65)
        ax.set_yticks(y)
        ax.set_yticklabels(names)
        top = max(highs + values + [1e-9])
        ax.set_xlim(0, top * 1.3)
        for yi, v, hi, note in zip(y, values, highs, notes):
            if note is not None:
                ax.text(top * 0.02, yi, note[:40], va="center", fontsize=8, color="#555555")
            else:
                ax.text(max(v, hi) + top * 0.02, yi, _short(v), va="center", fontsize=8)
        better = "higher is better" if panel.higher_is_better else "lower is better"
        ax.set_title(f"{panel.label}\n({better})", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    width = 75 * len(panels)  # characters that fit across the figure
    fig.suptitle("\n".join(textwrap.wrap(f"{scenario.name}: {scenario.title}", width)),
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def _uses_fasttransport(client: str) -> bool:
    """fasttransport's own rows and httpx / requests over its adapters."""
    return client.startswith("fasttransport") or "-ft" in client


def _short(v: float) -> str:
    if v >= 1000 or float(v).is_integer():
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


# ---------------------------------------------------------------------------
# README


def update_readme(path: str, sections: dict[str, str]) -> None:
    """Replace (or append) each named section between its markers."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for name, body in sections.items():
        start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
        block = f"{start}\n{body.rstrip()}\n{end}"
        pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
        if pattern.search(text):

            def replacement(_m: re.Match[str], block: str = block) -> str:
                return block

            text = pattern.sub(replacement, text)
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
