"""The simplest user format: ``{"image": "rel/path.jpg", "caption": "..." | ["...", ...]}`` lines."""
import os.path as osp
from typing import Dict, Iterator

from cnclip_mm.registry import DATASETS

from .base_image_text import BaseImageTextDataset, ImageId, TextRecord, require_path
from .jsonl_reader import iter_jsonl


@DATASETS.register_module()
class ImageTextJsonlDataset(BaseImageTextDataset):
    """Captions in one jsonl file, images in a folder.

    Image ids are the 0-based order of first appearance of each image path; text ids count the
    captions in file order. A caption list gives one text per caption, all linked to the image.

    Args:
        data_root: Dataset folder.
        ann_file: The jsonl file, relative to ``data_root``.
        img_dir: Image folder, relative to ``data_root``; ``image`` paths are relative to it.
        **kwargs: See :class:`BaseImageTextDataset`.
    """

    def __init__(self, data_root: str = '', ann_file: str = 'captions.jsonl', img_dir: str = 'images',
                 **kwargs):
        self.img_dir = img_dir
        self._records = None
        super().__init__(data_root=data_root, ann_file=ann_file, **kwargs)

    def _scan(self) -> None:
        require_path(self.ann_file, 'caption jsonl')
        img_root = require_path(osp.join(self.data_root, self.img_dir), 'image folder', is_dir=True)
        images: Dict[str, int] = {}
        first_line: Dict[str, str] = {}  # where each image is first named, for its load errors
        texts = []
        for where, obj in iter_jsonl(self.ann_file, self.bad_samples):
            rel, captions = obj.get('image'), obj.get('caption')
            if not isinstance(rel, str) or not rel:
                self.bad_samples.handle(where, f'"image" must be a relative path, got {rel!r}')
                continue
            path = osp.join(img_root, rel)
            if rel not in images:
                if not osp.isfile(path):
                    self.bad_samples.handle(where, f'image file {path!r} does not exist')
                    continue
                images[rel] = len(images)
                first_line[rel] = where
            if captions == []:
                self.bad_samples.handle(where, '"caption" is an empty list')
                continue
            for caption in captions if isinstance(captions, list) else [captions]:
                texts.append((where, len(texts), caption, [images[rel]]))
        self._records = ({i: dict(img_path=osp.join(img_root, rel), source=f'{osp.join(img_root, rel)} '
                                  f'(image {rel!r} of {first_line[rel]})')
                          for rel, i in images.items()}, texts)

    def _read_images(self) -> Dict[ImageId, dict]:
        self._scan()
        return self._records[0]

    def _read_texts(self) -> Iterator[TextRecord]:
        texts = self._records[1]
        self._records = None
        yield from texts

    def _attach_image(self, info: dict) -> None:
        pass  # ``img_path`` is already in the item.
