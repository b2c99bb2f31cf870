# The C extension _kernels.c.
import numpy as np

def read_numbers(values: list[object], out: np.ndarray) -> int: ...

class Walker:
    features_needed: int
    def __init__(
        self,
        children: np.ndarray,
        feature: np.ndarray,
        threshold: np.ndarray,
        value: np.ndarray,
        roots: np.ndarray,
        depth: int,
        float32: bool,
        cover: np.ndarray | None = None,
    ) -> None: ...
    def add(self, x: np.ndarray, out: np.ndarray, divisor: float, /) -> None: ...
    def explain(self, x: np.ndarray, phi: np.ndarray, divisor: float, /) -> None: ...
    def expectation(self, out: np.ndarray, divisor: float, /) -> None: ...
    def tabulate(self) -> int: ...
