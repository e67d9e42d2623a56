"""ChineseTokenizer ids equal the official ones ([CLS] tokens[:L-2] [SEP], zero padding)."""
import pytest
import torch

from cnclip_mm.models import ChineseTokenizer


@pytest.fixture(scope='module')
def vocab(vocab_file):
    with open(vocab_file, encoding='utf-8') as f:
        # split('\n'), not splitlines(): some vocab entries are Unicode line-break characters.
        return {token: i for i, token in enumerate(f.read().rstrip('\n').split('\n'))}


def expected(tokens, vocab, length=52):
    ids = [101] + [vocab[t] for t in tokens][:length - 2] + [102]
    return ids + [0] * (length - len(ids))


def test_chinese_text_ids(vocab_file, vocab):
    tok = ChineseTokenizer(vocab_file)
    ids = tok(['我爱北京天安门'])
    assert ids.dtype == torch.long and ids.shape == (1, 52)
    # Hand-checked against the vocab file: 我=2769 爱=4263 北=1266 京=776 天=1921 安=2128 门=7305.
    assert ids[0, :9].tolist() == [101, 2769, 4263, 1266, 776, 1921, 2128, 7305, 102]
    assert ids[0, 9:].eq(0).all()
    assert ids[0].tolist() == expected(list('我爱北京天安门'), vocab)


def test_mixed_text_ids(vocab_file, vocab):
    tok = ChineseTokenizer(vocab_file)
    text = 'iPhone 14手机，售价5999元!'
    # Basic tokenisation lower-cases and splits CJK characters and punctuation; WordPiece splits words.
    # '5999' is not in the vocab: WordPiece takes the longest prefix '599' then '##9'.
    tokens = ['iphone', '14', '手', '机', '，', '售', '价', '599', '##9', '元', '!']
    assert tok.tokenize(text) == tokens
    assert tok(text)[0].tolist() == expected(tokens, vocab)


def test_full_width_and_case(vocab_file, vocab):
    tok = ChineseTokenizer(vocab_file)
    assert tok.tokenize('ABC') == tok.tokenize('abc')
    got = tok('中文。ＯＫ！')[0].tolist()
    assert got[:4] == [101, vocab['中'], vocab['文'], vocab['。']]
    assert vocab['！'] in got


def test_over_long_text_truncates(vocab_file, vocab):
    tok = ChineseTokenizer(vocab_file, context_length=52)
    text = '天' * 100
    got = tok(text)[0].tolist()
    assert got == [101] + [vocab['天']] * 50 + [102]


def test_longer_context_length(vocab_file, vocab):
    tok = ChineseTokenizer(vocab_file, context_length=52)
    got = tok(['天' * 300], context_length=256)
    assert got.shape == (1, 256)
    assert got[0].tolist() == [101] + [vocab['天']] * 254 + [102]
    assert ChineseTokenizer(vocab_file, context_length=512)('地' * 600).shape == (1, 512)


def test_empty_text_and_batch(vocab_file):
    tok = ChineseTokenizer(vocab_file, context_length=8)
    got = tok(['', '猫'])
    assert got.tolist()[0] == [101, 102, 0, 0, 0, 0, 0, 0]
    assert got.shape == (2, 8)
    # One text (the pipeline's path) gives the batch's row, and says whether it was cut.
    assert torch.equal(tok('猫'), got[1:]) and tok.encode('猫')[0].tolist() == got[1].tolist()
    assert tok.encode('一二三四五六')[1] is False and tok.encode('一二三四五六七')[1] is True


def test_folder_and_saved_tokenizer(vocab_file, tmp_path):
    tok = ChineseTokenizer(vocab_file)
    folder = tmp_path / 'vocab_folder'
    folder.mkdir()
    (folder / 'vocab.txt').write_bytes(open(vocab_file, 'rb').read())
    saved = tmp_path / 'saved'
    tok.save_pretrained(str(saved))
    assert (saved / 'vocab.txt').read_text(encoding='utf-8') == open(vocab_file, encoding='utf-8').read()
    (saved / 'vocab.txt').unlink()  # a transformers-5 folder holds only tokenizer.json
    text = ['红色圆形在左上角', 'CLIP模型2024']
    for source in (folder, saved):
        assert torch.equal(ChineseTokenizer(str(source))(text), tok(text))
    assert ChineseTokenizer(vocab_file).vocab_size == 21128


def test_bad_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match='neither vocab.txt nor tokenizer.json'):
        ChineseTokenizer(str(tmp_path))('猫')
    with pytest.raises(FileNotFoundError, match='no/such/model'):
        ChineseTokenizer('no/such/model')('猫')
    bad = tmp_path / 'vocab.txt'
    bad.write_text('a\nb\n[PAD]\n[UNK]\n[CLS]\n[SEP]\n', encoding='utf-8')
    with pytest.raises(ValueError, match='needs 0, 101, 102'):
        ChineseTokenizer(str(bad))('猫')
    with pytest.raises(ValueError, match='context_length'):
        ChineseTokenizer(str(bad), context_length=1)
