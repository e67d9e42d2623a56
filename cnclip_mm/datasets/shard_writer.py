"""Write image-text pairs of any map-style dataset here as WebDataset shards (img2dataset layout)."""
import json
import os
import os.path as osp
import random
from typing import Dict, Optional

import webdataset as wds

from .bad_samples import BadSampleError
from .progress import progress
from .transforms.loading import JPEG_SIGNATURE, decode_base64
from .webdataset_shards import MANIFEST

_MAGIC = ((JPEG_SIGNATURE, 'jpg'), (b'\x89PNG\r\n\x1a\n', 'png'), (b'GIF8', 'gif'))


def image_extension(data: bytes) -> Optional[str]:
    """The file extension of JPEG / PNG / WebP bytes (None for anything else)."""
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return None if ext == 'gif' else ext
    if data[:4] == b'RIFF' and data[8:12] == b'WEBP':
        return 'webp'
    return None


def image_bytes(info: dict) -> bytes:
    """The encoded image of a dataset item (``img_b64`` / ``img_bytes`` / ``img_path``), not decoded."""
    where = info.get('source') or info.get('img_path') or f'image {info.get("image_id")}'
    if info.get('img_b64') is not None:
        try:
            return decode_base64(info['img_b64'])
        except ValueError as err:
            raise BadSampleError(f'{where}: invalid base64 ({err})') from err
    if info.get('img_bytes') is not None:
        return bytes(info['img_bytes'])
    try:
        with open(info['img_path'], 'rb') as f:
            return f.read()
    except (KeyError, OSError) as err:
        raise BadSampleError(f'{where}: cannot read the image ({err})') from err


def write_shards(dataset, out_dir: str, samples_per_shard: int = 10000,
                 max_shard_bytes: float = 1e9, shuffle_seed: Optional[int] = None,
                 show_progress: bool = True) -> Dict[str, int]:
    """Write every training pair of ``dataset`` to ``out_dir/{00000..}.tar``.

    Each sample is ``KEY.{jpg,png,webp}`` (the original bytes, not re-encoded), ``KEY.txt`` and
    ``KEY.json`` (``text_id``, ``image_id``). A shard closes at ``samples_per_shard`` samples or
    once it holds ``max_shard_bytes``. ``shards.json`` maps each shard to its sample count.
    Unusable images follow the dataset's ``on_bad_sample`` policy.

    Args:
        dataset: A map-style image-text dataset in training mode, built with an empty pipeline.
        out_dir: Output folder (created).
        samples_per_shard: Target samples per shard (equal counts let every rank/worker get equal work).
        max_shard_bytes: Target size of a shard in bytes.
        shuffle_seed: Permute the pairs with this seed before writing (None keeps the source order).
        show_progress: Show a progress bar.

    Returns:
        Shard file name -> number of samples.
    """
    os.makedirs(out_dir, exist_ok=True)
    order = list(range(len(dataset)))
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(order)
    sizes: Dict[str, int] = {}
    writer = None

    def record(fname: str) -> None:
        sizes[osp.basename(fname)] = writer.count

    writer = wds.ShardWriter(osp.join(out_dir, '%05d.tar'), maxcount=samples_per_shard,
                             maxsize=max_shard_bytes, post=record, verbose=0)
    bar = progress(len(order), 'writing shards', show_progress)
    written = 0
    try:
        for idx in order:
            info = dataset.get_data_info(idx)
            try:
                data = image_bytes(info)
                ext = image_extension(data)
                if ext is None:
                    raise BadSampleError(f'{info.get("source", idx)}: not a JPEG, PNG or WebP image')
            except BadSampleError as err:
                dataset.bad_samples.handle(f'{dataset.name} item {idx}', str(err))
                bar.update()
                continue
            meta = dict(text_id=info['text_id'], image_id=info['image_id'])
            writer.write({'__key__': f'{written:09d}', ext: data, 'txt': info['text'],
                          'json': json.dumps(meta, ensure_ascii=False).encode('utf-8')})
            written += 1
            bar.update()
    finally:
        writer.close()
        bar.close()
    for name in [name for name, n in sizes.items() if not n]:  # nothing written at all
        os.remove(osp.join(out_dir, name))
        del sizes[name]
    with open(osp.join(out_dir, MANIFEST), 'w') as f:
        json.dump(sizes, f, indent=1)
    return sizes
