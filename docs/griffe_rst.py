"""Griffe extension for the API reference: module docstrings written for
help() use reStructuredText's definition lists (a term, then its text
indented) and simple tables (``====  ====`` borders). Markdown would run
them together into one paragraph, so they are rewritten here: each term
becomes a bold line, its text is dedented, and each simple table becomes a
Markdown table. The docstrings themselves are left as they are."""

from __future__ import annotations

import textwrap
from typing import List

import griffe


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _table(lines: List[str]) -> List[str]:
    """An RST simple table (top border, header, border, rows, border) as
    Markdown; a row whose first cell is empty, or that follows a row with
    an unclosed parenthesis, continues the one above."""
    border = lines[0]
    cols, start = [], None
    for i, ch in enumerate(border + " "):
        if ch == "=" and start is None:
            start = i
        elif ch != "=" and start is not None:
            cols.append((start, i))
            start = None

    def cells(line: str) -> List[str]:
        out = []
        for n, (a, _) in enumerate(cols):
            end = len(line) if n == len(cols) - 1 else cols[n + 1][0]
            out.append(line[a:end].strip())
        return out

    rows: List[List[str]] = []
    for line in lines[1:]:
        if not line.strip() or set(line.strip()) <= {"=", " "}:
            continue
        c = cells(line)
        open_paren = rows and any(x.count("(") > x.count(")") for x in rows[-1])
        if rows and (not c[0] or open_paren):     # the row above goes on
            rows[-1] = [f"{x} {y}".strip() for x, y in zip(rows[-1], c)]
        elif rows and rows[-1][0] and not any(c[1:]) and len(rows) > 1:
            rows[-1][0] += " " + c[0]        # a first cell wrapped onto the next line
        else:
            rows.append(c)
    md = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return md


def _tables(lines: List[str]) -> List[str]:
    out: List[str] = []
    i = 0
    while i < len(lines):
        if lines[i].startswith("=") and set(lines[i].strip()) <= {"=", " "}:
            j, borders = i, 0
            while j < len(lines) and lines[j].strip():
                if set(lines[j].strip()) <= {"=", " "}:
                    borders += 1
                j += 1
                if borders == 3:
                    break
            out += [""] + _table(lines[i:j]) + [""]
            i = j
        else:
            out.append(lines[i])
            i += 1
    return out


def markdown(doc: str) -> str:
    """doc with its definition lists and simple tables made Markdown."""
    lines = doc.splitlines()
    out: List[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and _indent(line) == 0 and nxt.strip() and _indent(nxt) >= 4:
            # the term may have started on earlier lines of this paragraph
            term = [line]
            while out and out[-1].strip() and _indent(out[-1]) == 0:
                term.insert(0, out.pop())
            body = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) >= 4):
                body.append(lines[i])
                i += 1
            out += ["", "**" + " ".join(t.strip() for t in term) + "**", ""]
            out += _tables(textwrap.dedent("\n".join(body)).splitlines()) + [""]
        else:
            out.append(line)
            i += 1
    return "\n".join(out)


class RstDefinitions(griffe.Extension):
    """Rewrite module docstrings for Markdown (see the module docstring)."""

    def on_module_members(self, *, mod: griffe.Module, **kwargs: object) -> None:
        if mod.docstring is not None:
            mod.docstring.value = markdown(mod.docstring.value)
