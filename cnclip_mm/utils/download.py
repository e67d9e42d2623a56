"""Download released weights once into a local cache: resumable, hash-checked, offline afterwards.

The cache is ``$CNCLIP_HOME`` (default ``~/.cache/cnclip_mm``, under ``$XDG_CACHE_HOME`` when set).
A file name carrying ``-<hex>.`` (mmengine / torch hub convention, e.g. ``...-6a2b3eb2.pth``) names the
leading hex digits of its SHA-256; an index entry may give the full digest. Downloads are data only:
callers load them with ``torch.load(weights_only=True)``.
"""
import hashlib
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Optional

CHUNK = 1 << 20
HASH_IN_NAME = re.compile(r'-([a-f0-9]{8,64})\.[A-Za-z0-9]+$')


class DownloadError(RuntimeError):
    """A file could not be fetched (offline, HTTP error) or its content fails the hash check."""


def cache_dir() -> Path:
    """Root of the download cache: ``$CNCLIP_HOME`` or ``<user cache>/cnclip_mm``."""
    home = os.environ.get('CNCLIP_HOME')
    if home:
        return Path(home).expanduser()
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join('~', '.cache')
    return Path(base).expanduser() / 'cnclip_mm'


def is_url(text: str) -> bool:
    return isinstance(text, str) and urllib.parse.urlparse(text).scheme in ('http', 'https')


def expected_hash(url: str, sha256: Optional[str] = None) -> Optional[str]:
    """The (prefix of the) SHA-256 to check: the index's full digest, else the one in the file name."""
    if sha256:
        return sha256.lower()
    match = HASH_IN_NAME.search(_basename(url))
    return match.group(1) if match else None


def file_sha256(path: os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


def check_hash(path: os.PathLike, expected: Optional[str], url: str,
               remedy: str = 'Delete it to download again.') -> None:
    """Raise :class:`DownloadError` when ``path``'s SHA-256 does not start with ``expected``; ``remedy``
    ends the message."""
    if not expected:
        return
    actual = file_sha256(path)
    if not actual.startswith(expected):
        raise DownloadError(f'{path} is corrupt or not the released file: its SHA-256 is {actual}, expected '
                            f'{expected}... (from {url}). {remedy}')


def cached_path(url: str, subdir: str = 'checkpoints', filename: Optional[str] = None) -> Path:
    """Where :func:`download` keeps ``url`` (whether or not it is there yet)."""
    return cache_dir() / subdir / (filename or _basename(url))


def unreachable(url: str, timeout: float = 10.0) -> Optional[str]:
    """Why ``url`` cannot be fetched from here (no route, refused, HTTP error), or None when it can: one
    ``HEAD`` request."""
    request = urllib.request.Request(url, method='HEAD')
    try:
        urllib.request.urlopen(request, timeout=timeout).close()
    except urllib.error.HTTPError as err:
        if err.code not in (403, 405, 501):  # servers that refuse HEAD but serve GET
            return f'HTTP {err.code} {err.reason}'
    except (urllib.error.URLError, OSError) as err:
        return str(getattr(err, 'reason', err))
    return None


def download(url: str, subdir: str = 'checkpoints', filename: Optional[str] = None,
             sha256: Optional[str] = None, progress: bool = True) -> str:
    """Return the cached copy of ``url``, fetching it first when absent.

    A cached file is hash-checked on every call (when a hash is known), so a corrupted cache is
    reported rather than loaded. An interrupted download leaves ``<file>.part``; the next call resumes
    it with an HTTP ``Range`` request (or starts over when the server ignores ranges).

    Args:
        url: ``http(s)://`` address.
        subdir: folder under :func:`cache_dir`.
        filename: the cached file's name (default: the URL's last path segment).
        sha256: full expected digest; default: the hex part of the file name, if any.
        progress: show a progress bar on stderr.

    Returns:
        The local path.

    Raises:
        DownloadError: offline / HTTP failure (the message names the URL and where to put the file
            by hand), or a hash mismatch.
    """
    target = cached_path(url, subdir, filename)
    expected = expected_hash(url, sha256)
    if target.is_file():
        check_hash(target, expected, url)
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + '.part')
    try:
        _fetch(url, part, progress)
    except (urllib.error.URLError, OSError) as err:
        resume = (f'; the partial file {part.name} there ({part.stat().st_size} bytes) is resumed on the next try'
                  if part.is_file() and part.stat().st_size else '')
        raise DownloadError(f'cannot download {url} ({err}). Without network, download it elsewhere and put '
                            f'it at {target} (or set $CNCLIP_HOME){resume}.') from err
    try:
        check_hash(part, expected, url, remedy='The download was deleted; run again to fetch it anew.')
    except DownloadError:
        part.unlink()
        raise
    os.replace(part, target)
    return str(target)


def _basename(url: str) -> str:
    name = os.path.basename(urllib.parse.urlparse(url).path)
    if not name:
        raise ValueError(f'{url} names no file')
    return name


def _fetch(url: str, part: Path, progress: bool) -> None:
    start = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={'Range': f'bytes={start}-'} if start else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as err:
        if err.code != 416 or not start:  # 416: the part already holds the whole file
            raise
        return
    with response:
        resumed = start and response.status == 206
        mode = 'ab' if resumed else 'wb'
        done = start if resumed else 0
        length = response.headers.get('Content-Length')
        total = done + int(length) if length is not None else None
        bar = _progress_bar(total, done, _basename(url)) if progress else None
        with open(part, mode) as out:
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                out.write(block)
                if bar is not None:
                    bar.update(len(block))
        if bar is not None:
            bar.close()
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(f'{url}: connection closed at {size} of {total} bytes; run again to resume')


def _progress_bar(total: Optional[int], initial: int, name: str):
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, unit='B', unit_scale=True, unit_divisor=1024, desc=name,
                file=sys.stderr, disable=None)

