"""The training Job: turns a ModelDeployment training spec into a verified model artifact.

`train()` is the whole job as a function; `modelops-train` (cli.py) wraps it for the container.
"""

from .errors import TrainingError
from .training import train

__all__ = ["TrainingError", "train"]
