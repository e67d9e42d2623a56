"""ChineseBertEncoder: the project's own BERT against transformers' BertModel, local pretrained folders,
gradient checkpointing."""
import json

import pytest
import torch
from transformers import BertConfig as HFBertConfig
from transformers import BertForMaskedLM
from transformers import BertModel as HFBertModel

from cnclip_mm.models.text_encoders import ChineseBertEncoder
from cnclip_mm.models.text_encoders.modules import BertLayer

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def _pair(**arch):
    """Our tower and transformers' ``BertModel`` (no pooler) with the same config and weights, eval mode."""
    torch.manual_seed(0)
    enc = ChineseBertEncoder(arch=dict(TINY, **arch), vocab_size=300).eval()
    config = HFBertConfig(vocab_size=300, **dict(TINY, **arch))
    hf = HFBertModel(config, add_pooling_layer=False).eval()
    hf.load_state_dict(enc.bert.state_dict(), strict=True)
    return enc, hf


def _mixed_batch(lengths, width, seed=1):
    """[CLS] tokens [SEP] then padding (id 0) to ``width``, one row per length."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, 0], ids[row, n - 1] = 101, 102
        ids[row, 1:n - 1] = torch.randint(103, 300, (n - 2, ), generator=gen)
    return ids


def test_presets_and_custom_arch():
    enc = ChineseBertEncoder(arch=TINY, vocab_size=300)
    assert enc.hidden_size == 32 and enc.config.vocab_size == 300
    assert enc.config.max_position_embeddings == 512 and enc.config.type_vocab_size == 2
    assert enc.config.layer_norm_eps == 1e-12 and enc.config.hidden_act == 'gelu'
    assert not any('pooler' in k for k in enc.state_dict())
    assert ChineseBertEncoder.arch_zoo['rbt3']['num_hidden_layers'] == 3
    with torch.device('meta'):
        large = ChineseBertEncoder(arch='large')
    assert len(large.bert.encoder.layer) == 24 and large.hidden_size == 1024


def test_bad_arch_is_named():
    with pytest.raises(KeyError, match=r"unknown BERT fields \['hidden_sise'\]"):
        ChineseBertEncoder(arch=dict(TINY, hidden_sise=3))
    with pytest.raises(ValueError, match="hidden_act='swish' is unsupported"):
        ChineseBertEncoder(arch=dict(TINY, hidden_act='swish'))
    with pytest.raises(ValueError, match="position_embedding_type='relative_key' is unsupported"):
        ChineseBertEncoder(arch=dict(TINY, position_embedding_type='relative_key'))
    with pytest.raises(ValueError, match='hidden_size=32 is not a multiple of num_attention_heads=3'):
        ChineseBertEncoder(arch=dict(TINY, num_attention_heads=3))


def test_same_state_dict_keys_as_transformers():
    enc, hf = _pair()
    assert list(enc.bert.state_dict()) == list(hf.state_dict())


@pytest.mark.parametrize('arch', [dict(), dict(hidden_act='gelu_new', layer_norm_eps=1e-5)])
def test_equals_transformers_bert_on_padded_batches(arch, device):
    enc, hf = _pair(**arch)
    enc, hf = enc.to(device), hf.to(device)
    ids = _mixed_batch([9, 2, 5, 12, 3], width=12).to(device)
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state
        assert torch.allclose(enc(ids), ref[:, 0], atol=1e-5)
        mask = ids != 0  # every state at a real token, not only [CLS]
        assert torch.allclose(enc.bert(ids)[mask], ref[mask], atol=1e-5)


def test_gradients_equal_transformers_without_dropout():
    enc, hf = _pair()
    enc.train(), hf.train()
    for module in (*enc.modules(), *hf.modules()):  # same math in training mode, no random masks
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    ids = _mixed_batch([7, 3, 5], width=8)
    enc(ids).square().sum().backward()
    hf(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state[:, 0].square().sum().backward()
    grads = dict(hf.named_parameters())
    for name, param in enc.bert.named_parameters():
        assert torch.allclose(param.grad, grads[name].grad, atol=1e-5), name


def test_dropout_applies_in_training_only():
    enc, _ = _pair()
    ids = _mixed_batch([7, 3], width=7)
    with torch.no_grad():
        assert torch.equal(enc(ids), enc(ids))
        enc.train()
        assert not torch.allclose(enc(ids), enc(ids))


def _count_layer_calls(enc):
    calls = []
    for layer in enc.bert.encoder.layer:
        layer.register_forward_pre_hook(lambda *_: calls.append(1))
    return calls


@pytest.mark.parametrize('enable', [False, True])
def test_grad_checkpointing_recomputes_every_layer_with_the_same_gradients(enable):
    enc, _ = _pair()
    enc.train()
    calls = _count_layer_calls(enc)
    ids = _mixed_batch([7, 3, 5], width=8)
    torch.manual_seed(3)
    enc(ids).square().sum().backward()
    plain = {n: p.grad.clone() for n, p in enc.named_parameters()}
    assert len(calls) == 2
    enc.zero_grad()
    enc.set_grad_checkpointing(enable)
    calls.clear()
    torch.manual_seed(3)
    out = enc(ids)
    assert len(calls) == 2
    out.square().sum().backward()
    assert len(calls) == (4 if enable else 2)  # each layer again in backward, with its dropout masks
    for name, param in enc.named_parameters():
        assert torch.allclose(param.grad, plain[name], atol=1e-6), name
    with torch.no_grad():  # no autograd, no recomputation
        calls.clear()
        enc(ids)
        assert len(calls) == 2


def test_grad_checkpointing_from_the_config():
    assert ChineseBertEncoder(arch=TINY, vocab_size=300, grad_checkpointing=True).bert.encoder.gradient_checkpointing
    assert isinstance(ChineseBertEncoder(arch=TINY, vocab_size=300).bert.encoder.layer[0], BertLayer)


def test_stage1_text_tower_from_a_local_bert_folder(tmp_path):
    torch.manual_seed(0)
    bert = HFBertModel(HFBertConfig(vocab_size=300, **TINY)).eval()  # with a pooler, like hfl/* releases
    bert.save_pretrained(tmp_path)
    enc = ChineseBertEncoder(pretrained=str(tmp_path)).eval()
    own = enc.bert.state_dict()
    for key, value in own.items():
        assert torch.equal(value, bert.state_dict()[key]), key
    ids = torch.tensor([[101, 5, 6, 7, 102, 0, 0], [101, 9, 102, 0, 0, 0, 0]])
    expect = bert(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state[:, 0]
    assert torch.allclose(enc(ids), expect, atol=1e-6)


def _masked_lm_bin_folder(folder, tf_names=False, drop=None):
    """A hfl/*-style release: ``bert.``-prefixed keys beside the ``cls.`` head, in pytorch_model.bin."""
    torch.manual_seed(0)
    config = HFBertConfig(vocab_size=300, hidden_dropout_prob=0.2, **TINY)
    model = BertForMaskedLM(config)
    state = dict(model.state_dict(), **{'bert.embeddings.position_ids': torch.arange(512)[None]})
    if tf_names:
        state = {k.replace('LayerNorm.weight', 'LayerNorm.gamma').replace('LayerNorm.bias', 'LayerNorm.beta'): v
                 for k, v in state.items()}
    if drop:
        del state[drop]
    folder.mkdir(exist_ok=True)
    torch.save(state, folder / 'pytorch_model.bin')
    (folder / 'config.json').write_text(config.to_json_string(), encoding='utf-8')
    return model.bert


@pytest.mark.parametrize('tf_names', [False, True])
def test_prefixed_bin_folder_with_heads(tmp_path, tf_names):
    bert = _masked_lm_bin_folder(tmp_path / 'bert', tf_names)
    enc = ChineseBertEncoder(pretrained=str(tmp_path / 'bert'))
    assert enc.config.hidden_dropout_prob == 0.2  # config.json wins over the defaults
    for key, value in enc.bert.state_dict().items():
        assert torch.equal(value, bert.state_dict()[key]), key


def test_missing_pretrained_names_the_key(tmp_path):
    with pytest.raises(OSError, match=r"text_encoder.pretrained=.*no_such_bert.*local folder"):
        ChineseBertEncoder(pretrained=str(tmp_path / 'no_such_bert'))


def test_bad_folders_are_named(tmp_path):
    folder = tmp_path / 'bert'
    folder.mkdir()
    with pytest.raises(OSError, match=r"text_encoder.pretrained=.*bert.*config.json is missing"):
        ChineseBertEncoder(pretrained=str(folder))
    (folder / 'config.json').write_text(json.dumps(dict(vocab_size=300, **TINY)), encoding='utf-8')
    with pytest.raises(OSError, match=r"bert has neither model.safetensors nor pytorch_model.bin"):
        ChineseBertEncoder(pretrained=str(folder))
    _masked_lm_bin_folder(folder, drop='bert.encoder.layer.1.output.dense.bias')
    with pytest.raises(KeyError, match=r"text_encoder.pretrained=.*missing \['encoder.layer.1.output.dense.bias'\]"):
        ChineseBertEncoder(pretrained=str(folder))
    (folder / 'config.json').write_text(json.dumps(dict(vocab_size=300, position_embedding_type='relative_key',
                                                        **TINY)), encoding='utf-8')
    with pytest.raises(ValueError, match=r"config.json: position_embedding_type='relative_key' is unsupported"):
        ChineseBertEncoder(pretrained=str(folder))


def test_a_hub_id_resolves_through_the_hugging_face_cache(tmp_path, monkeypatch):
    import huggingface_hub
    bert = _masked_lm_bin_folder(tmp_path / 'cache')
    asked = []

    def snapshot_download(repo_id, allow_patterns):
        asked.append((repo_id, allow_patterns))
        return str(tmp_path / 'cache')

    monkeypatch.chdir(tmp_path)  # no local folder of that name
    monkeypatch.setattr(huggingface_hub, 'snapshot_download', snapshot_download)
    enc = ChineseBertEncoder(pretrained='hfl/chinese-roberta-wwm-ext')
    assert asked == [('hfl/chinese-roberta-wwm-ext', ['config.json', 'model.safetensors', 'pytorch_model.bin'])]
    assert torch.equal(enc.bert.embeddings.word_embeddings.weight, bert.embeddings.word_embeddings.weight)

    def offline(repo_id, allow_patterns):
        raise ConnectionError('no network')

    monkeypatch.setattr(huggingface_hub, 'snapshot_download', offline)
    with pytest.raises(OSError, match=r"text_encoder.pretrained='hfl/x'.*cannot fetch 'hfl/x'.*no network"):
        ChineseBertEncoder(pretrained='hfl/x')
