"""mmpretrain Chinese CLIP checkpoints: our model -> mmpretrain layout file -> our model, ViT and RN50."""
import pytest
import torch

from cnclip_mm.models.builder import init_model
from cnclip_mm.models.converters import load_state_dict_any, mm_to_mmpretrain


@pytest.mark.parametrize('fixture', ['official_vit', 'official_rn'])
def test_mmpretrain_round_trip(fixture, request, tmp_path):
    _, path = request.getfixturevalue(fixture)
    model = init_model(checkpoint=path)
    mmp = mm_to_mmpretrain(model.state_dict())
    assert any(k.startswith('vision_backbone.') for k in mmp) and any(k.startswith('text_backbone.') for k in mmp)
    target = tmp_path / 'cn-clip_3rdparty.pth'
    torch.save(dict(state_dict=mmp, meta=dict(mmpretrain_version='1.0.0')), target)

    state_dict, fmt, _ = load_state_dict_any(str(target))
    assert fmt == 'mmpretrain'
    again = init_model(checkpoint=str(target))
    assert again.cfg['image_encoder'] == model.cfg['image_encoder']
    size = model.cfg['image_encoder']['img_size']
    images = torch.randn(2, 3, size, size)
    ids = torch.randint(103, 21128, (2, 10))
    assert torch.equal(model.extract_image_feat(images), again.extract_image_feat(images))
    assert torch.equal(model.extract_text_feat(ids), again.extract_text_feat(ids))
