"""Check every input a run needs before anything is built, and report all missing ones in one message.

``tools/train.py`` and ``tools/test.py`` call :func:`check_inputs` right after the config is read: data
folders and files of each dataloader the run uses, pretrained image / text weights, vocabularies and the
checkpoint. A first run on a fresh machine then says at once what to download (or how to skip it) instead of
failing on one input per run, minutes apart.
"""
import os
import os.path as osp
import re
from typing import Iterator, List, MutableMapping, NamedTuple, Optional, Sequence

from cnclip_mm.utils.tokenizer_cfg import share_tokenizer

DATA_HINTS = {
    'CIFAR100Dataset': 'download cifar-100-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html) and '
                       'extract it so that {root} holds the train, test and meta pickles',
    'ImageFolderZeroShotDataset': 'put the ELEVATER dataset there: {root}/test/{{class_index:03d}}/*.jpg and '
                                  '{root}/label_cn.txt (one Chinese class name per line)',
    'ImageTextTSVDataset': 'download the official preprocessed dataset (Chinese-CLIP README, "datasets") and '
                           'put {{split}}_imgs.tsv and {{split}}_texts.jsonl in {root}; other layouts: '
                           'tools/data/ converts them',
    'ImageTextLMDBDataset': 'build it from the official TSV/jsonl files: python tools/data/build_lmdb.py '
                            '--data-dir {root} --splits SPLIT (or use type=ImageTextTSVDataset on the TSVs)',
    'DemoImageTextDataset': 'generate it there: python tools/data/make_demo_data.py --root {root} (or set '
                            'generate_if_missing=True in the dataset config, as configs/demo/ do)',
    'ImageTextJsonlDataset': 'a captions jsonl plus an image folder (docs/data.md#your-own-data)',
}
INIT_HINTS = {
    'OpenAICLIPVisual': 'the OpenAI CLIP image weights (openai/CLIP release, e.g. ViT-B-16.pt; open_clip .bin for '
                        'H/14); or --cfg-options {key}=None to start the image tower from random weights',
    'ChineseCLIPCheckpoint': 'a released Chinese CLIP checkpoint (Chinese-CLIP README, model card, e.g. '
                             'clip_cn_vit-b-16.pt); or --cfg-options {key}=None for random weights',
}
_HUB_NAME = re.compile(r'^[A-Za-z0-9][\w.-]*/[\w.-]+$')
_OFFLINE = ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE')


class Missing(NamedTuple):
    """One missing input: what it is, where it was looked for, how to get or skip it."""

    what: str
    where: str
    how: str


class PreflightError(FileNotFoundError):
    """Raised with every missing input of a run listed."""


def check_inputs(cfg: MutableMapping, mode: str, checkpoint: Optional[str] = None,
                 config_name: str = 'the config') -> None:
    """Raise :class:`PreflightError` listing every missing input of a ``'train'`` or ``'test'`` run.

    Args:
        cfg: the merged config (``--cfg-options`` applied); its tokenizer is shared first.
        mode: ``'train'`` (train + validation data, ``load_from``) or ``'test'`` (test data, ``checkpoint``).
        checkpoint: the checkpoint ``tools/test.py`` loads.
        config_name: how the message names the config.
    """
    if mode not in ('train', 'test'):
        raise ValueError(f"mode must be 'train' or 'test', got {mode!r}")
    share_tokenizer(cfg)
    found = list(_data(cfg, mode)) + list(_model_weights(cfg.get('model') or {})) + list(_vocabs(cfg))
    found += list(_checkpoints(cfg, mode, checkpoint))
    if found:
        raise PreflightError(format_missing(found, config_name))


def format_missing(found: Sequence[Missing], config_name: str) -> str:
    lines = [f'{len(found)} input(s) of {config_name} are missing (checked before building anything):']
    for i, item in enumerate(found, 1):
        lines.append(f'  {i}. {item.what}: {item.where}')
        lines.append(f'     -> {item.how}')
    return '\n'.join(lines)


# ----------------------------------------------------------------------------------------------- data
def _loaders(cfg, mode: str) -> List[str]:
    if mode == 'test':
        return ['test_dataloader']
    keys = ['train_dataloader']
    if cfg.get('val_cfg') is not None and cfg.get('val_dataloader') is not None:
        keys.append('val_dataloader')
    return keys


def _datasets(node) -> Iterator[dict]:
    """Leaf dataset configs of a dataset config (through ConcatDataset and wrappers)."""
    if not isinstance(node, MutableMapping):
        return
    if isinstance(node.get('datasets'), (list, tuple)):
        for child in node['datasets']:
            yield from _datasets(child)
    elif isinstance(node.get('dataset'), MutableMapping):
        yield from _datasets(node['dataset'])
    else:
        yield node


def expected_paths(ds: dict) -> List[str]:
    """Files / folders a dataset config reads (empty for generated data or unknown layouts)."""
    kind, root, split = ds.get('type'), ds.get('data_root', ''), ds.get('split', 'train')
    if kind == 'ImageTextTSVDataset':
        return [osp.join(root, ds.get('img_file') or f'{split}_imgs.tsv'),
                osp.join(root, ds.get('text_file') or f'{split}_texts.jsonl')]
    if kind == 'ImageTextLMDBDataset':
        base = osp.join(root, ds.get('lmdb_dir', 'lmdb'), split)
        return [osp.join(base, 'imgs'), osp.join(base, 'pairs')]
    if kind == 'ImageTextJsonlDataset':
        ann = ds.get('ann_file', 'captions.jsonl')
        return [ann if osp.isabs(ann) else osp.join(root, ann), osp.join(root, ds.get('img_dir', 'images'))]
    if kind == 'CIFAR100Dataset':
        root = root or 'data/cifar100'
        nested = osp.join(root, 'cifar-100-python')
        folder = nested if osp.isdir(nested) or not osp.isfile(osp.join(root, 'meta')) else root
        return [osp.join(folder, split or 'test'), osp.join(folder, 'meta')]
    if kind == 'ImageFolderZeroShotDataset':
        return [osp.join(root, ds.get('split', 'test')), osp.join(root, ds.get('label_file', 'label_cn.txt'))]
    if kind in ('DemoImageTextDataset', 'DemoClassesDataset'):
        return [] if ds.get('generate_if_missing') else [osp.join(root, '.complete')]  # else generated
    return [root] if root else []


def _data(cfg, mode: str) -> Iterator[Missing]:
    for key in _loaders(cfg, mode):
        loader = cfg.get(key)
        if not isinstance(loader, MutableMapping):
            continue
        for ds in _datasets(loader.get('dataset')):
            absent = [p for p in expected_paths(ds) if not osp.exists(p)]
            if absent:
                root = ds.get('data_root', '?')
                hint = DATA_HINTS.get(ds.get('type'), 'see docs/data.md').format(root=root)
                yield Missing(f'{key.replace("_dataloader", "")} data ({ds.get("type")}, data_root={root!r})',
                              ', '.join(absent),
                              f'{hint}; or point --cfg-options {key}.dataset.data_root=... at it')


# ----------------------------------------------------------------------------------------------- weights
def _init_cfgs(node, key: str) -> Iterator[tuple]:
    """``(config key, init_cfg dict)`` for every init_cfg with a checkpoint under ``node``."""
    if not isinstance(node, MutableMapping):
        return
    for name, value in node.items():
        path = f'{key}.{name}'
        inits = value if isinstance(value, (list, tuple)) else [value]
        if name == 'init_cfg':
            for init in inits:
                if isinstance(init, MutableMapping) and init.get('checkpoint'):
                    yield path, init
        elif isinstance(value, MutableMapping):
            yield from _init_cfgs(value, path)


def _offline() -> bool:
    return any(os.environ.get(k, '').lower() in ('1', 'true', 'yes', 'on') for k in _OFFLINE)


def _hub_cached(repo: str, filenames: Sequence[str]) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return any(isinstance(try_to_load_from_cache(repo, name), str) for name in filenames)


def _local_or_hub(source: str, hub_files: Sequence[str]) -> Optional[str]:
    """Why ``source`` (a path or a hub name) cannot be loaded here, or None when it can (or may)."""
    if osp.exists(source):
        return None
    if not _HUB_NAME.match(source) or osp.splitext(source)[1] in ('.txt', '.pt', '.pth', '.bin', '.json'):
        return f'{source} (no such file or folder)'
    if _hub_cached(source, hub_files) or not _offline():
        return None  # cached, or the hub may serve it
    return f'{source!r} is neither a local folder nor in the Hugging Face cache, and the hub is offline'


def _model_weights(model: MutableMapping) -> Iterator[Missing]:
    for key, init in _init_cfgs(model, 'model'):
        if not osp.exists(init['checkpoint']):
            what = 'pretrained image tower' if 'image_encoder' in key else 'initial weights'
            how = INIT_HINTS.get(init.get('type'), 'the checkpoint file; or --cfg-options {key}=None')
            yield Missing(f'{what} ({key}, type {init.get("type")})', init['checkpoint'], how.format(key=key))
    text = model.get('text_encoder') or {}
    source = text.get('pretrained') if isinstance(text, MutableMapping) else None
    if source:
        problem = _local_or_hub(str(source), ('config.json',))
        if problem:
            yield Missing('pretrained text tower (model.text_encoder.pretrained)', problem,
                          f'download {source} where the hub is reachable (e.g. huggingface-cli download '
                          f'{source} --local-dir pretrained/{osp.basename(str(source))}) and set '
                          'model.text_encoder.pretrained to that folder; or None for random weights')


def _generated_roots(cfg) -> List[str]:
    """Folders that datasets generate on first use (the demo writes its own vocab there)."""
    roots = []
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if isinstance(loader, MutableMapping):
            roots += [osp.abspath(ds.get('data_root', '')) for ds in _datasets(loader.get('dataset'))
                      if ds.get('type') in ('DemoImageTextDataset', 'DemoClassesDataset')
                      and ds.get('generate_if_missing')]
    return roots


def _vocabs(cfg) -> Iterator[Missing]:
    seen = set(_generated_roots(cfg))
    for tok in (t for _, value in cfg.items() for t in _tokenizer_cfgs(value)):  # a Config is no Mapping
        vocab = tok.get('vocab_file')
        if not vocab or vocab in seen or osp.dirname(osp.abspath(str(vocab))) in seen:
            continue  # None: the vocab shipped in the package; or one a dataset generates
        seen.add(vocab)
        problem = _local_or_hub(str(vocab), ('vocab.txt', 'tokenizer.json'))
        if problem:
            yield Missing('tokenizer vocabulary (tokenizer.vocab_file)', problem,
                          'give a vocab.txt or a folder holding it, or leave tokenizer.vocab_file=None for the '
                          'official vocab shipped with cnclip-mm')


def _tokenizer_cfgs(node) -> Iterator[dict]:
    if isinstance(node, MutableMapping):
        if node.get('type') == 'ChineseTokenizer':
            yield node
        for value in node.values():
            yield from _tokenizer_cfgs(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _tokenizer_cfgs(value)


# ----------------------------------------------------------------------------------------------- checkpoints
def _absent(source: str) -> bool:
    """A local checkpoint that is not there; URLs and model-index names are checked by :func:`_unfetchable`."""
    if osp.exists(source):
        return False
    from cnclip_mm.models.zoo import is_model_name
    from cnclip_mm.utils.download import is_url
    return not (is_url(source) or is_model_name(source))


def _unfetchable(source: str) -> Optional[str]:
    from cnclip_mm.models.zoo import unfetchable_weights
    return None if osp.exists(source) else unfetchable_weights(source)


def _checkpoints(cfg, mode: str, checkpoint: Optional[str]) -> Iterator[Missing]:
    if mode == 'test' and checkpoint and _absent(checkpoint):
        yield Missing('checkpoint to evaluate', checkpoint,
                      'an official .pt, a Hugging Face folder, an mmpretrain .pth or a cnclip-mm checkpoint '
                      '(docs/evaluation.md#reproducing-the-published-numbers)')
    elif mode == 'test' and checkpoint and (problem := _unfetchable(checkpoint)):
        yield Missing(f'weights of {checkpoint}', problem,
                      'or give a local checkpoint path instead of the name / URL')
    load_from = cfg.get('load_from') if mode == 'train' else None
    if load_from and _absent(load_from):
        how = ('train the previous stage first (its work dir holds last_checkpoint)'
               if osp.basename(load_from) == 'last_checkpoint' else 'the checkpoint file')
        yield Missing('checkpoint to start from (load_from)', load_from,
                      f'{how}; or --cfg-options load_from=None to start from the initial weights')
    elif load_from and (problem := _unfetchable(load_from)):
        yield Missing(f'weights of load_from={load_from}', problem,
                      'or --cfg-options load_from=<local checkpoint>')


def explain_small_dataset(runner, err: BaseException) -> Optional[str]:
    """Why training has no iteration per epoch, in numbers, or None when ``err`` is about something else.

    mmengine only says "``epoch_length`` must be a positive integer" when a dataset holds fewer items than one
    batch and ``drop_last=True`` leaves an empty epoch.
    """
    if 'epoch_length' not in str(err):
        return None
    loop = getattr(runner, '_train_loop', None)
    loader = getattr(loop, 'dataloader', None)
    if loader is None or not hasattr(loader, 'dataset'):
        return None
    items, batch = len(loader.dataset), loader.batch_size
    world = getattr(runner, 'world_size', 1) or 1
    per_rank = -(-items // world)
    if len(loader) > 0:
        return None
    return (f'the training set has {items} items ({per_rank} per process with {world} process(es)), fewer than '
            f'one batch of train_dataloader.batch_size={batch} with drop_last={loader.drop_last}: an epoch would '
            'have no iteration. Lower the batch size (--cfg-options train_dataloader.batch_size=...), set '
            'train_dataloader.drop_last=False, or add data')
