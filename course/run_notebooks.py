"""Execute notebooks headless: `python -m course.run_notebooks --profile cpu --out build notebooks/*.ipynb`.

Each executed copy goes to `--out`, with `summary.json` and `summary.md` (time and status per notebook).
`--write-back` also stores the outputs in the source notebooks: that is how the committed notebooks get
the outputs of a full `cpu` run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path


def run_notebook(path: Path, out_dir: Path, timeout_s: int) -> dict:
    """Execute one notebook in its own folder; return name, seconds and status (`ok` or the error)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout_s, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    began = time.perf_counter()
    try:
        client.execute()
        status = "ok"
    except CellExecutionError as error:
        status = f"failed: {str(error).strip().splitlines()[-1][:300]}"
    seconds = time.perf_counter() - began
    nbformat.write(notebook, out_dir / path.name)
    return {"notebook": path.stem, "seconds": round(seconds, 1), "status": status}


def record_times(summary: list[dict]) -> None:
    """Keep each notebook's latest successful run time per profile in `results/timings/notebooks.json`;
    the README's notebook map is generated from it (`python -m course.readme`)."""
    from course.config import hardware_description
    from course.results import results_dir

    path = results_dir() / "timings" / "notebooks.json"
    times = json.loads(path.read_text()) if path.exists() else {}
    for entry in summary:
        if entry["status"] == "ok":
            times.setdefault(entry["notebook"], {})[entry["profile"]] = {
                "seconds": entry["seconds"], "hardware": hardware_description(), "date": time.strftime("%Y-%m-%d")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(times.items())), indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "gpu"])
    parser.add_argument("--out", type=Path, default=Path("build"))
    parser.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    parser.add_argument("--write-back", action="store_true", help="store the outputs in the source notebooks")
    args = parser.parse_args(argv)
    os.environ["FTKIT_PROFILE"] = args.profile  # kernels inherit it
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    args.out.mkdir(parents=True, exist_ok=True)
    summary = []
    for path in args.notebooks:
        print(f"{path.name} ({args.profile}) ...", flush=True)
        entry = run_notebook(path, args.out, args.timeout)
        print(f"  {entry['status']} in {entry['seconds']:.0f} s", flush=True)
        if args.write_back and entry["status"] == "ok":
            shutil.copyfile(args.out / path.name, path)
        summary.append({**entry, "profile": args.profile})
    record_times(summary)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    rows = "\n".join(f"| {e['notebook']} | {e['seconds']:.0f} | {e['status']} |" for e in summary)
    (args.out / "summary.md").write_text(f"| notebook | seconds ({args.profile}) | status |\n|---|---|---|\n{rows}\n")
    return 0 if all(e["status"] == "ok" for e in summary) else 1


if __name__ == "__main__":
    raise SystemExit(main())
