"""Progress bars for the data tools (tqdm, throttled; silent when disabled)."""
from tqdm import tqdm


def progress(total: int = None, desc: str = '', enabled: bool = True) -> tqdm:
    """A tqdm bar (``disable=True`` when not ``enabled``) updating at most a few times a second."""
    return tqdm(total=total, desc=desc, disable=not enabled, mininterval=0.5, dynamic_ncols=True)


def count_lines(path: str) -> int:
    """Fast line count (for the progress total)."""
    with open(path, 'rb') as f:
        return sum(chunk.count(b'\n') for chunk in iter(lambda: f.read(1 << 20), b''))
