"""The course report: one page with every notebook, the results table, the charts and the times."""
import json
import re

import nbformat
import pytest

from course import report
from course.readme import NOTEBOOKS
from course.results import REPO_ROOT, load_results

RESULTS = REPO_ROOT / "results"  # the committed results, not the test session's temporary folder


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A build folder as `make run` leaves it, for two notebooks (one failed), and the report written into it."""
    build = tmp_path_factory.mktemp("build")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1 + 1)", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="2\n")])])
    nbformat.write(notebook, build / "00_start_here.ipynb")
    summary = [{"notebook": "00_start_here", "seconds": 12.0, "status": "ok", "profile": "cpu"},
               {"notebook": "04_lora_distilbert", "seconds": 300.0, "status": "failed: <NameError> x",
                "profile": "cpu"}]
    (build / "summary.json").write_text(json.dumps(summary))
    assert report.main(["--out", str(build), "--results", str(RESULTS)]) == 0
    return build, (build / "report.html").read_text()


def test_report_lists_every_notebook_with_its_times(built):
    build, page = built
    for name in NOTEBOOKS:
        assert name in page
    recorded = json.loads((RESULTS / "timings" / "notebooks.json").read_text())
    for entry in recorded.values():
        if "cpu" in entry:
            assert f"{entry['cpu']['seconds'] / 60:.1f} min" in page
    assert "This build: 2 notebooks (cpu profile) in 5.2 min, 1 ok." in page
    assert "failed: &lt;NameError&gt; x" in page  # escaped, shown as it was
    total = sum(entry["cpu"]["seconds"] for entry in recorded.values() if "cpu" in entry)
    shown = re.search(r"take ([\d.]+) min in all", page)
    # One decimal of minutes; summed in another order the seconds may round the other way at a .x5 boundary.
    assert shown and abs(float(shown.group(1)) - total / 60) <= 0.05 + 1e-9


def test_report_links_the_executed_notebook_and_its_html_export(built):
    build, page = built
    assert 'href="00_start_here.ipynb"' in page and 'href="00_start_here.html"' in page
    assert "<pre>2\n</pre>" in (build / "00_start_here.html").read_text()  # the cell's output
    assert 'href="04_lora_distilbert.ipynb"' not in page  # no executed copy in this build folder


def test_report_holds_the_results_table_and_charts(built):
    _, page = built
    table = load_results(RESULTS)
    assert f"{len(table)} records from {table.notebook.nunique()} notebooks" in page
    rows = re.findall(r"<tr>\s*<td>", page.split('class="dataframe results"')[1])
    assert len(rows) == len(table)
    for method in set(table.method):
        assert method.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in page
    assert len(re.findall(r'<img alt="chart" src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}">', page)) == 3


def test_report_without_results_or_build(tmp_path):
    (tmp_path / "results").mkdir()
    page = report.render(tmp_path, tmp_path / "results")
    assert "0 records" in page and "This build: 0 notebooks" in page and "<img" not in page
