"""Captions beyond 52 tokens: official ids at any length, released 52-token weights at 128, ONNX at 128."""
import copy

import pytest
import torch
from mmengine.config import Config

from cnclip_mm.models import ChineseTokenizer
from cnclip_mm.models.builder import init_model
from cnclip_mm.registry import MODELS
from cnclip_mm.utils import share_tokenizer
from tests.conftest import REPO
from tests.test_converters.ckpt_builders import official_vit_state_dict, save_official

# 300 characters of a product caption: CJK characters and full-width punctuation, each its own token in the
# official BERT basic tokenisation, so the expected ids come from the vocab file alone.
SENTENCE = '这款新型的电动自行车采用轻量化铝合金车架，续航里程可达八十公里，适合城市通勤与周末郊游。'
CAPTION = (SENTENCE * 10)[:300]
SHORT = ['一只猫', '红色的圆形在左上角', '夏天的海边']


@pytest.fixture(scope='module')
def vocab(vocab_file):
    with open(vocab_file, encoding='utf-8') as f:
        return {token: i for i, token in enumerate(f.read().rstrip('\n').split('\n'))}


@pytest.mark.parametrize('length', [52, 128, 512])
def test_300_character_caption_gives_the_official_ids_up_to_the_length(vocab_file, vocab, length):
    assert len(CAPTION) == 300 and all(ch in vocab for ch in CAPTION)
    pieces = [vocab[ch] for ch in CAPTION]
    official = [101] + pieces[:length - 2] + [102]
    official += [0] * (length - len(official))
    tok = ChineseTokenizer(vocab_file, context_length=length)
    assert tok(CAPTION)[0].tolist() == official
    ids, truncated = tok.encode(CAPTION)
    assert ids.tolist() == official and truncated is (length < 302)


@pytest.fixture(scope='module')
def released_checkpoint(tmp_path_factory):
    """An official-layout checkpoint whose text tower has 512 positions, as every released one has."""
    torch.manual_seed(0)
    sd = official_vit_state_dict()
    sd['bert.embeddings.position_embeddings.weight'] = torch.randn(512, 48) * 0.1
    return str(save_official(sd, tmp_path_factory.mktemp('released') / 'epoch_latest.pt'))


def test_context_128_loads_52_token_weights_with_equal_short_caption_features(released_checkpoint, vocab_file):
    official = init_model(checkpoint=released_checkpoint, vocab_file=vocab_file)
    longer = init_model(checkpoint=released_checkpoint, vocab_file=vocab_file, context_length=128)
    assert official.tokenizer.context_length == 52 and longer.tokenizer.context_length == 128
    with torch.no_grad():
        # Raw strings (padding trimmed before the model) and the full padded ids: same features.
        assert torch.equal(official.extract_text_feat(SHORT), longer.extract_text_feat(SHORT))
        padded_52, padded_128 = official.tokenize(SHORT), longer.tokenize(SHORT)
        assert padded_128.shape == (3, 128) and torch.equal(padded_128[:, :52], padded_52)
        torch.testing.assert_close(official.extract_text_feat(padded_52), longer.extract_text_feat(padded_128),
                                   rtol=0, atol=1e-6)
        # A long caption now uses 128 tokens instead of 52.
        cos = (official.extract_text_feat([CAPTION]) * longer.extract_text_feat([CAPTION])).sum()
        assert cos < 0.9999


def test_a_config_sets_the_length_once_and_beyond_the_positions_is_an_error(tiny_model_cfg):
    for name in ('finetune_muge_vit-b-16_ctx128.py', 'demo_stage1_ctx128.py'):
        cfg = share_tokenizer(Config.fromfile(str(REPO / 'configs' / 'long_text' / name)).to_dict())
        steps = [s for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
                 for s in cfg[loader]['dataset']['pipeline'] if s['type'] == 'TokenizeText']
        assert cfg['model']['tokenizer']['context_length'] == 128, name
        assert steps and all(s['tokenizer']['context_length'] == 128 for s in steps), name
    cfg = copy.deepcopy(tiny_model_cfg)
    cfg['tokenizer']['context_length'] = 513
    with pytest.raises(ValueError, match=r"tokenizer.context_length=513 exceeds the text tower's 512 positions"):
        MODELS.build(cfg)


def test_onnx_text_graph_at_128_with_a_full_length_caption(tmp_path, tiny_model_cfg):
    from cnclip_mm.deployment import OrtBackend, export_towers
    cfg = copy.deepcopy(tiny_model_cfg)
    cfg['tokenizer']['context_length'] = 128
    torch.manual_seed(0)
    model = MODELS.build(cfg).eval()
    export_towers(model, str(tmp_path), validate=False)
    ort = OrtBackend(str(tmp_path))
    assert ort.meta['context_length'] == 128
    ids = model.tokenize([CAPTION, SHORT[0]])  # the first row fills all 128 positions: no padding
    assert ids.shape == (2, 128) and bool((ids[0] != 0).all())
    with torch.no_grad():
        torch.testing.assert_close(ort.text_feats(ids), model.extract_text_feat(ids), rtol=0, atol=1e-4)
        short = ids[1:, :52]  # the graph's length is dynamic: the same export serves shorter ids
        torch.testing.assert_close(ort.text_feats(short), model.extract_text_feat(short), rtol=0, atol=1e-4)


def test_the_cut_falls_between_word_pieces_as_in_the_official_code(vocab_file, vocab):
    # Official: tokens[:L-2] over the WordPiece tokens, so a word split as '599', '##9' keeps its first piece.
    for length in (52, 128):
        text = '天' * (length - 3) + '5999'
        ids = ChineseTokenizer(vocab_file, context_length=length)(text)[0].tolist()
        assert ids == [101] + [vocab['天']] * (length - 3) + [vocab['599'], 102]


def test_feature_extraction_tokenises_at_the_configs_length(tmp_path, vocab_file, monkeypatch):
    """tools/analysis/extract_features.py hands its test pipeline the config's tokenizer (here 128 tokens)."""
    from mmengine.runner import Runner

    from tests.test_evaluation.eval_fixtures import load_tool, tiny_test_config
    cfg_file = tiny_test_config(tmp_path, 'retrieval_coco-cn_vit-b-16.py', str(tmp_path), vocab_file, retrieval=False)
    text = open(cfg_file, encoding='utf-8').read().replace(
        "dict(type='PackCLIPInputs')", "dict(type='TokenizeText'), dict(type='PackCLIPInputs')")
    open(cfg_file, 'w', encoding='utf-8').write(text + 'tokenizer = dict(context_length=128)\n')
    checkpoint = str(tmp_path / 'tiny.pth')
    torch.save(dict(state_dict=MODELS.build(Config.fromfile(cfg_file).model).state_dict()), checkpoint)
    seen = []

    def capture(loader_cfg):
        seen.extend(s for s in loader_cfg['dataset']['pipeline'] if s['type'] == 'TokenizeText')
        raise InterruptedError('stop after the loader config')

    monkeypatch.setattr(Runner, 'build_dataloader', staticmethod(capture))
    with pytest.raises(InterruptedError):
        load_tool('analysis/extract_features.py').main([cfg_file, checkpoint, '--out-dir', str(tmp_path / 'f')])
    assert [s['tokenizer']['context_length'] for s in seen] == [128]
