"""The tiny byte-level tokenizer of the test models, built offline (no download).

Every family's test model uses it with its own special tokens: 256 byte tokens, a few merges
(``user``, ``system``, ``assistant``, so that role names are one id as in Qwen's tokenizers),
fillers up to the first special id, the family's special tokens in the real tokenizer's order,
then fillers up to ``vocab_size``, so that every id the random model samples decodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Vocabulary:
    """Where the tokens of one test model sit."""

    vocab_size: int
    special_base_id: int
    """Id of the first special token (``<|endoftext|>``; 151643 in Qwen's tokenizers)."""
    special_tokens: tuple[str, ...]
    """The family's added tokens, in id order from ``special_base_id``."""
    named_tokens: dict[str, str]
    """Attributes the family's processor reads from its tokenizer (``extra_special_tokens``)."""
    pinned_words: dict[str, int] = field(default_factory=dict)
    """Words placed at fixed ids (the real tokenizer's ``user``/``system``/``assistant``)."""
    plain_tokens: frozenset[str] = frozenset()
    """Added tokens that are not special: kept when decoding (Qwen3's ``<think>``)."""


def token_layout(vocab: Vocabulary) -> dict[str, int]:
    """Every token of the vocabulary and its id, ``0 .. vocab_size - 1`` without gaps."""
    pinned = dict(vocab.pinned_words)
    free = [tok for tok in _byte_tokens() + _merge_tokens() if tok not in pinned]
    layout: dict[str, int] = {}
    next_free = iter(free)
    taken = set(pinned.values())
    for token_id in range(vocab.special_base_id):
        if token_id in taken:
            continue
        token = next(next_free, None)
        layout[token if token is not None else f"<|fill_{token_id}|>"] = token_id
    if next(next_free, None) is not None:
        raise ValueError("special_base_id leaves no room for the byte and merge tokens")
    layout.update(pinned)
    for offset, token in enumerate(vocab.special_tokens):
        layout[token] = vocab.special_base_id + offset
    for token_id in range(vocab.special_base_id + len(vocab.special_tokens), vocab.vocab_size):
        layout[f"<|reserved_{token_id}|>"] = token_id
    return layout


def build_tokenizer(vocab: Vocabulary, *, max_length: int) -> Any:
    """A ``PreTrainedTokenizerFast`` over a byte-level BPE, built offline from ``token_layout``."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    layout = token_layout(vocab)
    added = set(vocab.special_tokens) | {t for t in layout if t.startswith("<|reserved_")}
    bpe_vocab = {tok: i for tok, i in layout.items() if tok not in added}
    merges = [pair for word in _MERGE_WORDS for pair in _merge_chain(word)]
    tokenizer = Tokenizer(models.BPE(vocab=bpe_vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    for token in vocab.special_tokens:  # one at a time: ids follow the list's order
        if token in vocab.plain_tokens:
            tokenizer.add_tokens([AddedToken(token, special=False, normalized=False)])
        else:
            tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False)])
    reserved = sorted((i, t) for t, i in layout.items() if t.startswith("<|reserved_"))
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for _, t in reserved])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        extra_special_tokens=dict(vocab.named_tokens),
        model_max_length=max_length,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


_MERGE_WORDS = ("user", "system", "assistant")


def _merge_chain(word: str) -> list[tuple[str, str]]:
    return [(word[:i], word[i]) for i in range(1, len(word))]


def _merge_tokens() -> list[str]:
    tokens: list[str] = []
    for word in _MERGE_WORDS:
        tokens += [word[: i + 1] for i in range(1, len(word)) if word[: i + 1] not in tokens]
    return tokens


def _byte_tokens() -> list[str]:
    """GPT-2's byte-to-unicode alphabet, in byte order (the ByteLevel pre-tokenizer's)."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]
