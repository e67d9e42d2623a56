"""Fixtures of the index tests: two tiny checkpoints (different weights), a gallery folder, its TSV and shards."""
import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
GALLERY_SIZE = 24


def _checkpoint(path: Path, seed: int) -> str:
    from cnclip_mm.models.converters import mm_to_official
    from cnclip_mm.registry import MODELS
    init_default_scope('cnclip_mm')
    torch.manual_seed(seed)
    model = MODELS.build(Config.fromfile(str(REPO / 'configs/_base_/models/tiny.py')).model)
    torch.save(dict(epoch=1, step=1, name='tiny', state_dict=mm_to_official(model.state_dict())), path)
    return str(path)


@pytest.fixture(scope='session')
def assets(tmp_path_factory):
    """``ckpt`` / ``other_ckpt`` (official format, seeds 0 and 1), ``model`` (built from ``ckpt``),
    ``gallery`` (GALLERY_SIZE JPEGs), ``tsv`` (the same images as an official TSV), ``shards`` (3 .tar)."""
    import webdataset as wds

    from cnclip_mm.models.builder import init_model
    root = tmp_path_factory.mktemp('index_assets')
    ckpt, other = _checkpoint(root / 'tiny.pt', 0), _checkpoint(root / 'other.pt', 1)
    gallery = root / 'gallery'
    gallery.mkdir()
    rng = np.random.default_rng(0)
    tsv_lines, blobs = [], []
    for i in range(GALLERY_SIZE):
        # smooth colour fields with a random tint, so images differ in more than noise
        base = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((48, 48), Image.BICUBIC)
        buf = io.BytesIO()
        image.save(buf, 'JPEG', quality=95)
        (gallery / f'img{i:03d}.jpg').write_bytes(buf.getvalue())
        blobs.append(buf.getvalue())
        tsv_lines.append(f'img{i:03d}.jpg\t{base64.urlsafe_b64encode(buf.getvalue()).decode()}')
    tsv = root / 'gallery_imgs.tsv'
    tsv.write_text('\n'.join(tsv_lines) + '\n', encoding='utf-8')
    shards = root / 'shards'
    shards.mkdir()
    per_shard = GALLERY_SIZE // 3
    for s in range(3):
        with wds.TarWriter(str(shards / f'{s:05d}.tar')) as writer:
            for i in range(s * per_shard, (s + 1) * per_shard):
                for caption in ('一张照片', '另一句描述'):  # an image with two captions counts once
                    writer.write({'__key__': f'{i:05d}_{len(caption)}', 'jpg': blobs[i], 'txt': caption.encode(),
                                  'json': json.dumps({'image_id': f'img{i:03d}.jpg'}).encode()})
            if s == 2:  # the first image again, in a later shard
                writer.write({'__key__': 'again', 'jpg': blobs[0], 'txt': '重复'.encode(),
                              'json': json.dumps({'image_id': 'img000.jpg'}).encode()})
    return dict(ckpt=ckpt, other_ckpt=other, model=init_model(None, ckpt), gallery=str(gallery), tsv=str(tsv),
                shards=str(shards / '{00000..00002}.tar'), root=root)
