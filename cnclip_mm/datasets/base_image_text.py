"""Shared logic of the image-text datasets: pairs for training, images-then-texts for retrieval."""
import os.path as osp
from typing import Dict, Iterator, List, Sequence, Tuple, Union

from .base import BadSampleAwareDataset

ImageId = Union[int, str]
#: (where it was read, text_id, caption, image ids it describes)
TextRecord = Tuple[str, ImageId, object, Sequence[ImageId]]


def parse_image_id(raw: str) -> ImageId:
    """Official ids are integers; other ids stay strings."""
    raw = raw.strip()
    return int(raw) if raw.isdigit() else raw


def require_path(path: str, what: str, is_dir: bool = False) -> str:
    """Fail early with the missing path (a missing file is never a skippable sample)."""
    ok = osp.isdir(path) if is_dir else osp.isfile(path)
    if not ok:
        kind = 'directory' if is_dir else 'file'
        raise FileNotFoundError(f'{what}: {kind} {path!r} does not exist')
    return path


class BaseImageTextDataset(BadSampleAwareDataset):
    """Image-text pairs for training, or the retrieval layout with ``test_mode=True``.

    Training items: one per (text, image) pair with ``image_id``, ``text_id``, ``text`` and the
    image payload. Test items: every image (``image_id`` + payload) first, then every text
    (``text_id``, ``text``, ``gt_image_ids``), as docs/design.md specifies.

    Subclasses implement :meth:`_read_images`, :meth:`_read_texts` and :meth:`_attach_image`.

    Args:
        split: Split name used to find the files (``train`` / ``valid`` / ``test``).
        **kwargs: Passed to :class:`BadSampleAwareDataset` (``on_bad_sample``, ``data_root``,
            ``pipeline``, ``test_mode``, ``serialize_data``, ``lazy_init``, ...).
    """

    def __init__(self, split: str = 'train', **kwargs):
        self.split = split
        super().__init__(**kwargs)

    # -- subclass hooks -------------------------------------------------------------------
    def _read_images(self) -> Dict[ImageId, dict]:
        """Return image_id -> payload (e.g. a byte offset), in the source's order."""
        raise NotImplementedError

    def _read_texts(self) -> Iterator[TextRecord]:
        raise NotImplementedError

    def _attach_image(self, info: dict) -> None:
        """Add the image itself (``img_b64`` / ``img_bytes`` / ``img_path``) to ``info``."""
        raise NotImplementedError

    # -- BaseDataset API --------------------------------------------------------------------
    def load_data_list(self) -> List[dict]:
        images = self._read_images()
        texts = []
        for where, text_id, text, image_ids in self._read_texts():
            if not isinstance(text, str) or not text.strip():
                self.bad_samples.handle(where, f'empty or non-string caption {text!r}')
                continue
            kept = []
            for image_id in image_ids:
                # Texts may store ids as strings ("1001") or ints; images are keyed like parse_image_id.
                image_id = parse_image_id(str(image_id))
                if image_id in images:
                    kept.append(image_id)
                else:
                    self.bad_samples.handle(where, f'image_id {image_id!r} has no image in this split')
            if image_ids and not kept:
                continue
            texts.append((where, text_id, text, kept))

        if self.test_mode:
            data_list = [dict(image_id=i, **payload) for i, payload in images.items()]
            data_list += [dict(text_id=t, text=x, gt_image_ids=list(ids), text_source=w)
                          for w, t, x, ids in texts]
        else:
            data_list = [dict(image_id=i, text_id=t, text=x, text_source=w, **images[i])
                         for w, t, x, ids in texts for i in ids]
        return data_list

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        if 'image_id' in info:
            self._attach_image(info)
        return info
