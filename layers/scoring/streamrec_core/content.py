"""Content similarity: TF-IDF over an item's title, category and tags, cosine top-k.

Pure numpy (plus ``re`` and ``unicodedata`` for tokenizing): no I/O. The serving side never needs the whole
catalog: the document frequency of a token is the size of its posting list, so the
neighbours of one changed item are computed from the postings of its own tokens and the
term counts of the candidates they name.

Weights (the smooth, sublinear TF-IDF of common IR practice):

* tf weight of a token in a document: 1 + ln(count) (0 for a count of 0);
* idf of a token: ln((1 + N) / (1 + df)) + 1, N = documents, df = documents holding it;
* a document's vector: tf weight * idf per token; similarity: cosine of two vectors.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

import numpy as np

# Words that say nothing about a product; anything else common is damped by its idf.
STOP_WORDS = frozenset({"a", "an", "and", "for", "in", "of", "on", "or", "the", "to", "with", "by", "at"})
MAX_TOKENS_PER_ITEM = 64
# A token names a posting row of the catalog table: a longer run (a script written without
# spaces, or no word at all) is cut, which keeps the key far below DynamoDB's 2,048 bytes.
MAX_TOKEN_CHARS = 64
# Unicode categories of the characters a token is made of: letters, combining marks (inside
# the words of Hindi, Thai, Arabic, Hebrew...) and decimal digits. Symbols such as "™" or
# "²" and punctuation separate tokens, as every non-alphanumeric ASCII character does.
_WORD_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd"})
# Full-width forms of ASCII (common in CJK text: "Ｔｅｎｔ") read as ASCII ("Tent"), and
# half-width katakana and Hangul as their usual forms ("ｶﾞﾑ" as "ガム", once composed; "ﾡ" as
# "ㄱ": their <narrow> mapping, where NFKC would go on to the conjoining jamo).
_WIDTH_FORMS: dict[int, int | str | None] = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_WIDTH_FORMS.update(
    {
        code: int(unicodedata.decomposition(chr(code)).split()[1], 16)
        for code in range(0xFF61, 0xFFDD)
        if unicodedata.decomposition(chr(code)).startswith("<narrow>")
    }
)
# Hangul fillers are letters (Lo) that show nothing: spaces. Variation selectors (which pick
# a glyph of the character before, as in a Japanese place name) are dropped: as marks (Mn)
# they stayed in a word and split a CJK stretch.
_WIDTH_FORMS.update({code: " " for code in (0x115F, 0x1160, 0x3164, 0xFFA0)})
_WIDTH_FORMS.update({code: None for code in (*range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0))})
# Chinese, Japanese and Korean: Han ideographs, kana, Hangul (and the iteration marks 々 〆).
# Written without spaces between words, they are indexed as overlapping character pairs, as
# search engines' CJK analysers do: titles that share a word share its pairs, no dictionary.
_CJK = (
    "\u1100-\u11ff\u3005\u3006\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff\U00020000-\U0003ffff"
)
# Combining marks after a CJK character stay with it (the stretch would split at them).
_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u20d0-\u20ff\ufe20-\ufe2f\u302a-\u302f\u3099\u309a"
_CJK_RUN = re.compile(f"((?:[{_CJK}][{_MARKS}]*)+)")
# A character of a CJK stretch with the marks after it (marks opening a stretch, with no
# character to go with, are left out).
_CLUSTER = re.compile(f"[^{_MARKS}][{_MARKS}]*")
# A CJK character that is a word on its own ("茶", tea; "옷", clothes): Han and Hangul
# syllables. A lone kana ("の"), mark or jamo is not.
_LONE_WORD = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff\U00020000-\U0003ffff]")
_NOT_WORD = re.compile(r"[\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]+")  # ASCII separators, fast path


def _runs(text: str) -> list[str]:
    """Maximal runs of word characters (see ``_WORD_CATEGORIES``) of ``text``."""
    runs = []
    for chunk in _NOT_WORD.split(text):
        if chunk.isascii():
            if chunk:
                runs.append(chunk)
            continue
        word: list[str] = []
        for char in chunk:
            if unicodedata.category(char) in _WORD_CATEGORIES:
                word.append(char)
            elif word:
                runs.append("".join(word))
                word = []
        if word:
            runs.append("".join(word))
    return runs


def _cjk_pairs(run: str) -> list[str]:
    """The pieces of ``run``: each stretch of CJK characters (see ``_CJK_RUN``) as its
    overlapping pairs ("マグカップ" -> "マグ", "グカ", "カッ", "ップ"; a combining mark stays
    with the character before it; a lone character only when it is a word, see
    ``_LONE_WORD``), the stretches between them as they are ("iphoneケース" -> "iphone",
    "ケー", "ース"), cut to ``MAX_TOKEN_CHARS``, those of one character left out."""
    pieces = []
    for index, piece in enumerate(_CJK_RUN.split(run)):
        if index % 2 == 0:  # re.split puts the captured CJK stretches at the odd places
            if len(piece) > 1:
                pieces.append(piece[:MAX_TOKEN_CHARS])
            continue
        clusters = _CLUSTER.findall(piece)
        if len(clusters) == 1:
            if _LONE_WORD.match(clusters[0]):
                pieces.append(clusters[0][:MAX_TOKEN_CHARS])
        else:
            # Cut too: a character may carry hundreds of marks, and a token names a row.
            pairs = zip(clusters, clusters[1:], strict=False)
            pieces.extend((first + second)[:MAX_TOKEN_CHARS] for first, second in pairs)
    return pieces


def tokenize(text: str) -> list[str]:
    """Runs of letters, combining marks and digits of ``text``, case-folded, cut to
    ``MAX_TOKEN_CHARS``; stop words and 1-character tokens dropped. NFC before and after
    folding, so that a composed and a decomposed "é" are one token; full-width ASCII is read
    as ASCII, half-width kana as kana; invisible format characters (a soft hyphen, a
    zero-width joiner, a direction mark) are dropped, so they split no word (a zero-width
    space still does); a dotted capital I ("İ") folds to "i", as its lower case is written.
    Chinese, Japanese and Korean characters give overlapping pairs (see ``_cjk_pairs``), a
    lone Han character or Hangul syllable itself ("茶", tea); variation selectors are dropped,
    Hangul fillers are spaces. Pure ASCII text gives the runs of [a-z0-9] of its lower case."""
    if text.isascii():
        tokens = _runs(text.lower())
        return [t[:MAX_TOKEN_CHARS] for t in tokens if len(t) > 1 and t not in STOP_WORDS]
    # (A zero-width space is a word break, as in Thai text that marks its words so.)
    text = "".join(char for char in text if char == "\u200b" or unicodedata.category(char) != "Cf")
    composed = unicodedata.normalize("NFC", text.translate(_WIDTH_FORMS))
    # casefold() gives "i" + a combining dot for "İ": "İPHONE" would share no token with "iphone".
    folded = unicodedata.normalize("NFC", composed.casefold().replace("i\u0307", "i"))
    return [piece for run in _runs(folded) for piece in _cjk_pairs(run) if piece not in STOP_WORDS]


def term_counts(title: str, category: str, tags: Iterable[str]) -> dict[str, int]:
    """Token -> count over the title, the category and the tags of one item.

    At most ``MAX_TOKENS_PER_ITEM`` distinct tokens are kept (the category's, then the most
    frequent, then the first to appear in the title, the category, the tags), which bounds
    the postings an item touches.
    """
    counts = Counter(tokenize(title))
    in_category = tokenize(category)
    counts.update(in_category)
    for tag in tags:
        counts.update(tokenize(tag))
    first = set(in_category)  # a long title and many tags must not push the category out
    # Ties by first appearance, not alphabetically: kana pairs (from U+3040) sort before kanji
    # ones (from U+4E00), so a long Japanese title lost its kanji pairs, the words that say most.
    position = {token: n for n, token in enumerate(counts)}  # (a Counter keeps insertion order)
    ranked = sorted(counts.items(), key=lambda pair: (pair[0] not in first, -pair[1], position[pair[0]]))
    ranked = ranked[:MAX_TOKENS_PER_ITEM]
    return dict(sorted(ranked))


def idf(document_frequency: np.ndarray, documents: float) -> np.ndarray:
    """Smoothed inverse document frequency.

    Args:
        document_frequency: shape (t,), documents holding each token (>= 0).
        documents: N, the number of documents (raised to the largest df when a df exceeds it,
            so that no idf falls below 1).

    Returns:
        shape (t,), ln((1 + N) / (1 + df)) + 1, always >= 1.
    """
    documents = max(float(documents), float(document_frequency.max(initial=0.0)))
    return np.log((1.0 + documents) / (1.0 + document_frequency)) + 1.0


def tf_weight(counts: np.ndarray) -> np.ndarray:
    """Sublinear term frequency, any shape: 1 + ln(count) where count > 0, else 0."""
    with np.errstate(divide="ignore"):
        return np.where(counts > 0, 1.0 + np.log(np.maximum(counts, 1.0)), 0.0)


def tfidf_norm(counts: np.ndarray, weights: np.ndarray) -> float:
    """L2 norm of one document's TF-IDF vector.

    Args:
        counts: shape (t,), the document's token counts.
        weights: shape (t,), the idf of the same tokens.
    """
    return float(np.sqrt(np.sum((tf_weight(counts) * weights) ** 2)))


def overlap_scores(shared: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """A cheap upper-bound-like pre-score of candidates from postings alone.

    Args:
        shared: shape (n, t), 1 where candidate n holds the query's token t, else 0.
        weights: shape (t,), the idf of the query's tokens.

    Returns:
        shape (n,), sum of idf^2 over the tokens each candidate shares with the query
        (the dot product of binary TF-IDF vectors): used to pick the candidates whose
        exact cosine is worth computing.
    """
    return shared @ (weights**2)


def content_cosine(
    query_counts: np.ndarray,
    candidate_counts: np.ndarray,
    weights: np.ndarray,
    candidate_norms: np.ndarray,
) -> np.ndarray:
    """Cosine between one item's TF-IDF vector and each candidate's.

    Only the query's tokens contribute to the dot product (others are 0 in the query), so
    the candidates' counts are needed on the query's tokens only, plus their full norms.

    Args:
        query_counts: shape (t,), the query item's token counts.
        candidate_counts: shape (n, t), each candidate's counts of the same tokens.
        weights: shape (t,), the idf of those tokens.
        candidate_norms: shape (n,), each candidate's full TF-IDF norm (0 = unknown).

    Returns:
        shape (n,), cosine in [0, 1] (clipped: norms computed at different times may
        disagree slightly); 0 where a norm is 0.
    """
    query = tf_weight(query_counts) * weights
    query_norm = float(np.sqrt(np.sum(query**2)))
    dots = (tf_weight(candidate_counts) * weights) @ query
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = dots / (query_norm * candidate_norms)
    return np.clip(np.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0), 0.0, 1.0)
