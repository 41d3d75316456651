"""The install's import-order guarantee: torchvision imports in a fresh interpreter that never imported medfit."""
import subprocess
import sys


def test_torchvision_imports_in_a_fresh_interpreter_without_medfit():
    """The venv's .pth (written by `make install`) defines torchvision's C++ op schemas before torchvision loads."""
    code = "import torchvision, timm; from torchvision.ops import nms; print(torchvision.__version__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (
        "torchvision failed to import without medfit: run `make install` (it writes medfit-torchvision-shim.pth "
        "into the venv's site-packages)\n" + proc.stderr[-2000:])
