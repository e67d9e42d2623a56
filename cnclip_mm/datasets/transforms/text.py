"""Caption cleaning and tokenisation."""
import re
import unicodedata
from typing import Optional, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from cnclip_mm.registry import MODELS, TRANSFORMS

from ..bad_samples import BadSampleError
from ..truncation import TruncationLog

_SPACES = re.compile(r'\s+')
_QUOTES = str.maketrans({'“': '"', '”': '"'})


@TRANSFORMS.register_module()
class CleanCaption(BaseTransform):
    """Normalise a caption: drop control characters, unify quotes, collapse whitespace.

    The official code lower-cases and maps curly quotes to ``"`` before tokenising; the
    tokenizer lower-cases itself, so ``lower`` is off by default. An empty result raises
    :class:`BadSampleError` (the dataset's ``on_bad_sample`` policy decides).

    Args:
        lower: Lower-case the caption too.

    Required Keys:
        - text (optional: items without text pass through)
        - text_source (optional; file and line of the caption, for messages)

    Modified Keys:
        - text
    """

    def __init__(self, lower: bool = False):
        self.lower = lower

    def transform(self, results: dict) -> dict:
        text = results.get('text')
        if text is None:
            return results
        text = str(text)
        if not text.isprintable():  # printable: no control / format characters (category C) to drop
            text = ''.join(ch for ch in text if unicodedata.category(ch)[0] != 'C' or ch in '\t\n')
        text = _SPACES.sub(' ', text.translate(_QUOTES)).strip()
        if self.lower:
            text = text.lower()
        if not text:
            raise BadSampleError(f'{results.get("text_source", "caption")}: caption empty after cleaning')
        results['text'] = text
        return results


@TRANSFORMS.register_module()
class TokenizeText(BaseTransform):
    """Tokenise ``text`` into official ids ``[CLS] ... [SEP]`` zero-padded to the context length.

    Captions longer than the context are truncated (as the official code does) and counted in
    ``truncation`` (shared memory, so counts made in DataLoader workers are seen by the main process);
    ``TruncationReportHook`` logs the count per epoch.

    Args:
        tokenizer: Config of a ``ChineseTokenizer`` (built from MODELS) or the object itself. Left out in a
            config, the config's top-level ``tokenizer`` is filled in (see ``cnclip_mm.utils.share_tokenizer``);
            ``None`` here: the shipped vocab, context 52.
        context_length: Overrides the tokenizer's context length (configs set ``tokenizer.context_length``
            once instead, see ``cnclip_mm.utils.share_tokenizer``).
        cache_size: distinct captions whose ids are kept (the first ones seen, per loader process), so
            later epochs copy them instead of tokenising again (~5 instead of ~80 us a caption; about
            550 bytes an entry, 35 MB when full). 0 turns it off.

    Required Keys:
        - text (optional: items without text pass through)

    Added Keys:
        - text_ids (torch.LongTensor [L])
    """

    def __init__(self, tokenizer: Union[dict, object, None] = None, context_length: Optional[int] = None,
                 cache_size: int = 65536):
        if tokenizer is None:
            tokenizer = dict(type='ChineseTokenizer')
        self.tokenizer = MODELS.build(tokenizer) if isinstance(tokenizer, dict) else tokenizer
        # Fixed here, so the cache below never mixes lengths.
        self.context_length = context_length or getattr(self.tokenizer, 'context_length', None)
        self.cache_size = cache_size
        self._cache = {}  # caption -> (int32 ids as bytes, truncated)
        self.truncation = TruncationLog()

    @property
    def num_truncated(self) -> int:
        """Captions truncated since the last report (over every loader process)."""
        return self.truncation.count

    def transform(self, results: dict) -> dict:
        text = results.get('text')
        if text is None:
            return results
        ids, truncated = self._encode(text)
        self.truncation.record(truncated, f'{results.get("text_source", "")} {text[:40]!r}...'.lstrip() if truncated
                               else '')
        if ids.dim() != 1:
            raise BadSampleError(f'TokenizeText: tokenizer returned shape {tuple(ids.shape)}')
        results['text_ids'] = ids.long()
        return results

    def _encode(self, text: str):
        """The tokenizer's ``(ids, truncated)``; from the cache when the caption was seen before."""
        hit = self._cache.get(text)
        if hit is not None:
            return torch.from_numpy(np.frombuffer(hit[0], dtype=np.int32).astype(np.int64)), hit[1]
        ids, truncated = self.tokenizer.encode(text, context_length=self.context_length)
        if len(self._cache) < self.cache_size and ids.dim() == 1:
            self._cache[text] = (ids.numpy().astype(np.int32).tobytes(), truncated)
        return ids, truncated

    def __repr__(self) -> str:
        return f'{type(self).__name__}(context_length={self.context_length})'
