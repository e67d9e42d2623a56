"""Feature parity with transformers' ChineseCLIPModel, both directions."""
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from cnclip_mm.models.builder import init_model
from cnclip_mm.models.converters import export_hf, load_state_dict_any

TEXTS = ['一只在草地上奔跑的小狗', '北京天安门广场, Beijing 2008!', '猫', 'ＡＢＣ１２３，全角字符？' * 8]


def _hf_features(hf_model, ids, images):
    with torch.no_grad():
        text = hf_model.get_text_features(input_ids=ids, attention_mask=(ids != 0).long())
        image = hf_model.get_image_features(pixel_values=images)
    # transformers 5 returns a ModelOutput whose pooler_output is the projected feature
    text = getattr(text, 'pooler_output', text)
    image = getattr(image, 'pooler_output', image)
    return torch.nn.functional.normalize(image, dim=-1), torch.nn.functional.normalize(text, dim=-1)


def test_hf_folder_parity_and_export(hf_tiny_dir, tmp_path):
    from transformers import BertTokenizerFast, ChineseCLIPModel
    folder, hf_model = hf_tiny_dir
    model = init_model(checkpoint=str(folder))
    assert model.cfg['image_encoder']['arch'] == dict(width=64, layers=2, heads=2, patch_size=8)
    assert model.cfg['text_encoder']['arch']['num_attention_heads'] == 4
    assert model.tokenizer.vocab_file == str(folder)

    ids = model.tokenizer(TEXTS)
    assert (ids == 0).any()  # padding present, so the attention mask matters
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ours = model.extract_image_feat(images), model.extract_text_feat(ids)
    theirs = _hf_features(hf_model, ids, images)
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, atol=1e-5, rtol=0)
    assert torch.allclose(model.logit_scale, hf_model.logit_scale)

    out = export_hf(model, str(tmp_path / 'export'))
    reloaded = ChineseCLIPModel.from_pretrained(out).eval()
    for a, b in zip(ours, _hf_features(reloaded, ids, images)):
        assert torch.allclose(a, b, atol=1e-5, rtol=0)
    hf_tok = BertTokenizerFast.from_pretrained(out)
    hf_ids = hf_tok(TEXTS, max_length=52, truncation=True, padding='max_length')['input_ids']
    assert torch.equal(torch.tensor(hf_ids), ids)
    processor = json.loads((tmp_path / 'export' / 'preprocessor_config.json').read_text())
    assert processor['size'] == dict(height=32, width=32) and processor['do_center_crop'] is False


def test_bare_safetensors_and_bin(hf_tiny_dir, tmp_path, vocab_file):
    folder, _ = hf_tiny_dir
    weights = load_file(str(folder / 'model.safetensors'))
    save_file(weights, str(tmp_path / 'w.safetensors'))
    torch.save(weights, tmp_path / 'pytorch_model.bin')
    a, fmt_a, _ = load_state_dict_any(str(tmp_path / 'w.safetensors'))
    b, fmt_b, _ = load_state_dict_any(str(tmp_path / 'pytorch_model.bin'))
    assert fmt_a == fmt_b == 'hf'
    assert all(torch.equal(a[k], b[k]) for k in a)
    # without config.json the heads come from the shapes (width 64 -> 1 head); a config file fixes them
    model = init_model(checkpoint=str(tmp_path / 'w.safetensors'), vocab_file=vocab_file)
    assert model.cfg['image_encoder']['arch']['heads'] == 1


def test_hf_sharded_folder(hf_tiny_dir, tmp_path):
    folder, hf_model = hf_tiny_dir
    hf_model.save_pretrained(tmp_path, max_shard_size='1MB')
    assert (tmp_path / 'model.safetensors.index.json').is_file()
    sharded, fmt, extra = load_state_dict_any(str(tmp_path))
    single, _, _ = load_state_dict_any(str(folder))
    assert fmt == 'hf' and 'vocab_file' not in extra and 'hf_config' in extra
    assert sorted(sharded) == sorted(single)


def test_hf_folder_without_weights(tmp_path):
    (tmp_path / 'config.json').write_text('{}')
    with pytest.raises(FileNotFoundError, match='no weights found'):
        load_state_dict_any(str(tmp_path))


def test_folder_with_tokenizer_json_only(hf_tiny_dir, tmp_path, vocab_file):
    """transformers 5 may save tokenizer.json without vocab.txt; the folder still brings its vocabulary."""
    from transformers import BertTokenizerFast
    folder, _ = hf_tiny_dir
    for name in ('config.json', 'model.safetensors'):
        shutil.copyfile(folder / name, tmp_path / name)
    BertTokenizerFast(vocab=vocab_file).save_pretrained(str(tmp_path))
    (tmp_path / 'vocab.txt').unlink(missing_ok=True)
    assert (tmp_path / 'tokenizer.json').is_file()
    model = init_model(checkpoint=str(tmp_path))
    reference = init_model(checkpoint=str(folder))
    assert model.tokenizer.vocab_file == str(tmp_path)
    assert torch.equal(model.tokenizer(TEXTS), reference.tokenizer(TEXTS))
