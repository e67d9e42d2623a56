"""Every zero-shot config loads images in the official order (RGB conversion first: RGBA / P / CMYK images
match the official ImageFolder) and resizes to its model's image size."""
from pathlib import Path

import pytest
from mmengine.config import Config

from cnclip_mm.models.backbones import CLIPVisionTransformer, ModifiedResNet

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(REPO.glob('configs/zeroshot_*.py'))


def _model_size(image_encoder) -> int:
    zoo = {'CLIPVisionTransformer': CLIPVisionTransformer.arch_zoo, 'ModifiedResNet': ModifiedResNet.arch_zoo}
    arch = image_encoder.get('arch')
    return image_encoder.get('img_size') or zoo[image_encoder['type']].get(arch, {}).get('img_size', 224)


@pytest.mark.parametrize('config', CONFIGS, ids=lambda p: p.stem)
def test_official_load_order_at_the_model_size(config):
    cfg = Config.fromfile(str(config))
    for key in ('test_dataloader', 'val_dataloader'):
        pipeline = cfg[key]['dataset']['pipeline']
        assert [step['type'] for step in pipeline] == ['LoadImage', 'ResizeExact', 'PackCLIPInputs'], key
        assert pipeline[0].get('convert_rgb') == 'first', (config.name, key)
        assert pipeline[1]['scale'] == _model_size(cfg.model.image_encoder), (config.name, key)
