"""The shape of the package: run-folder file names in one module, few function-level imports, layers kept."""
import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from medfit.run_folder import FILES, ProtocolFolder, StudyFolder

PACKAGE = Path(__file__).resolve().parents[1] / "medfit"
# model.safetensors is also the standard name of a weight file in a Hugging Face folder, so it is not searched for
RUN_FILE_NAMES = sorted({*FILES.values(), *ProtocolFolder.files.values(), *StudyFolder.files.values(),
                         "best.ckpt", "last.ckpt"} - {"model.safetensors"})


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_run_folder_file_names_appear_in_one_module_only():
    offenders = []
    for path in _modules():
        if path.name == "run_folder.py":
            continue
        text = path.read_text()
        for name in RUN_FILE_NAMES:
            if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text):
                offenders.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert offenders == [], offenders


def _function_level_medfit_imports() -> list[str]:
    found = []
    for path in _modules():
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("medfit"):
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.module}")
                elif isinstance(node, ast.Import) and any(a.name.startswith("medfit") for a in node.names):
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} import")
    return found


def test_few_function_level_imports_of_medfit_modules():
    # allowed: the torchvision import hook (it must not import torch before it is needed)
    found = [f for f in _function_level_medfit_imports() if not f.startswith("_import_hook.py")]
    assert len(found) < 20, found


def test_layers_contract_holds():
    lint = shutil.which("lint-imports", path=str(Path(__file__).resolve().parents[1] / ".venv" / "bin")) \
        or shutil.which("lint-imports")
    if lint is None:
        pytest.fail("lint-imports is missing: `make test` installs import-linter from requirements.lock")
    proc = subprocess.run([lint], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "0 broken" in proc.stdout
