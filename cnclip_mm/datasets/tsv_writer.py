"""Turn an image folder plus jsonl/csv captions into the official ``{split}_imgs.tsv`` / ``_texts.jsonl``."""
import base64
import csv
import io
import json
import os
import os.path as osp
from typing import Dict, Iterator, List, Tuple

from PIL import Image

from .bad_samples import BadSampleLog
from .jsonl_reader import iter_jsonl
from .progress import progress


def _iter_captions(path: str) -> Iterator[Tuple[str, str, List[str]]]:
    """Yield ``(where, image_rel_path, captions)`` from a jsonl or csv (columns image, caption)."""
    if path.endswith('.csv'):
        with open(path, encoding='utf-8', newline='') as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {'image', 'caption'} <= set(reader.fieldnames):
                raise ValueError(f'{path}: the csv needs a header with columns "image" and "caption", '
                                 f'got {reader.fieldnames}')
            for row in reader:
                yield f'{path} line {reader.line_num}', row['image'], [row['caption']]
        return
    for where, obj in iter_jsonl(path, BadSampleLog('error')):
        if 'image' not in obj or 'caption' not in obj:
            raise ValueError(f'{where}: need {{"image": ..., "caption": ...}}, got keys {sorted(obj)}')
        caption = obj['caption']
        yield where, obj['image'], caption if isinstance(caption, list) else [caption]


def convert_to_tsv(img_dir: str, captions: str, out_dir: str, split: str = 'train',
                   first_image_id: int = 1, first_text_id: int = 1, verify: bool = True,
                   show_progress: bool = True) -> Dict[str, int]:
    """Write ``{out_dir}/{split}_imgs.tsv`` and ``{split}_texts.jsonl``.

    Image ids number the distinct image paths in order of first appearance from
    ``first_image_id``; each caption becomes one text. The file bytes are base64-encoded as they
    are (no re-encoding), after checking with Pillow that they decode when ``verify``.

    Returns:
        ``{'num_images': ..., 'num_texts': ...}``.
    """
    for path, is_dir in ((img_dir, True), (captions, False)):
        if not (osp.isdir(path) if is_dir else osp.isfile(path)):
            raise FileNotFoundError(f'convert_to_tsv: {path!r} does not exist')
    os.makedirs(out_dir, exist_ok=True)
    image_ids: Dict[str, int] = {}
    num_texts = 0
    tsv_path = osp.join(out_dir, f'{split}_imgs.tsv')
    jsonl_path = osp.join(out_dir, f'{split}_texts.jsonl')
    with open(tsv_path, 'w', encoding='utf-8') as tsv, open(jsonl_path, 'w', encoding='utf-8') as js, \
            progress(None, f'{split} captions', show_progress) as bar:
        for where, rel, caps in _iter_captions(captions):
            bar.update()
            if rel not in image_ids:
                path = osp.join(img_dir, rel)
                try:
                    with open(path, 'rb') as f:
                        data = f.read()
                    if verify:
                        Image.open(io.BytesIO(data)).verify()
                except Exception as err:  # noqa: BLE001 - missing or broken: same report
                    raise ValueError(f'{where}: image {path!r} unreadable ({type(err).__name__}: {err})') from err
                image_ids[rel] = first_image_id + len(image_ids)
                tsv.write(f'{image_ids[rel]}\t{base64.urlsafe_b64encode(data).decode()}\n')
            for caption in caps:
                if not isinstance(caption, str) or not caption.strip():
                    raise ValueError(f'{where}: empty caption for {rel!r}')
                record = dict(text_id=first_text_id + num_texts, text=caption.strip(),
                              image_ids=[image_ids[rel]])
                js.write(json.dumps(record, ensure_ascii=False) + '\n')
                num_texts += 1
    return dict(num_images=len(image_ids), num_texts=num_texts)
