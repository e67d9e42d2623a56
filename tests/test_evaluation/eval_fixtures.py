"""Tiny data writers shared by the evaluation, inference and tool tests."""
import base64
import importlib.util
import io
import json
import os.path as osp
import pickle
from pathlib import Path
from typing import List, Sequence

import numpy as np
from PIL import Image

from cnclip_mm.datasets.cifar100_classes import CIFAR100_ENGLISH

REPO = Path(__file__).resolve().parents[2]
TINY_SIZE = 64  # image size of configs/_base_/models/tiny.py, mirrored by tiny_test_config

CAPTIONS = ['一只黑色的猫', '红色的汽车停在路边', '海边的日落', '两个孩子在踢足球', '一碗热气腾腾的面条',
            '雪山下的湖泊', '穿着西装的男人', '桌子上的苹果']


def write_cifar100(root: str, labels: Sequence[int], seed: int = 0) -> str:
    """Write ``root/cifar-100-python/{test,meta}`` with random 32x32 images; returns the folder."""
    folder = Path(root) / 'cifar-100-python'
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
    with open(folder / 'test', 'wb') as f:
        pickle.dump({b'data': data, b'fine_labels': list(labels), b'coarse_labels': [0] * len(labels)}, f)
    with open(folder / 'meta', 'wb') as f:
        pickle.dump({b'fine_label_names': [n.encode() for n in CIFAR100_ENGLISH]}, f)
    return str(folder)


def cifar_images(labels_len: int, seed: int = 0) -> np.ndarray:
    """The HWC uint8 images :func:`write_cifar100` writes for the same seed."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(labels_len, 3072), dtype=np.uint8)
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def write_elevater(root: str, classes: Sequence[str], per_class: int = 2, seed: int = 0) -> str:
    """An ELEVATER folder: ``test/{class_index:03d}/*.jpg`` (random 20x24 images) and ``label_cn.txt``."""
    rng = np.random.default_rng(seed)
    for label in range(len(classes)):
        folder = Path(root) / 'test' / f'{label:03d}'
        folder.mkdir(parents=True)
        for j in range(per_class):
            Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / f'{j}.jpg')
    (Path(root) / 'label_cn.txt').write_text(''.join(f'{c}\n' for c in classes), encoding='utf-8')
    return str(root)


def random_png(rng: np.random.Generator, size: int = 40) -> bytes:
    img = Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format='PNG')
    return buf.getvalue()


def write_retrieval_tsv(root: str, split: str = 'valid', num_images: int = 6, seed: int = 0) -> dict:
    """Official TSV + jsonl files: 8 captions over ``num_images`` images, some with two positives.

    Returns ``dict(image_ids, texts)`` where ``texts`` are the jsonl records.
    """
    rng = np.random.default_rng(seed)
    Path(root).mkdir(parents=True, exist_ok=True)
    image_ids = [1000 + i for i in range(num_images)]
    with open(osp.join(root, f'{split}_imgs.tsv'), 'w') as f:
        for image_id in image_ids:
            f.write(f'{image_id}\t{base64.b64encode(random_png(rng)).decode()}\n')
    texts: List[dict] = []
    for i, caption in enumerate(CAPTIONS):
        ids = [image_ids[i % num_images]]
        if i % 3 == 0:
            ids.append(image_ids[(i + 2) % num_images])
        texts.append(dict(text_id=i, text=caption, image_ids=ids))
    with open(osp.join(root, f'{split}_texts.jsonl'), 'w', encoding='utf-8') as f:
        for rec in texts:
            f.write(json.dumps(rec, ensure_ascii=False) + '\n')
    return dict(image_ids=image_ids, texts=texts)


def load_tool(relpath: str):
    """Import a script under tools/ by path (``tools/test.py`` would clash with the stdlib ``test``)."""
    name = 'cnclip_tool_' + relpath.replace('/', '_').replace('.py', '')
    spec = importlib.util.spec_from_file_location(name, REPO / 'tools' / relpath)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_test_config(tmp_path, leaf: str, data_root: str, vocab_file: str, retrieval: bool) -> str:
    """A config over ``configs/<leaf>`` with the tiny model, local vocab, tiny data and no workers."""
    tokenize = (f"dict(type='CleanCaption'), dict(type='TokenizeText', tokenizer=dict(type='ChineseTokenizer', "
                f"vocab_file={vocab_file!r}, context_length=52)), ") if retrieval else ''
    # Format tests need no 183 official prompts per class (tests/test_tools/test_offline.py runs those).
    hooks = '' if retrieval else "custom_hooks = [dict(type='ZeroShotClassesHook', templates='cifar100')]\n"
    text = f"""_base_ = [{str(REPO / 'configs' / leaf)!r}]
model = dict(
    embed_dim=64,
    image_encoder=dict(arch=dict(_delete_=True, width=128, layers=3, heads=4, patch_size=8), img_size={TINY_SIZE}),
    text_encoder=dict(arch=dict(_delete_=True, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=256), vocab_size=21128),
    tokenizer=dict(vocab_file={vocab_file!r}))
test_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False, dataset=dict(
    data_root={data_root!r},
    pipeline=[dict(type='LoadImage'), dict(type='ResizeExact', scale={TINY_SIZE}), {tokenize}
              dict(type='PackCLIPInputs')]))
val_dataloader = None
val_cfg = None
val_evaluator = None
{hooks}"""
    path = tmp_path / f'{leaf.replace("/", "_")}'
    path.write_text(text, encoding='utf-8')
    return str(path)
