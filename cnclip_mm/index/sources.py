"""What a gallery to index can be, read lazily as ``(id, image)`` or as precomputed feature shards.

Images: a folder, a glob or a list (:class:`~cnclip_mm.apis.inferencers.Gallery`'s ids: paths relative to
the folder), an official ``*_imgs.tsv`` (its image ids; decoded only when encoded, so a resumed build skips
the lines it has), WebDataset ``.tar`` shards (``json`` ``image_id`` or the sample key; an image repeated
with several captions counts once). Features: ``.npz`` shards written by
tools/analysis/extract_features.py (:mod:`cnclip_mm.index.feature_shards`), added without encoding.
"""
import glob
import io
import json
import os
import os.path as osp
from typing import Any, Callable, Iterator, List, Sequence, Tuple, Union

from PIL import Image

GallerySource = Union[str, os.PathLike, Sequence[Any]]


def _strings(source: GallerySource) -> List[str]:
    if isinstance(source, (str, os.PathLike)):
        return [os.fspath(source)]
    items = list(source)
    return [os.fspath(s) for s in items] if all(isinstance(s, (str, os.PathLike)) for s in items) else []


def feature_shards(source: GallerySource) -> List[str]:
    """The ``.npz`` feature shards ``source`` names (a file, a glob, a folder of them), else ``[]``."""
    paths = []
    for entry in _strings(source):
        if osp.isdir(entry):
            paths += sorted(glob.glob(osp.join(entry, '*.npz')))
        elif entry.endswith('.npz'):
            paths += sorted(glob.glob(entry)) if glob.has_magic(entry) else [entry]
    return paths


def is_webdataset(source: GallerySource) -> bool:
    strings = _strings(source)
    return bool(strings) and all('.tar' in osp.basename(s) for s in strings)  # x.tar, x-{0..9}.tar


def image_items(source: GallerySource) -> Tuple[Iterator[Tuple[str, Callable[[], Any]]], int]:
    """``((id, load) per image, count or -1)``; ``load()`` returns something
    :func:`~cnclip_mm.apis.inference.preprocess_images` takes (path, PIL image, array)."""
    from cnclip_mm.apis.inferencers.gallery import Gallery, iter_tsv
    strings = _strings(source)
    if len(strings) == 1 and strings[0].endswith('.tsv'):
        if not osp.isfile(strings[0]):
            raise FileNotFoundError(f'gallery TSV {strings[0]!r} does not exist')
        with open(strings[0], encoding='utf-8') as f:
            count = sum(1 for line in f if line.strip())
        return iter_tsv(strings[0]), count
    if is_webdataset(source):
        from cnclip_mm.datasets.webdataset_shards import expand_shards
        return shard_images(expand_shards(strings)), -1
    gallery = Gallery(source)
    return ((str(i), _constant(item)) for i, item in zip(gallery.ids, gallery.items)), len(gallery)


def _constant(item: Any) -> Callable[[], Any]:
    return lambda: item


def shard_images(urls: Sequence[str]) -> Iterator[Tuple[str, Callable[[], Any]]]:
    """``(image_id, decode)`` per distinct image of WebDataset shards, in shard order."""
    import webdataset as wds

    from cnclip_mm.datasets.webdataset_shards import IMAGE_EXTS
    seen = set()
    for sample in wds.tariterators.tarfile_samples({'url': u} for u in urls):
        where = f'{sample.get("__url__")} key {sample.get("__key__")}'
        data = next((sample[ext] for ext in IMAGE_EXTS if ext in sample), None)
        if data is None:
            raise ValueError(f'{where}: no image ({"/".join(IMAGE_EXTS)}) in the sample')
        meta = json.loads(sample['json']) if 'json' in sample else {}
        image_id = str(meta.get('image_id', sample['__key__']) if isinstance(meta, dict) else sample['__key__'])
        if image_id not in seen:
            seen.add(image_id)
            yield image_id, _decoder(data, where)


def _decoder(data: bytes, where: str) -> Callable[[], Image.Image]:
    def decode() -> Image.Image:
        try:
            return Image.open(io.BytesIO(data)).convert('RGB')
        except Exception as err:
            raise ValueError(f'{where}: the image does not decode: {err}') from err
    return decode
