"""The offline GPU bundle (`tests/gpu_bundle.py`): what it carries, bitsandbytes cut to one CUDA build, and an
emulated Hub rebuilt from carried tokenizers that is the same as one built from the packaged models."""
import shutil
import sys
import zipfile
from pathlib import Path

import pytest
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import emulated_hub  # noqa: E402
import gpu_bundle  # noqa: E402


def test_it_carries_what_the_notebooks_import_and_not_what_the_machine_has():
    carried = gpu_bundle.carried_packages()
    for needed in ("transformers", "peft", "trl", "bitsandbytes", "datasets", "nbval", "ipykernel", "pyzmq",
                   "rouge-score", "chitchat-dataset"):
        assert needed in carried, needed
    assert not set(carried) & (gpu_bundle.ON_THE_MACHINE | gpu_bundle.NOT_NEEDED_TO_RUN)
    from importlib.metadata import version

    assert carried["transformers"] == version("transformers")  # the version the CPU suite tested


def test_bitsandbytes_keeps_one_cuda_build_and_its_record_agrees(tmp_path):
    wheel = tmp_path / "bitsandbytes-0-py3-none-any.whl"
    libraries = ["libbitsandbytes_cpu.so", "libbitsandbytes_cuda126.so", "libbitsandbytes_cuda130.so",
                 "libbitsandbytes_rocm72.so"]
    with zipfile.ZipFile(wheel, "w") as archive:
        for name in libraries + ["__init__.py"]:
            archive.writestr(f"bitsandbytes/{name}", name)
        archive.writestr("bitsandbytes-0.dist-info/RECORD",
                         "".join(f"bitsandbytes/{name},sha256=x,1\n" for name in libraries + ["__init__.py"]))
    gpu_bundle.keep_one_cuda_build(wheel, "13.0")
    with zipfile.ZipFile(wheel) as archive:
        kept = sorted(n.split("/")[1] for n in archive.namelist() if n.startswith("bitsandbytes/"))
        record = archive.read("bitsandbytes-0.dist-info/RECORD").decode()
    assert kept == ["__init__.py", "libbitsandbytes_cpu.so", "libbitsandbytes_cuda130.so"]
    assert "cuda126" not in record and "rocm72" not in record and "cuda130" in record
    with pytest.raises(SystemExit, match=r"no libbitsandbytes_cuda118.so: .* --cuda \(13.0\)"):
        gpu_bundle.keep_one_cuda_build(wheel, "11.8")


def test_models_rebuilt_from_carried_tokenizers_equal_the_packaged_build(tmp_path):
    packaged, carried, rebuilt = tmp_path / "packaged", tmp_path / "carried", tmp_path / "rebuilt"
    emulated_hub.build_models(packaged)  # here, not in the shared cache, which another worker may be building
    for repo_id in emulated_hub.TOKENIZER_REPOS:  # what the bundle copies: tokenizers, no weights
        shutil.copytree(emulated_hub.repo_folder(packaged, repo_id), emulated_hub.repo_folder(carried, repo_id),
                        ignore=shutil.ignore_patterns(gpu_bundle.EMULATED_HUB_WEIGHTS))
    emulated_hub.build_models(rebuilt, tokenizers_from=carried)
    snapshot = Path("snapshots") / emulated_hub.COMMIT
    repos = sorted(path.name for path in (packaged / "hub").glob("models--*"))
    assert len(repos) == 3 and repos == sorted(path.name for path in (rebuilt / "hub").glob("models--*"))
    for repo in repos:
        original = load_file(packaged / "hub" / repo / snapshot / "model.safetensors")
        again = load_file(rebuilt / "hub" / repo / snapshot / "model.safetensors")
        assert original.keys() == again.keys(), repo
        assert all((original[k] == again[k]).all() for k in original), repo
        for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):
            assert (packaged / "hub" / repo / snapshot / name).read_text() == (
                rebuilt / "hub" / repo / snapshot / name).read_text(), (repo, name)
