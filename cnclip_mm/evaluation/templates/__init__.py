"""Chinese prompt templates for zero-shot classification, one ``{}``-template per line in a .txt file.

Built-in sets, transcribed from the official Chinese-CLIP ``cn_clip/eval/cvinw_zeroshot_templates.py``
(``openai`` 183, ``flower`` 32, ``food`` 21, ``aircraft`` 100, ``eurosat`` 24, ``country211`` 4, ``cifar100`` 11)
and ``imagenet_zeroshot_templates.py`` (``imagenet`` 80). ``'official'`` picks the set the official
``zeroshot_evaluation.py`` uses for a dataset: :func:`official_templates`.
"""
import os.path as osp
from typing import List, Optional, Sequence, Union

TEMPLATE_DIR = osp.dirname(osp.abspath(__file__))
BUILTIN_TEMPLATES = ('openai', 'flower', 'food', 'aircraft', 'eurosat', 'country211', 'cifar100', 'imagenet')
# zeroshot_evaluation.py's template_dict: ELEVATER dataset name -> set; every other dataset uses 'openai'.
OFFICIAL_DATASET_TEMPLATES = {
    'fgvc-aircraft-2013b-variants102': 'aircraft',
    'food-101': 'food',
    'oxford-flower-102': 'flower',
    'eurosat_clip': 'eurosat',
    'resisc45_clip': 'eurosat',
    'country211': 'country211',
}


def official_templates(dataset_name: Optional[str]) -> str:
    """The built-in set the official evaluation uses for ``dataset_name`` (an ELEVATER folder name)."""
    return OFFICIAL_DATASET_TEMPLATES.get(dataset_name or '', 'openai')


def read_lines(path: str, what: str) -> List[str]:
    """Non-empty, stripped lines of a UTF-8 text file, with a clear error when it is missing or empty."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} file {path!r} does not exist')
    with open(path, encoding='utf-8') as f:
        lines = [line.strip() for line in f]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError(f'{what} file {path!r} is empty')
    return lines


def load_templates(templates: Union[str, Sequence[str], None] = None) -> List[str]:
    """Resolve a template spec to a list of ``str.format`` templates with one ``{}``.

    Args:
        templates: None (the built-in ``'openai'`` set), a built-in name, a path to a text file
            with one template per line, or a list of templates.
    """
    if templates is None:
        templates = 'openai'
    if isinstance(templates, str):
        if templates in BUILTIN_TEMPLATES:
            source = osp.join(TEMPLATE_DIR, f'{templates}.txt')
        else:
            source = templates
            if not osp.isfile(source):
                raise FileNotFoundError(f'templates {templates!r} is neither a built-in set '
                                        f'{BUILTIN_TEMPLATES} nor an existing text file')
        items = read_lines(source, 'prompt template')
    else:
        source = 'the templates list'
        items = [str(t) for t in templates]
        if not items:
            raise ValueError('the templates list is empty')
    for lineno, item in enumerate(items, 1):
        if item.count('{}') != 1:
            raise ValueError(f'{source} template #{lineno} {item!r}: needs exactly one "{{}}" '
                             'for the class name')
    return items
