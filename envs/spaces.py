"""A text space that accepts any Unicode string up to a length.

Gymnasium's ``spaces.Text`` only accepts its charset (alphanumeric by default), so ``"héllo"``
or an emoji fails ``contains``. Language-model dialogue needs every code point.
"""

from __future__ import annotations

from typing import Any

from gymnasium import spaces

# Samples mix ASCII, accents, CJK, emoji, braces and control characters, so that
# `check_env` and our checker exercise the envs with the kind of text models emit.
_SAMPLE_ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    " \n\t.,;:!?()[]{}\\$^_+-*/=<>'\"`#%&|~@"
    "éèüßçñøåœ"
    "λπΣ∫√∞≈≠≤≥"
    "中文日本語한국어"
    "😀🚀🤖"
    "\x00\x07\u200b\ufeff"
)


class UnicodeText(spaces.Space[str]):
    """Any ``str`` of at most ``max_length`` code points (and at least ``min_length``).

    ``sample()`` draws random strings from a varied alphabet (ASCII, accents, CJK, emoji,
    zero-width and control characters). Samples are plain ``str``; the space has no dtype and
    is not flattenable.
    """

    def __init__(self, max_length: int, *, min_length: int = 0, seed: int | None = None):
        if min_length < 0 or max_length < min_length:
            raise ValueError(
                f"need 0 <= min_length <= max_length, got min_length={min_length}, "
                f"max_length={max_length}"
            )
        self.max_length = int(max_length)
        self.min_length = int(min_length)
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """A random string; its length is at most ``min(max_length, 64)`` for speed."""
        if mask is not None or probability is not None:
            raise ValueError("UnicodeText.sample takes no mask or probability")
        upper = max(self.min_length, min(self.max_length, 64))
        length = int(self.np_random.integers(self.min_length, upper + 1))
        picks = self.np_random.integers(0, len(_SAMPLE_ALPHABET), size=length)
        return "".join(_SAMPLE_ALPHABET[i] for i in picks)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"UnicodeText(max_length={self.max_length})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, UnicodeText)
            and other.max_length == self.max_length
            and other.min_length == self.min_length
        )

    def __hash__(self) -> int:
        return hash((UnicodeText, self.min_length, self.max_length))

    def to_jsonable(self, sample_n: Any) -> list[str]:
        return list(sample_n)

    def from_jsonable(self, sample_n: list[Any]) -> list[str]:
        return [str(s) for s in sample_n]
