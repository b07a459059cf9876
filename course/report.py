"""The course report: `python -m course.report --out build` writes `build/report.html` after `make run`.

One self-contained page (charts embedded as PNG, no network):
- every notebook of the course with its status and time in this build (`build/summary.json`, written by
  `course.run_notebooks`), its recorded times per profile (`results/timings/notebooks.json`), a link to the
  executed copy in the build folder and to its HTML export (nbconvert, written next to it);
- the total time of the build and of the whole course as recorded;
- every notebook's headline results (`results/*.json`, read by `course.results.load_results`) as one table;
- charts: quality against the share of parameters trained, peak memory and wall time per method.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import json
import os
import time
from pathlib import Path

from course.notebooks import NOTEBOOKS
from course.results import REPO_ROOT, load_results, results_dir

SCORE_METRICS_EXCLUDED = ("perplexity", "trainable share")  # lower is better, or not a quality at all
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }
th { background: #f0f0f0; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; display: block; margin: 1em 0; }
.failed { color: #b00; } .muted { color: #777; }
"""


# ---------------------------------------------------------------------------------------------------
# What ran: notebooks, times, links
# ---------------------------------------------------------------------------------------------------

def read_json(path: Path, default):
    """The JSON in `path`, or `default` when the file does not exist."""
    return json.loads(path.read_text()) if path.exists() else default


def export_html(notebook: Path) -> Path:
    """Write `notebook` (an executed .ipynb) as HTML next to it, unless a newer export exists; return its path."""
    target = notebook.with_suffix(".html")
    if not target.exists() or target.stat().st_mtime < notebook.stat().st_mtime:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_filename(str(notebook))
        target.write_text(body)
    return target


def notebook_table(build: Path, results: Path, html_exports: bool = True):
    """One row per notebook of the course (`course.notebooks.NOTEBOOKS`): status and seconds in this build,
    recorded seconds per profile, and the paths of the executed copy and its HTML export ("" if absent)."""
    import pandas as pd

    this_run = {entry["notebook"]: entry for entry in read_json(build / "summary.json", [])}
    recorded = read_json(results / "timings" / "notebooks.json", {})
    rows = []
    for name, notebook in NOTEBOOKS.items():
        executed = build / f"{name}.ipynb"
        run = this_run.get(name, {})
        rows.append({
            "notebook": name, "teaches": notebook.teaches, "written": notebook.path.exists(),
            "status": run.get("status", ""), "profile": run.get("profile", ""), "seconds": run.get("seconds"),
            "cpu_seconds": recorded.get(name, {}).get("cpu", {}).get("seconds"),
            "gpu_seconds": recorded.get(name, {}).get("gpu", {}).get("seconds"),
            "executed": str(executed) if executed.exists() else "",
            "html": str(export_html(executed)) if html_exports and executed.exists() else "",
        })
    return pd.DataFrame(rows)


def _minutes(seconds) -> str:
    return "" if seconds is None or seconds != seconds else f"{seconds / 60:.1f} min"


def _link(path: str | Path, out: Path, label: str) -> str:
    if not path:
        return ""
    return f'<a href="{html.escape(os.path.relpath(path, out))}">{html.escape(label)}</a>'


def notebooks_html(table, out: Path) -> str:
    """The notebook table as HTML, with the build's and the recorded totals under it."""
    rows = []
    for row in table.itertuples():
        name = _link(NOTEBOOKS[row.notebook].path, out, row.notebook) if row.written else f"{html.escape(row.notebook)} (not written yet)"
        if row.status:
            status = html.escape(row.status)
        else:
            status = '<span class="muted">not in this build</span>' if row.written else ""
        css = ' class="failed"' if row.status and row.status != "ok" else ""
        links = " ".join(x for x in (_link(row.executed, out, "executed .ipynb"), _link(row.html, out, "HTML")) if x)
        rows.append(f"<tr><td>{name}</td><td>{html.escape(row.teaches)}</td><td{css}>"
                    f"{status}</td>"
                    f'<td class="number">{_minutes(row.seconds)}</td>'
                    f'<td class="number">{_minutes(row.cpu_seconds)}</td>'
                    f'<td class="number">{_minutes(row.gpu_seconds)}</td><td>{links}</td></tr>')
    header = ("<tr><th>notebook</th><th>what it teaches</th><th>status in this build</th><th>time in this build</th>"
              "<th>recorded, cpu profile</th><th>recorded, gpu profile</th><th>executed copy</th></tr>")
    ran = table[table.seconds.notna()]
    profiles = ", ".join(sorted(set(ran.profile) - {""})) or "no"
    totals = (f"<p>This build: {len(ran)} notebook{'' if len(ran) == 1 else 's'} ({profiles} profile) in "
              f"{_minutes(ran.seconds.sum()) or '0 min'}, "
              f"{int((ran.status == 'ok').sum())} ok. Recorded: the cpu profile's "
              f"{int(table.cpu_seconds.notna().sum())} notebooks take {_minutes(table.cpu_seconds.sum())} in all"
              + (f", the gpu profile's {int(table.gpu_seconds.notna().sum())} take {_minutes(table.gpu_seconds.sum())}"
                 if table.gpu_seconds.notna().any() else "") + ".</p>")
    return f"<table>{header}{''.join(rows)}</table>{totals}"


# ---------------------------------------------------------------------------------------------------
# What the notebooks found: the results table and charts
# ---------------------------------------------------------------------------------------------------

def results_frame(results: Path):
    """Every record of `results/*.json`, with the trainable share in percent, sorted by notebook."""
    table = load_results(results)
    table["trainable_pct"] = 100 * table.trainable_params / table.total_params
    return table.sort_values(["notebook", "task", "method"], kind="stable").reset_index(drop=True)


def results_html(table) -> str:
    """The results as an HTML table: what was trained, how well, with how much of the model, at what cost."""
    columns = {"notebook": "notebook", "method": "method", "task": "task", "metric": "metric", "value": "value",
               "baseline": "untrained", "trainable_params": "trainable params", "trainable_pct": "trainable %",
               "peak_memory_gb": "peak memory (GiB)", "wall_time_s": "wall time (s)", "profile": "profile"}
    shown = table[list(columns)].rename(columns=columns)
    formats = {"value": "{:.4g}", "untrained": "{:.4g}", "trainable params": "{:,.0f}", "trainable %": "{:.3g}",
               "peak memory (GiB)": "{:.2f}", "wall time (s)": "{:.1f}"}
    for column, fmt in formats.items():
        shown[column] = shown[column].map(lambda v, fmt=fmt: "" if v != v or v is None else fmt.format(v))
    return shown.to_html(index=False, escape=True, border=0, classes="results")


def figure_png(figure) -> str:
    """A matplotlib figure as an <img> with the PNG embedded (base64); the figure is closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return f'<img alt="chart" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def quality_chart(table):
    """Scores (0..1, higher is better) against the trainable share (% of the model, log scale), one colour
    per notebook; perplexities and records without trained parameters are left to the table."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from course.plots import set_theme

    excluded = table.metric.str.contains("|".join(SCORE_METRICS_EXCLUDED))
    points = table[~excluded & (table.trainable_params > 0) & table.value.between(0, 1)]
    if points.empty:
        return None
    set_theme()
    figure, ax = plt.subplots(figsize=(9, 5))
    sns.scatterplot(data=points, x="trainable_pct", y="value", hue="notebook", style="metric", s=70, ax=ax)
    ax.set_xscale("log")
    ax.set(title="Quality against the share of the model that trains",
           xlabel="trainable parameters (% of the model, log scale)",
           ylabel="score (0-1: accuracy, share in format, mean score)")
    ax.legend(fontsize=7, loc="best")
    return figure


def per_method_chart(table, column: str, *, title: str, xlabel: str, log: bool = False):
    """A horizontal bar per training run with its `column` value; None when no record has the column.

    A run that scored several tasks wrote several records with the same value: it gets one bar. A method
    trained more than once in a notebook (on other data) gets a bar per run, labelled with the task.
    """
    import matplotlib.pyplot as plt

    from course.plots import bar_chart

    rows = table.dropna(subset=[column]).drop_duplicates(["notebook", "method", column]).copy()
    if rows.empty:
        return None
    again = rows.duplicated(["notebook", "method"], keep=False)
    rows["run"] = (rows.notebook.str[:2] + " " + rows.method.str.slice(0, 45)
                   + ("; " + rows.task.str.slice(0, 25)).where(again, ""))
    figure, ax = plt.subplots(figsize=(9, 1.5 + 0.28 * len(rows)))
    bar_chart(rows, column, "run", hue="notebook", title=title, xlabel=xlabel, ylabel="notebook and method",
              ax=ax, fmt="{:,.1f}")
    if log:
        ax.set_xscale("log")
    ax.legend(fontsize=7, loc="lower right")
    return figure


def charts_html(table) -> str:
    figures = [
        quality_chart(table),
        per_method_chart(table, "peak_memory_gb", title="Peak memory while training",
                         xlabel="peak memory of the run (GiB: its model's weights and what training added)"),
        per_method_chart(table, "wall_time_s", title="Wall time of each training run",
                         xlabel="wall time (seconds, log scale)", log=True),
    ]
    return "\n".join(figure_png(f) for f in figures if f is not None)


# ---------------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------------

def render(out: Path, results: Path, html_exports: bool = True) -> str:
    """The report's HTML for the build folder `out` and the results folder `results`."""
    from course.config import hardware_description

    notebooks = notebook_table(out, results, html_exports)
    table = results_frame(results)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Fine-tuning course: report</title>
<style>{STYLE}</style></head><body>
<h1>Fine-tuning course: report</h1>
<p class="muted">Generated {time.strftime("%Y-%m-%d %H:%M")} on {html.escape(hardware_description())} by
<code>python -m course.report</code>; every figure comes from the files the notebooks wrote.</p>
<h2>Notebooks</h2>
{notebooks_html(notebooks, out)}
<h2>Results</h2>
<p>{len(table)} records from {table.notebook.nunique()} notebooks (<code>results/*.json</code>). <i>value</i> is the
metric after training, <i>untrained</i> the same metric before it.</p>
{charts_html(table)}
{results_html(table)}
</body></html>
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build"), help="the build folder of `make run`")
    parser.add_argument("--results", type=Path, default=None,
                        help="results folder (default: FTKIT_RESULTS, else results/)")
    parser.add_argument("--no-html-export", action="store_true", help="do not convert the executed notebooks to HTML")
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    args.out.mkdir(parents=True, exist_ok=True)
    page = render(args.out, args.results or results_dir(), html_exports=not args.no_html_export)
    (args.out / "report.html").write_text(page)
    print(f"wrote {args.out / 'report.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
