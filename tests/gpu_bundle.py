"""Everything `make gpu-smoke` needs on a CUDA machine that has PyTorch but no internet, in one folder.

    make gpu-bundle                                        # here, with internet to the package index
    bash tests/gpu_smoke_offline.sh build/gpu-bundle       # there, in a copy of the repository

The folder holds:
- `wheels/`: the course's pinned libraries and the packages they need that a CUDA image with PyTorch
  usually lacks (the Jupyter kernel for nbval, trl, datasets, bitsandbytes, the data packages), for that
  machine's Python. The versions are the ones installed here, so the GPU run uses what the CPU suite tested.
  bitsandbytes keeps only the kernels of one CUDA version (`--cuda`, default 13.0): its full wheel
  carries ten builds, 43 MB.
- `cache/`: the VADER sentences (`FTKIT_CACHE/data`) and the emulated Hub's tokenizers
  (`tests/emulated_hub.py`). Its tiny models (118 MB, mostly embeddings) and data sets are rebuilt there,
  from a seed and from the VADER files, in seconds: that keeps the folder to a few dozen MB.
"""
from __future__ import annotations

import argparse
import importlib.metadata as metadata
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # course, and emulated_hub beside this file

# What the notebooks import or load, beyond PyTorch; their dependencies are found from this environment.
ROOTS = ["transformers", "peft", "trl", "bitsandbytes", "datasets", "accelerate", "huggingface-hub", "rouge-score",
         "vaderSentiment", "ipywidgets", "nbval", "pytest-xdist", "chitchat-dataset", "chatterbot-corpus"]
# Left out: PyTorch and what it brings, and packages a CUDA image for machine learning holds anyway (numerical,
# plotting, pytest itself, HTTP): carrying them would shadow the machine's own builds, and some are large.
# pytest-xdist is carried, for the `--no-loadscope-reorder` that the suites use.
ON_THE_MACHINE = {
    "absl-py", "anyio", "attrs", "certifi", "charset-normalizer", "click", "cloudpickle", "contourpy", "coverage",
    "cycler", "filelock", "fonttools", "h11", "hf-xet", "idna", "iniconfig", "jinja2", "joblib",
    "kiwisolver", "markdown-it-py", "markupsafe", "matplotlib", "mdurl", "mpmath", "narwhals", "networkx", "numpy",
    "packaging", "pandas", "pillow", "pluggy", "psutil", "pyarrow", "pygments", "pyparsing", "pytest",
    "python-dateutil", "pyyaml", "regex", "requests", "rich", "safetensors", "scikit-learn",
    "scipy", "seaborn", "setuptools", "shellingham", "six", "sympy", "threadpoolctl", "tokenizers", "torch", "tqdm",
    "triton", "typer", "typing-extensions", "urllib3", "xxhash",
}
# Not needed to run a notebook: the kernel's debugger, IPython's completion, the classic Notebook's widget
# files (12.5 MB of wheels together).
NOT_NEEDED_TO_RUN = {"debugpy", "jedi", "widgetsnbextension"}
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_26_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64", "manylinux_2_5_x86_64"]
EMULATED_HUB_WEIGHTS = "model.safetensors"


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def carried_packages() -> dict[str, str]:
    """Name -> version installed here, for ROOTS and everything they need, less ON_THE_MACHINE and NOT_NEEDED_TO_RUN."""
    from packaging.requirements import Requirement

    found: dict[str, str] = {}
    todo = list(ROOTS)
    while todo:
        name = normalized(todo.pop())
        if name in found or name in ON_THE_MACHINE or name in NOT_NEEDED_TO_RUN:
            continue
        distribution = metadata.distribution(name)
        found[name] = distribution.version
        for line in distribution.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return dict(sorted(found.items()))


def download(packages: dict[str, str], folder: Path, python_version: str) -> None:
    """Wheels for `python_version` on x86-64 Linux; a package published as source only is built here."""
    platforms = [option for platform in PLATFORMS for option in ("--platform", platform)]
    pip = [sys.executable, "-m", "pip"]
    for name, version in packages.items():
        wanted = f"{name}=={version}"
        got = subprocess.run(pip + ["download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version",
                                    python_version, "--implementation", "cp", *platforms, "--dest", str(folder),
                                    wanted], capture_output=True, text=True)
        if got.returncode == 0:
            continue
        # A package published as source only (rouge-score) is built here: fine for pure Python, wrong otherwise.
        built = subprocess.run(pip + ["wheel", "--quiet", "--no-deps", "--wheel-dir", str(folder), wanted],
                               capture_output=True, text=True)
        wheel = next((w for w in folder.glob("*.whl") if [normalized(w.name.split("-")[0]), w.name.split("-")[1]]
                      == [name, version]), None)
        if built.returncode != 0 or wheel is None or not wheel.name.endswith("-none-any.whl"):
            raise SystemExit(f"No wheel of {wanted} for Python {python_version} on x86-64 Linux:\n{got.stderr[-1500:]}"
                             "Check that the GPU machine's Python is the one given with --python-version.")


def keep_one_cuda_build(wheel: Path, cuda: str) -> None:
    """Rewrite bitsandbytes' wheel with the native library of one CUDA version (and the CPU one) only."""
    keep = f"libbitsandbytes_cuda{cuda.replace('.', '')}.so"
    dropped = lambda name: re.search(r"libbitsandbytes_(cuda|rocm)\d+\.so$", name) and not name.endswith(keep)  # noqa: E731
    slim = wheel.with_suffix(".slim")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as target:
        names = source.namelist()
        if not any(name.endswith(keep) for name in names):
            builds = [b for name in names for b in re.findall(r"libbitsandbytes_cuda(\d+)\.so$", name)]
            versions = ", ".join(f"{b[:-1]}.{b[-1]}" for b in sorted(builds, key=int))
            raise SystemExit(f"{wheel.name} has no {keep}: "
                             f"choose one of its CUDA versions with --cuda ({versions}).")
        for name in names:
            if dropped(name):
                continue
            data = source.read(name)
            if name.endswith(".dist-info/RECORD"):
                data = "".join(line + "\n" for line in data.decode().splitlines()
                               if not dropped(line.split(",")[0])).encode()
            target.writestr(source.getinfo(name), data)
    slim.replace(wheel)


def copy_cache(target: Path) -> None:
    """The VADER files and the emulated Hub without its weights (rebuilt from a seed where it runs)."""
    import emulated_hub
    from course.data import prepare_vader
    from course.models import cache_dir

    vader = prepare_vader()
    shutil.copytree(vader, target / "data" / vader.name, dirs_exist_ok=True)
    hub = emulated_hub.build(cache_dir() / "emulated-hub")
    for repo_id in emulated_hub.TOKENIZER_REPOS:
        repo = emulated_hub.repo_folder(hub, repo_id)
        shutil.copytree(repo, emulated_hub.repo_folder(target / "emulated-hub", repo_id), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(EMULATED_HUB_WEIGHTS))


def megabytes(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default: 3.12)")
    parser.add_argument("--cuda", default="13.0", help="the CUDA version of the GPU machine's PyTorch (default: 13.0)")
    args = parser.parse_args(argv)
    shutil.rmtree(args.folder, ignore_errors=True)
    wheels = args.folder / "wheels"
    wheels.mkdir(parents=True)
    packages = carried_packages()
    download(packages, wheels, args.python_version)
    keep_one_cuda_build(next(wheels.glob("bitsandbytes-*.whl")), args.cuda)
    copy_cache(args.folder / "cache")
    print(f"{len(packages)} packages for Python {args.python_version}: {megabytes(wheels):.1f} MB of wheels; "
          f"cache {megabytes(args.folder / 'cache'):.1f} MB; {args.folder} {megabytes(args.folder):.1f} MB in all")


if __name__ == "__main__":
    main()
