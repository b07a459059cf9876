"""The rule the module map shows (docs/architecture.md): the library never imports the course machinery,
and neither package's imports form a cycle (imports inside functions count: a cycle hidden in a function
still means neither module can be read, or loaded, without the other)."""
import pytest

from course import module_map


@pytest.mark.parametrize("path", module_map.modules("ftkit"), ids=lambda p: p.name)
def test_the_library_never_imports_the_course(path):
    reached = [name for name in module_map.imports_of_ours(path) if name.startswith("course.")]
    assert not reached, f"ftkit/{path.name} imports {reached}: move that code to course/ or pass it in"


@pytest.mark.parametrize("package", module_map.PACKAGES)
def test_imports_form_no_cycle(package):
    graph = {f"{package}.{p.stem}": set(module_map.imports_of_ours(p)) for p in module_map.modules(package)}
    done, stack = set(), []

    def visit(name):
        if name in stack:
            raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(name):] + [name]))
        if name in done or name not in graph:
            return
        stack.append(name)
        for other in sorted(graph[name]):
            visit(other)
        stack.pop()
        done.add(name)

    for name in graph:
        visit(name)


def test_every_module_says_what_it_holds():
    for package in module_map.PACKAGES:
        for path in module_map.modules(package):
            assert len(module_map.summary(path)) > 20, f"{package}/{path.name} needs a docstring that says what it holds"


def test_the_map_sees_an_import_of_the_course(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('"""A module."""\ndef f():\n    from course import results\n    from course.config import setup\n')
    assert module_map.imports_of_ours(bad) == ["course.config", "course.results"]
