import pytest
import torch

from course import device_guard


def test_a_module_left_on_another_device_is_named():
    layer = torch.nn.Linear(4, 2)
    with pytest.raises(device_guard.WrongDevice, match="Linear ran with weight on cpu.*move the model"):
        device_guard.check_module_call(layer, (torch.zeros(1, 4),), required="cuda")


def test_a_batch_left_behind_is_caught_and_a_module_on_the_device_passes():
    layer = torch.nn.Linear(4, 2)
    device_guard.check_module_call(layer, (torch.zeros(1, 4),), required="cpu")
    with pytest.raises(device_guard.WrongDevice, match="argument 0 on meta|argument 0"):
        device_guard.check_module_call(torch.nn.Identity(), (torch.zeros(1, 4),), required="cuda")
    with torch.device("meta"):
        counted = torch.nn.Linear(4, 2)  # meta models, used for counting, are allowed
    device_guard.check_module_call(counted, (torch.zeros(1, 4, device="meta"),), required="cuda")


def test_the_installed_guard_stops_a_forward_pass_and_can_be_removed():
    handle = device_guard.install("meta")  # a device nothing here runs on: every real forward must fail
    try:
        with pytest.raises(device_guard.WrongDevice):
            torch.nn.Linear(4, 2)(torch.zeros(1, 4))
    finally:
        handle.remove()
    torch.nn.Linear(4, 2)(torch.zeros(1, 4))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_requiring_cuda_without_a_gpu_is_refused_at_once():
    with pytest.raises(device_guard.WrongDevice, match="no CUDA GPU"):
        device_guard.install("cuda")
