"""Time the course's set-up and test suite as a newcomer meets them: `python -m course.benchmark`.

Clones the committed repository into a temporary folder and runs `make setup` and `make test` there with
an empty model cache and no pip cache, then writes the times to `results/timings/setup.json`, from which
the README's figures are generated (`python -m course.readme`). Takes 5-15 minutes.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from course.config import hardware_description
from course.results import REPO_ROOT, results_dir


LOG = REPO_ROOT / "build" / "benchmark.log"  # what set-up and tests printed, for when one of them fails


def run_and_time(command: list[str], cwd: Path, env: dict) -> tuple[float, int]:
    """Run `command` in `cwd`, its output appended to the log; return (wall time in s, exit status)."""
    began = time.perf_counter()
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("a") as log:
        completed = subprocess.run(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    return time.perf_counter() - began, completed.returncode


def main() -> int:
    LOG.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="ftkit-benchmark-") as tmp:
        clone = Path(tmp) / "course"
        subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True,
                                text=True, check=True).stdout.strip()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FTKIT_", "VIRTUAL_ENV"))}
        env.update(FTKIT_CACHE=str(Path(tmp) / "cache"), PIP_NO_CACHE_DIR="1")
        setup_s, setup_rc = run_and_time(["make", "setup"], clone, env)
        test_s, test_rc = run_and_time(["make", "test"], clone, env) if setup_rc == 0 else (0.0, -1)
    entry = {"commit": commit, "setup_seconds": round(setup_s), "setup_ok": setup_rc == 0,
             "test_seconds": round(test_s), "tests_ok": test_rc == 0, "hardware": hardware_description(),
             "date": time.strftime("%Y-%m-%d")}
    path = results_dir() / "timings" / "setup.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entry, indent=1) + "\n")
    print(json.dumps(entry, indent=1))
    return 0 if entry["setup_ok"] and entry["tests_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
