"""The numpy TF-IDF core against small corpora computed by hand."""

import math

import numpy as np
from streamrec_core import content_cosine, idf, overlap_scores, term_counts, tfidf_norm, tokenize, top_k
from streamrec_core.content import MAX_TOKENS_PER_ITEM, tf_weight


def test_tokenize_lowercases_splits_and_drops_stop_words():
    assert tokenize("The Ultralight 2-Person Tent, for hiking!") == ["ultralight", "person", "tent", "hiking"]
    assert tokenize("") == []


def test_tokenize_keeps_letters_of_every_script_and_bounds_a_token():
    # Accented letters are part of a word (an ASCII-only pattern made "Café" into "caf").
    assert tokenize("Café crème Übergröße Zelt") == ["café", "crème", "übergrösse", "zelt"]
    # Full-width letters and a decomposed "é" are the same tokens as the plain ones.
    assert tokenize("Ｔｅｎｔ Cafe\u0301") == tokenize("tent Café") == ["tent", "café"]
    assert tokenize("帐篷 双人") == ["帐篷", "双人"]
    # Combining marks inside words (Devanagari, Thai, vowelled Arabic) stay in the word.
    assert tokenize("हिन्दी किताब") == ["हिन्दी", "किताब"]
    assert tokenize("กระเป๋าเดินทาง") == ["กระเป๋าเดินทาง"]
    assert tokenize("كِتَابٌ") == ["كِتَابٌ"]
    # Symbols separate words as before: "Bag™" is "bag", "2m²" is "2m".
    assert tokenize("Sleeping Bag™ 2m² £40") == ["sleeping", "bag", "2m", "40"]
    assert tokenize("snake_case") == ["snake", "case"]
    assert tokenize("x" * 600) == ["x" * 64]  # a posting row's key stays small
    # Invisible format characters split no word (a soft hyphen, common in German feeds, a
    # direction mark); a zero-width space is a word break. "İ" folds to a plain "i".
    assert tokenize("Kaffee\xadmaschine cof\xadfee ab\u200ecd") == ["kaffeemaschine", "coffee", "abcd"]
    assert tokenize("กาง\u200bเกง") == ["กาง", "เกง"]
    assert tokenize("İPHONE 15 Kılıf") == tokenize("iphone 15 kılıf") == ["iphone", "15", "kılıf"]


def test_chinese_japanese_and_korean_text_is_indexed_by_overlapping_pairs():
    # Written without spaces, a title was one token: "陶器マグカップ" shared nothing with
    # "ステンレス製マグカップ". Their pairs share the word's: マグ, グカ, カッ, ップ.
    steel, clay = tokenize("ステンレス製マグカップ 350ml"), tokenize("陶器マグカップ 大")
    assert steel == ["ステ", "テン", "ンレ", "レス", "ス製", "製マ", "マグ", "グカ", "カッ", "ップ", "350ml"]
    assert set(steel) & set(clay) == {"マグ", "グカ", "カッ", "ップ"}
    assert tokenize("茶 緑茶") == ["茶", "緑茶"]  # a lone Han character is a word, kept whole
    assert tokenize("帐篷 双人") == ["帐篷", "双人"]
    assert tokenize("iPhone15ケース") == ["iphone15", "ケー", "ース"]  # Latin and kana apart
    assert tokenize("ｶﾞﾝﾀﾞﾑ") == tokenize("ガンダム") == ["ガン", "ンダ", "ダム"]  # half-width kana
    assert tokenize("가방을 샀다") == ["가방", "방을", "샀다"]
    assert tokenize("人々") == ["人々"]  # the iteration mark belongs to the word
    # Scripts without spaces that pairs do not suit (Thai) still give one token per run.
    assert tokenize("กระเป๋าเดินทาง") == ["กระเป๋าเดินทาง"]
    # A lone kana, mark or sign is no word; a lone Hangul syllable is ("옷", clothes).
    assert tokenize("Ｔシャツ の 本 ー 〆 옷") == ["シャ", "ャツ", "本", "옷"]
    # A variation selector (a glyph variant in a place name) splits nothing; a combining mark
    # stays with its character; half-width Hangul reads as the jamo ordinary text uses, and
    # its filler, which shows nothing, as a space.
    assert tokenize("葛\U000e0100飾区") == tokenize("葛飾区") == ["葛飾", "飾区"]
    assert tokenize("ア\u3099イ") == ["ア\u3099イ"] and tokenize("\uff9eｶﾞ") == []
    # Marks make no token longer than MAX_TOKEN_CHARS: a token names a row (2,048 bytes).
    assert tokenize("東" + "\u20d0" * 300 + "京") == ["東" + "\u20d0" * 63]
    assert tokenize("ﾡﾤ") == tokenize("ㄱㄴ") == ["ㄱㄴ"] and tokenize("\uffa0") == []


def test_term_counts_over_title_category_and_tags():
    counts = term_counts("Down sleeping bag", "camping", ["down", "Sleeping Bags"])
    assert counts == {"bag": 1, "bags": 1, "camping": 1, "down": 2, "sleeping": 2}


def test_a_long_title_keeps_its_first_words_not_its_alphabetically_first():
    # 73 distinct pairs: "真空断熱" then 70 distinct hiragana. Kana pairs sort before kanji
    # ones, so alphabetically the pairs of the title's first words were the ones dropped.
    title = "真空断熱" + "".join(chr(0x3041 + n) for n in range(70))
    counts = term_counts(title, "", [])
    assert len(counts) == MAX_TOKENS_PER_ITEM and {"真空", "空断", "断熱"} <= set(counts)


def test_term_counts_are_bounded():
    counts = term_counts(" ".join(f"w{n}" for n in range(200)), "", [])
    assert len(counts) == MAX_TOKENS_PER_ITEM
    # The category's tokens are kept first: a long title and many tags pushed "zelte" out
    # (equal counts were kept alphabetically).
    counts = term_counts(" ".join(f"w{n:02d}" for n in range(40)), "Zelte", [f"t{n:02d}" for n in range(40)])
    assert len(counts) == MAX_TOKENS_PER_ITEM and "zelte" in counts


def test_idf_by_hand():
    # N = 3: df 1 -> ln(4/2) + 1; df 3 -> ln(4/4) + 1 = 1
    np.testing.assert_allclose(idf(np.array([1.0, 3.0]), 3), [math.log(2) + 1, 1.0])
    # a df above N (stale count) is clipped, never below 1
    assert idf(np.array([5.0]), 3)[0] == 1.0


def test_tf_weight_is_sublinear():
    np.testing.assert_allclose(tf_weight(np.array([0.0, 1.0, 2.0])), [0.0, 1.0, 1 + math.log(2)])


def test_cosine_by_hand():
    # Corpus: A = {tent, ultralight}, B = {tent, stove}, C = {stove}; N = 3.
    # df: tent 2, ultralight 1, stove 2; idf = ln((1 + 3) / (1 + df)) + 1.
    tent = math.log(4 / 3) + 1
    ultralight = math.log(4 / 2) + 1
    stove = tent
    weights = np.array([tent, ultralight])  # A's tokens: [tent, ultralight]
    norm_a = math.hypot(tent, ultralight)
    norm_b = math.hypot(tent, stove)
    norm_c = stove
    assert tfidf_norm(np.array([1.0, 1.0]), weights) == np.float64(norm_a)
    candidates = np.array([[1.0, 0.0], [0.0, 0.0]])  # B and C on A's tokens
    scores = content_cosine(np.array([1.0, 1.0]), candidates, weights, np.array([norm_b, norm_c]))
    np.testing.assert_allclose(scores, [tent * tent / (norm_a * norm_b), 0.0])
    # the document itself scores 1
    assert content_cosine(np.array([1.0, 1.0]), np.array([[1.0, 1.0]]), weights, np.array([norm_a]))[
        0
    ] == np.float64(1.0)


def test_cosine_guards_unknown_norms():
    scores = content_cosine(np.array([1.0]), np.array([[1.0]]), np.array([1.0]), np.array([0.0]))
    assert scores.tolist() == [0.0]


def test_overlap_prescore_and_top_k():
    shared = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    weights = np.array([1.0, 2.0, 3.0])
    scores = overlap_scores(shared, weights)
    np.testing.assert_allclose(scores, [10.0, 14.0, 9.0])
    assert top_k(scores, 2).tolist() == [1, 0]
