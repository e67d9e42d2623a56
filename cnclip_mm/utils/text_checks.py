"""Checks on text before it is embedded: [UNK]-heavy text and names that tokenise to the same ids.

Text outside the vocabulary becomes ``[UNK]`` and silently yields identical embeddings (two classes that
tokenise alike can never be told apart), so the zero-shot hook and ``tools/data/check_dataset.py`` report it.
"""
from typing import Dict, List, Sequence, Tuple

UNK_TOKEN = '[UNK]'


def unk_share(tokenizer, texts: Sequence[str]) -> Tuple[float, List[str]]:
    """Share of ``[UNK]`` among all word pieces of ``texts`` and the texts that hold any.

    Args:
        tokenizer: a ``ChineseTokenizer`` (anything with ``tokenize(text) -> list[str]``).
        texts: the texts to check.

    Returns:
        ``(share in [0, 1], texts containing [UNK])``; share 0 for no tokens.
    """
    total = unknown = 0
    with_unk = []
    for text in texts:
        pieces = tokenizer.tokenize(text)
        count = sum(piece == UNK_TOKEN for piece in pieces)
        total += len(pieces)
        unknown += count
        if count:
            with_unk.append(text)
    return (unknown / total if total else 0.0), with_unk


def identical_tokenisations(tokenizer, names: Sequence[str]) -> List[Tuple[str, ...]]:
    """Groups of distinct names whose word pieces are identical (e.g. 鳐鱼 / 鳟鱼 -> ``[UNK] 鱼``)."""
    groups: Dict[Tuple[str, ...], List[str]] = {}
    for name in dict.fromkeys(names):
        groups.setdefault(tuple(tokenizer.tokenize(name)), []).append(name)
    return [tuple(group) for group in groups.values() if len(group) > 1]


def describe_class_name_problems(tokenizer, names: Sequence[str], unk_warn: float = 0.2) -> List[str]:
    """Human-readable warnings about ``names`` (empty when they are fine)."""
    messages = []
    for group in identical_tokenisations(tokenizer, names):
        pieces = ' '.join(tokenizer.tokenize(group[0]))
        messages.append(f'class names {" / ".join(group)} tokenise to the same ids ({pieces}): their text '
                        'embeddings are identical, so the classifier cannot tell them apart')
    share, with_unk = unk_share(tokenizer, names)
    if share > unk_warn:
        messages.append(f'{share:.0%} of the class-name tokens are [UNK] (not in the vocab '
                        f'{getattr(tokenizer, "vocab_file", "?")}), e.g. {with_unk[:5]}: is the vocab right?')
    return messages
