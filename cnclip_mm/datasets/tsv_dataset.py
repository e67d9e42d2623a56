"""The official ``{split}_imgs.tsv`` (``image_id<TAB>base64``) + ``{split}_texts.jsonl`` layout."""
import os
import os.path as osp
from typing import Dict, Iterator

from cnclip_mm.registry import DATASETS

from .base_image_text import BaseImageTextDataset, ImageId, TextRecord, parse_image_id, require_path
from .official_texts import iter_official_texts


@DATASETS.register_module()
class ImageTextTSVDataset(BaseImageTextDataset):
    """Official TSV/jsonl files under ``data_root``.

    The TSV is indexed by byte offset in one streaming pass, so a multi-GB file is never held in
    memory; each worker process opens its own file handle on first read (``os.pread``, no shared
    file position).

    Args:
        data_root: Folder with ``{split}_imgs.tsv`` and ``{split}_texts.jsonl``.
        split: ``train`` / ``valid`` / ``test``.
        img_file: Override of the TSV file name (relative to ``data_root``).
        text_file: Override of the jsonl file name (relative to ``data_root``).
        **kwargs: See :class:`BaseImageTextDataset`.
    """

    def __init__(self, data_root: str = '', split: str = 'train', img_file: str = None,
                 text_file: str = None, **kwargs):
        self.img_file = img_file or f'{split}_imgs.tsv'
        self.text_file = text_file or f'{split}_texts.jsonl'
        self._fd = None
        self._fd_pid = None
        super().__init__(data_root=data_root, split=split, **kwargs)

    @property
    def tsv_path(self) -> str:
        return osp.join(self.data_root, self.img_file)

    def _read_images(self) -> Dict[ImageId, dict]:
        require_path(self.data_root, f'{type(self).__name__} data_root', is_dir=True)
        path = require_path(self.tsv_path, 'image TSV')
        require_path(osp.join(self.data_root, self.text_file), 'text jsonl')
        images = {}
        offset = 0
        with open(path, 'rb') as f:
            for lineno, line in enumerate(f, 1):
                start, offset = offset, offset + len(line)
                if not line.strip():
                    continue
                tab = line.find(b'\t')
                where = f'{path} line {lineno}'
                if tab <= 0:
                    self.bad_samples.handle(where, 'expected "image_id<TAB>base64"')
                    continue
                image_id = parse_image_id(line[:tab].decode('utf-8', errors='replace'))
                if image_id in images:
                    self.bad_samples.handle(where, f'duplicate image_id {image_id!r}')
                    continue
                images[image_id] = dict(tsv_offset=start + tab + 1,
                                        tsv_length=len(line.rstrip(b'\r\n')) - tab - 1,
                                        source=f'{where} (image_id {image_id})')
        return images

    def _read_texts(self) -> Iterator[TextRecord]:
        yield from iter_official_texts(osp.join(self.data_root, self.text_file), self.bad_samples)

    def _attach_image(self, info: dict) -> None:
        if self._fd is None or self._fd_pid != os.getpid():
            self._fd = os.open(self.tsv_path, os.O_RDONLY)
            self._fd_pid = os.getpid()
        info['img_b64'] = os.pread(self._fd, info.pop('tsv_length'), info.pop('tsv_offset'))

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_fd'] = state['_fd_pid'] = None
        return state

    def __del__(self):
        if getattr(self, '_fd', None) is not None and self._fd_pid == os.getpid():
            os.close(self._fd)
