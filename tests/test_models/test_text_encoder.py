"""ChineseBertEncoder: [CLS] feature with the pad mask, offline config or a local pretrained folder."""
import pytest
import torch
from transformers import BertConfig, BertModel

from cnclip_mm.models.text_encoders import ChineseBertEncoder

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def test_presets_and_custom_arch():
    enc = ChineseBertEncoder(arch=TINY, vocab_size=300)
    assert enc.hidden_size == 32 and enc.config.vocab_size == 300
    assert enc.config.max_position_embeddings == 512 and enc.config.type_vocab_size == 2
    assert not any('pooler' in k for k in enc.state_dict())
    assert ChineseBertEncoder.arch_zoo['rbt3']['num_hidden_layers'] == 3


def test_stage1_text_tower_from_a_local_bert_folder(tmp_path):
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=300, **TINY)).eval()  # with a pooler, like hfl/* releases
    bert.save_pretrained(tmp_path)
    enc = ChineseBertEncoder(pretrained=str(tmp_path)).eval()
    own = enc.bert.state_dict()
    for key, value in own.items():
        assert torch.equal(value, bert.state_dict()[key]), key
    ids = torch.tensor([[101, 5, 6, 7, 102, 0, 0], [101, 9, 102, 0, 0, 0, 0]])
    expect = bert(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state[:, 0]
    assert torch.allclose(enc(ids), expect, atol=1e-6)


def test_missing_pretrained_names_the_key(tmp_path):
    with pytest.raises(OSError, match=r"text_encoder.pretrained=.*no_such_bert.*local folder"):
        ChineseBertEncoder(pretrained=str(tmp_path / 'no_such_bert'))
