"""Whether the course's models fit before loading (`course.loading_memory`)."""
import pytest
import torch

from course import loading_memory
from course.models import cache_dir


def test_a_model_too_large_to_load_says_how_much_it_needs(monkeypatch):
    monkeypatch.setattr(loading_memory, "available_memory_gb", lambda device="cpu": 0.1)
    with pytest.raises(MemoryError, match=r"134,515,008 parameters: 0.5 GiB .* only 0.1 GiB"):
        loading_memory.check_fits_for_loading(cache_dir() / "models" / "smollm2-135m-instruct", torch.float32)
