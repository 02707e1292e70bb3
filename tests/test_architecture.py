"""The package's dependency rules, read from its own imports with ast (no code runs).

Every ``import`` and ``from ... import`` of every module counts, also those inside
functions. The rules (subpackages by role, the commands on top):

- no import circle between modules;
- data imports nothing else of the project; models nothing of data, training, analysis,
  inference or config; inference nothing of training, analysis or config; analysis
  nothing of training or config; config nothing of training; tuning (the search) and
  benchmarking (the benchmark's measurements) sit above training, and nothing but the
  commands imports them;
- no subpackage imports an entry point (the commands), their front (``cli``) or the
  top-level package; every module may import ``errors``, which imports nothing of the project;
- analysis/plots.py, curve_plots.py, report.py and tables.py are pure: no torch or Lightning, and no calls
  that write files (open, savefig, write_text, to_csv);
- importing the package, and ``python -m fmnist_lightning.results --help``, import no torch.
"""

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import fmnist_lightning

PACKAGE_DIR = Path(fmnist_lightning.__file__).parent
ENTRY_POINTS = {
    "train",
    "evaluate",
    "ensemble",
    "predict",
    "export",
    "results",
    "search",
    "benchmark",
    "serve",
}
# The parts of one command each (the search, the benchmark): only the commands import them.
ABOVE_TRAINING = ("tuning", "benchmarking")
FORBIDDEN = {
    "data": {"models", "training", "analysis", "inference", "config", *ABOVE_TRAINING},
    "models": {"data", "training", "analysis", "inference", "config", *ABOVE_TRAINING},
    "inference": {"training", "analysis", "config", *ABOVE_TRAINING},
    "analysis": {"training", "config", *ABOVE_TRAINING},
    "config": {"training", *ABOVE_TRAINING},
    "training": set(ABOVE_TRAINING),
    # The search's parts and the benchmark's: each above training, beside the other.
    "tuning": {"benchmarking"},
    "benchmarking": {"tuning"},
}
PURE = (
    "analysis/plots.py",
    "analysis/curve_plots.py",
    "analysis/report.py",
    "analysis/tables.py",
)
HEAVY = ("torch", "lightning", "pytorch_lightning", "torchvision", "torchmetrics")
WRITES = {"open", "savefig", "write_text", "write_bytes", "to_csv"}
NOT_IMPORTED = ("torch", "lightning", "PIL")


def module_names(package_dir: Path) -> dict[str, Path]:
    """Dotted module name → file, for every .py of the package (a package by its __init__)."""
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(path: Path, module: str, modules: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """Every name ``path`` imports, as (dotted name, line); names of the package resolved to a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield (candidate if candidate in modules else base), node.lineno


def owning_module(name: str, modules: dict[str, Path]) -> str | None:
    """The project module a dotted name lives in (None: not the project's)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(package_dir: Path) -> dict[str, dict[str, int]]:
    """module → {project module it imports: line of the first such import}."""
    modules = module_names(package_dir)
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges = graph.setdefault(module, {})
        for name, line in imports_of(path, module, modules):
            target = owning_module(name, modules)
            if target and target != module:
                edges.setdefault(target, line)
    return graph


def circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def role(module: str) -> str:
    """The subpackage of a module, "entry" for a command, "package" for the top-level __init__."""
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    if parts[1] in FORBIDDEN or parts[1] == "errors":
        return parts[1]
    return "entry" if parts[1] in ENTRY_POINTS | {"cli"} else "top"


def rule_violations(graph: dict[str, dict[str, int]]) -> list[str]:
    problems = []
    for source, targets in sorted(graph.items()):
        for target, line in sorted(targets.items()):
            where = f"{source} (line {line}) imports {target}"
            source_role, target_role = role(source), role(target)
            if target_role in FORBIDDEN.get(source_role, set()):
                problems.append(f"{where}: {source_role}/ may not import {target_role}/")
            if source_role == "errors":
                problems.append(f"{where}: errors imports nothing of the project")
            if source_role in FORBIDDEN and target_role in ("entry", "package", "top"):
                problems.append(f"{where}: a subpackage may not import a command or the package")
    return problems


def test_there_is_no_import_circle():
    found = circles(import_graph(PACKAGE_DIR))
    assert found == [], "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_each_layer_imports_only_the_layers_below_it():
    assert rule_violations(import_graph(PACKAGE_DIR)) == []


def test_the_checks_see_a_circle_and_a_forbidden_import(tmp_path):
    """The rules above are only as good as the parser: try them on a package that breaks both."""
    package = tmp_path / "fmnist_lightning"
    for folder in ("data", "models"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "data" / "a.py").write_text(
        "def f():\n    from fmnist_lightning.models.b import g\n"
    )
    (package / "models" / "b.py").write_text("from fmnist_lightning.data import a\n")
    graph = import_graph(package)
    assert circles(graph) == [["fmnist_lightning.data.a", "fmnist_lightning.models.b"]]
    assert len(rule_violations(graph)) == 2  # data -> models and models -> data


def test_every_subpackage_module_has_its_place():
    roles = {role(module) for module in module_names(PACKAGE_DIR)}
    assert roles <= {*FORBIDDEN, "entry", "package", "errors"}, roles


@pytest.mark.parametrize("relative", PURE)
def test_plots_report_and_tables_are_pure(relative):
    path = PACKAGE_DIR / relative
    modules = module_names(PACKAGE_DIR)
    module = "fmnist_lightning." + relative.removesuffix(".py").replace("/", ".")
    heavy = [
        f"{name} (line {line})"
        for name, line in imports_of(path, module, modules)
        if name.split(".")[0] in HEAVY
    ]
    assert heavy == [], f"{relative} imports {heavy}"
    writes = [
        f"{getattr(node.func, 'attr', getattr(node.func, 'id', '?'))} (line {node.lineno})"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) in WRITES or getattr(node.func, "attr", None) in WRITES)
    ]
    assert writes == [], f"{relative} writes files: {writes}"


def loaded_after(code: str) -> list[str]:
    """Which of NOT_IMPORTED a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport sys\nprint(sorted(m for m in {NOT_IMPORTED!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return eval(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_importing_the_package_imports_no_torch():
    assert loaded_after("import fmnist_lightning") == []


@pytest.mark.slow
def test_the_results_command_imports_no_torch():
    run_results_help = (
        "import contextlib, io, runpy, sys\n"
        "sys.argv = ['fmnist_lightning.results', '--help']\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    runpy.run_module('fmnist_lightning.results', run_name='__main__')"
    )
    assert loaded_after(run_results_help) == []
    result = subprocess.run(
        [sys.executable, "-m", "fmnist_lightning.results", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "run folders or sweep folders" in result.stdout


def test_the_lazy_package_still_hands_out_the_inference_api():
    from fmnist_lightning import Classifier, Predictions, load_classifier
    from fmnist_lightning.inference import classifier

    assert (Classifier, Predictions, load_classifier) == (
        classifier.Classifier,
        classifier.Predictions,
        classifier.load_classifier,
    )
    assert {"Classifier", "Predictions", "load_classifier"} <= set(dir(fmnist_lightning))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        fmnist_lightning.nothing  # noqa: B018
