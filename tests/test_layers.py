"""The package's architecture holds: layers import only downwards, no module cycles, no torch on `import llmcourse`."""
import subprocess
import sys
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

import llmcourse

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["cli", "course", "notebook", "evaluation", "training", "models", "data", "plots", "core"]


def test_lint_imports_keeps_the_layers_contract():
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml")) == 0  # EXIT_STATUS_SUCCESS; it prints why not


def test_every_module_sits_in_a_layer_of_the_contract():
    top = sorted(p.name for p in (ROOT / "llmcourse").glob("*.py"))
    assert top == ["__init__.py", "__main__.py"]
    folders = sorted(p.parent.name for p in (ROOT / "llmcourse").glob("*/__init__.py"))
    assert folders == sorted(LAYERS)
    assert "datasets" not in folders  # the shipped data is a folder, never a module


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph("llmcourse")
    cycles = [(a, b) for a in sorted(graph.modules) for b in graph.find_modules_directly_imported_by(a)
              if a != b and graph.chain_exists(importer=b, imported=a)]
    assert cycles == []


def test_import_llmcourse_loads_no_torch():
    code = "import llmcourse, sys; assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'llmcourse' in m)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_every_exported_name_resolves():
    for name in llmcourse.__all__:
        assert getattr(llmcourse, name) is not None, name
