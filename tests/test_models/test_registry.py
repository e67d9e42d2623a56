"""Every registry location imports, and building by name needs no manual import."""
import importlib

import pytest

from cnclip_mm import registry


def _registries():
    return [getattr(registry, name) for name in registry.__all__]


@pytest.mark.parametrize('reg', _registries(), ids=lambda r: r.name)
def test_locations_import(reg):
    assert reg.scope == 'cnclip_mm'
    for location in reg._locations:
        importlib.import_module(location)


def test_build_by_name_from_scope():
    for name in ('ChineseCLIP', 'CLIPVisionTransformer', 'ModifiedResNet', 'ChineseBertEncoder',
                 'ChineseTokenizer', 'CLIPDataPreprocessor', 'ContrastiveLoss'):
        assert registry.MODELS.get(name) is not None, name
