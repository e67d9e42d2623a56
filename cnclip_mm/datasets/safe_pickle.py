"""Unpickling of dataset files (LMDB pairs, CIFAR) that refuses anything but plain data.

A pickle can run code on load; the formats read here only hold builtins and numpy arrays, so any
other global is rejected.
"""
import io
import pickle
from typing import Any

_NUMPY_GLOBALS = {
    ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
    ('numpy', 'ndarray'), ('numpy', 'dtype'),
    ('numpy.core.multiarray', 'scalar'), ('numpy._core.multiarray', 'scalar'),
}


class _DataUnpickler(pickle.Unpickler):

    def __init__(self, file, allow_numpy: bool, **kwargs):
        super().__init__(file, **kwargs)
        self.allow_numpy = allow_numpy

    def find_class(self, module: str, name: str):
        if (module, name) == ('_codecs', 'encode'):  # how protocol <= 2 stores bytes
            return super().find_class(module, name)
        if self.allow_numpy and (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f'refusing to load global {module}.{name} from a data file')


def safe_loads(data: bytes, allow_numpy: bool = False, encoding: str = 'ASCII') -> Any:
    """``pickle.loads`` limited to builtins (and numpy arrays when ``allow_numpy``)."""
    return _DataUnpickler(io.BytesIO(data), allow_numpy, encoding=encoding).load()
