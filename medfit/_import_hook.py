"""Run the torchvision shim just before torchvision is first imported, whoever imports it."""
import importlib.abc
import sys


class _TorchvisionShimFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that defines torchvision's missing op schemas, then steps aside."""

    def find_spec(self, fullname, path, target=None):
        if fullname == "torchvision":
            uninstall()
            from medfit import _torchvision_shim

            _torchvision_shim.install()
        return None


_FINDER = _TorchvisionShimFinder()


def install() -> None:
    """Put the finder first on sys.meta_path (idempotent, cheap: torch is not imported)."""
    if "torchvision" in sys.modules:
        return
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    """Remove the finder (it is needed once)."""
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
