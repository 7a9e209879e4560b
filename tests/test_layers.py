"""The packages import in one direction: `dfgen` (tensor ops, file I/O, settings, the contract) at
the bottom; `datamodules` and `lightning_modules.networks` on it; the LightningModules on those;
the callbacks on `dfgen` alone; the CLI (`lightning_modules.cli`) on everything."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("dfgen", "datamodules", "lightning_modules", "callbacks", "synthetic")

# layer -> the layers it may import (itself included)
ALLOWED = {
    "dfgen": {"dfgen"},
    "datamodules": {"dfgen", "datamodules"},
    "lightning_modules.networks": {"dfgen", "lightning_modules.networks"},
    "lightning_modules": {"dfgen", "datamodules", "lightning_modules.networks", "lightning_modules"},
    "callbacks": {"dfgen", "callbacks"},
    "lightning_modules.cli": {"dfgen", "datamodules", "lightning_modules.networks", "lightning_modules", "callbacks",
                              "lightning_modules.cli"},
    "synthetic": {"dfgen", "datamodules", "synthetic"},  # drawn datasets, not installed: nothing installed imports them
}  # fmt: skip


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name of the project, or None for anything else."""
    for layer in sorted(ALLOWED, key=len, reverse=True):  # the most specific layer first
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module an import statement of the file names (function-level imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from package import module`
    return names


def project_files() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (REPO / package).rglob("*.py"))


def test_the_layer_table_knows_every_module():
    assert all(layer_of(module_name(path)) for path in project_files())
    assert layer_of("lightning_modules.networks.pyramid") == "lightning_modules.networks"
    assert layer_of("lightning_modules.cli") == "lightning_modules.cli"
    assert layer_of("torch.nn") is None


def upward_imports(path: Path, module: str) -> list[str]:
    layer = layer_of(module)
    return sorted(name for name in imported_modules(path) if (layer_of(name) or layer) not in ALLOWED[layer])


def test_imports_point_down():
    wrong = {module_name(path): upward_imports(path, module_name(path)) for path in project_files()}
    wrong = {module: names for module, names in wrong.items() if names}
    assert not wrong, f"imports against the layers (file: modules): {wrong}"


def test_the_checker_finds_an_upward_import(tmp_path):
    file = tmp_path / "reader.py"
    file.write_text("def read():\n    from lightning_modules.singan import SinGAN\n    return SinGAN\n")
    assert upward_imports(file, "datamodules.reader") == ["lightning_modules.singan", "lightning_modules.singan.SinGAN"]
    assert upward_imports(file, "lightning_modules.cli") == []


def test_importing_data_or_callbacks_loads_no_method():
    code = (
        "import sys, datamodules, callbacks\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('lightning_modules'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)
