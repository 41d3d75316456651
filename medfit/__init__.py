"""medfit: medical image classifiers from small clinical datasets, from one config and one command."""
from medfit._import_hook import install as _install_torchvision_hook

__version__ = "0.1.0"

_install_torchvision_hook()
