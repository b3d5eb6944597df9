"""MkDocs hook: publish benchmarks/README.md (the latest benchmark tables)
and its charts under benchmark-results/, so the docs link to the same page
the repository keeps up to date, never to a copy."""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def on_files(files: Files, config) -> Files:
    files.append(File.generated(config, "benchmark-results/README.md",
                                abs_src_path=str(BENCH / "README.md")))
    for path in sorted((BENCH / "results").glob("*")):
        if path.suffix in (".png", ".json"):
            files.append(File.generated(config, f"benchmark-results/results/{path.name}",
                                        abs_src_path=str(path)))
    return files
