"""Reports: results/<machine>/<stem>.{json,md[,png]}, each written whole and marked as sanrt's."""
from __future__ import annotations

from pathlib import Path

from sanrt.runtime.machine import machine_slug
from sanrt.runtime.outputs import save_json, save_markdown

RESULTS = Path(__file__).resolve().parents[1] / "results"


def results_dir(folder: Path | None = None, slug: str | None = None) -> Path:
    """The report folder: `folder`, else benchmarks/results/<machine slug> (made if missing)."""
    out = Path(folder) if folder is not None else RESULTS / (slug or machine_slug())
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_report(folder: Path, stem: str, data: dict, markdown: str, plot=None) -> list[Path]:
    """<stem>.json (data), <stem>.md (markdown) and, with plot(data, path), <stem>.png."""
    written = [folder / f"{stem}.json", folder / f"{stem}.md"]
    save_json(data, written[0])
    save_markdown(markdown, written[1])
    if plot is not None:
        written.append(folder / f"{stem}.png")
        plot(data, written[-1])
    return written
