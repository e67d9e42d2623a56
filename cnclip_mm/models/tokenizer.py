"""Chinese BERT WordPiece tokenizer producing the official Chinese CLIP ids."""
import os
import shutil
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import torch

from cnclip_mm.registry import MODELS

PAD_ID, UNK_ID, CLS_ID, SEP_ID = 0, 100, 101, 102
# The 21,128-token Chinese BERT vocab that every released Chinese CLIP (RN50 to H/14) uses; shipped so that
# nothing needs a model hub.
SHIPPED_VOCAB = str(Path(__file__).resolve().parent / 'vocab' / 'vocab.txt')


@MODELS.register_module()
class ChineseTokenizer:
    """Lower-case BERT basic tokenisation + WordPiece, ``[CLS] tokens[:L-2] [SEP]`` zero-padded to ``L``.

    The vocabulary loads lazily on first use, so a config naming a hub model builds offline and fails
    only when text is actually tokenised.

    Args:
        vocab_file: a ``vocab.txt``, a folder holding ``vocab.txt`` or ``tokenizer.json``, or a hub name;
            ``None``: the vocab shipped in the package (the official one).
        context_length: default number of ids per text (official: 52; up to 512 fits BERT's positions).
    """

    def __init__(self, vocab_file: Optional[str] = None, context_length: int = 52):
        if context_length < 2:
            raise ValueError(f'context_length must be >= 2 to hold [CLS] and [SEP], got {context_length}')
        self.vocab_file = str(vocab_file) if vocab_file else SHIPPED_VOCAB
        self.context_length = context_length
        self._tokenizer = None
        self._encoders = {}  # context length -> Rust tokenizer set to truncate and pad to it

    def __repr__(self) -> str:
        return f'{type(self).__name__}(vocab_file={self.vocab_file!r}, context_length={self.context_length})'

    @property
    def backend(self):
        """The transformers ``BertTokenizerFast``, loaded on first access."""
        if self._tokenizer is None:
            self._tokenizer = _load_fast_tokenizer(self.vocab_file)
        return self._tokenizer

    @property
    def vocab_size(self) -> int:
        return len(self.backend)

    def tokenize(self, text: str) -> List[str]:
        return self.backend.tokenize(text)

    def __call__(self, texts: Union[str, Sequence[str]], context_length: Optional[int] = None) -> torch.Tensor:
        """Tokenise one text or a list into a LongTensor ``[N, context_length]``."""
        if isinstance(texts, str):
            return self.encode(texts, context_length)[0][None]
        encodings = self._encoder(context_length or self.context_length).encode_batch(list(texts))
        return torch.tensor([encoding.ids for encoding in encodings], dtype=torch.long)

    def encode(self, text: str, context_length: Optional[int] = None) -> Tuple[torch.Tensor, bool]:
        """One text: its ids ``[context_length]`` and whether tokens were cut off to fit.

        The per-caption path of data pipelines: no batch machinery, and the truncation flag comes
        with the encoding instead of from a second tokenisation.
        """
        encoding = self._encoder(context_length or self.context_length).encode(text)
        return torch.tensor(encoding.ids, dtype=torch.long), bool(encoding.overflowing)

    def _encoder(self, length: int):
        """The Rust tokenizer set to truncate and pad to ``length``, one copy per length.

        Same ids as the transformers call (``truncation=True, padding='max_length'``, special tokens
        added), without its per-call Python overhead, which dominates on one caption at a time.
        """
        if length not in self._encoders:
            from tokenizers import Tokenizer
            encoder = Tokenizer.from_str(self.backend.backend_tokenizer.to_str())
            encoder.enable_truncation(max_length=length)
            encoder.enable_padding(length=length, pad_id=PAD_ID, pad_token=self.backend.pad_token)
            self._encoders[length] = encoder
        return self._encoders[length]

    def save_pretrained(self, out_dir: str) -> None:
        """Write ``tokenizer.json`` etc. plus a ``vocab.txt`` that the official code and older tools read."""
        os.makedirs(out_dir, exist_ok=True)
        self.backend.save_pretrained(out_dir)
        source = Path(self.vocab_file)
        source = source / 'vocab.txt' if source.is_dir() else source
        if source.is_file() and source.name == 'vocab.txt':
            # Copy the original: the fast tokenizer's vocab drops entries that are line-break characters.
            shutil.copyfile(source, Path(out_dir, 'vocab.txt'))
            return
        vocab = sorted(self.backend.get_vocab().items(), key=lambda item: item[1])
        Path(out_dir, 'vocab.txt').write_text(''.join(f'{token}\n' for token, _ in vocab), encoding='utf-8')


def _load_fast_tokenizer(source: str):
    # transformers 5 ignores BertTokenizerFast(vocab_file=...): pass ``vocab=`` or load a folder.
    from transformers import BertTokenizerFast

    path = Path(source)
    if path.is_file():
        tokenizer = BertTokenizerFast(vocab=str(path), do_lower_case=True, tokenize_chinese_chars=True)
    elif path.is_dir():
        if (path / 'tokenizer.json').is_file():
            tokenizer = BertTokenizerFast.from_pretrained(str(path))
        elif (path / 'vocab.txt').is_file():
            tokenizer = BertTokenizerFast(vocab=str(path / 'vocab.txt'), do_lower_case=True,
                                          tokenize_chinese_chars=True)
        else:
            raise FileNotFoundError(f'tokenizer folder {path} holds neither vocab.txt nor tokenizer.json')
    else:
        try:
            tokenizer = BertTokenizerFast.from_pretrained(source)
        except Exception as err:  # offline hub, typo'd path: say which and what to do
            raise FileNotFoundError(
                f'cannot load a tokenizer from {source!r}: it is not a file or folder here and the hub '
                f'could not serve it ({type(err).__name__}: {err}). Pass a vocab.txt or a model folder.'
            ) from err
    if tokenizer.pad_token_id != PAD_ID or tokenizer.cls_token_id != CLS_ID or tokenizer.sep_token_id != SEP_ID:
        raise ValueError(
            f'tokenizer {source!r} has [PAD]={tokenizer.pad_token_id}, [CLS]={tokenizer.cls_token_id}, '
            f'[SEP]={tokenizer.sep_token_id}; Chinese CLIP needs 0, 101, 102')
    return tokenizer
