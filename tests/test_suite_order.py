"""The suite's scheduling order (conftest.py): the slowest scopes first, each scope whole and in its own order."""
from pathlib import Path
from types import SimpleNamespace

from conftest import SLOWEST_FIRST, slowest_first

ROOT = Path(__file__).resolve().parents[1]


def test_every_listed_scope_exists():
    assert [scope for scope in SLOWEST_FIRST if not (ROOT / scope).is_file()] == []


def test_listed_scopes_go_first_in_the_listed_order_and_keep_their_own_order():
    item = lambda nodeid: SimpleNamespace(nodeid=nodeid)  # noqa: E731
    collected = [item("tests/test_a.py::one"), item(f"{SLOWEST_FIRST[1]}::Cell 0"), item(f"{SLOWEST_FIRST[1]}::Cell 1"),
                 item(f"{SLOWEST_FIRST[0]}::test"), item("tests/test_a.py::two")]
    assert [i.nodeid for i in slowest_first(collected)] == [
        f"{SLOWEST_FIRST[0]}::test", f"{SLOWEST_FIRST[1]}::Cell 0", f"{SLOWEST_FIRST[1]}::Cell 1",
        "tests/test_a.py::one", "tests/test_a.py::two"]
