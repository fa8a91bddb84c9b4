import pytest

from seqtext.tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    build_char_tokenizer,
    build_word_tokenizer,
    decode,
    encode_batch,
)

TEXTS = ["¿Qué hora es?  Son las 3:30...", "Voy al parque con mi perro.", "Hola, ¿cómo estás? ¡Bien!\tok"]


def test_special_ids_are_fixed():
    for tok in (build_char_tokenizer(TEXTS), build_word_tokenizer(TEXTS, 100)):
        assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [PAD_ID, UNK_ID, BOS_ID, EOS_ID] == [0, 1, 2, 3]


@pytest.mark.parametrize("builder", [build_char_tokenizer, lambda t: build_word_tokenizer(t, 100)])
def test_round_trip(builder):
    tok = builder(TEXTS)
    for text in TEXTS:
        assert decode(tok, encode_batch(tok, [text])[0]) == text


def test_char_round_trips_any_seen_character():
    text = "the cat sat.\nnaïve café 你好 🙂  two  spaces\ttab"
    tok = build_char_tokenizer([text])
    assert decode(tok, encode_batch(tok, [text])[0]) == text


def test_char_vocabulary_is_sorted_and_deterministic():
    a, b = build_char_tokenizer(TEXTS), build_char_tokenizer(list(reversed(TEXTS)))
    assert a.get_vocab() == b.get_vocab()


def test_unseen_character_is_unk():
    tok = build_char_tokenizer(["abc"])
    assert encode_batch(tok, ["aé"])[0] == [tok.token_to_id("a"), UNK_ID]


def test_nfc_normalisation_merges_composed_and_decomposed_accents():
    tok = build_char_tokenizer(["niño"])
    assert encode_batch(tok, ["nin\u0303o"])[0] == encode_batch(tok, ["niño"])[0]


def test_word_tokens_carry_the_space_mark():
    tok = build_word_tokenizer(TEXTS, 100)
    assert tok.encode("Voy al parque.", add_special_tokens=False).tokens == ["Voy", "▁al", "▁parque", "."]


def test_word_vocab_is_capped_and_rare_words_are_unk():
    tok = build_word_tokenizer(TEXTS * 3 + ["rareword"], 10)
    assert tok.get_vocab_size() == 10
    assert UNK_ID in encode_batch(tok, ["rareword"])[0]


def test_word_vocabulary_is_deterministic():
    assert build_word_tokenizer(TEXTS, 50).get_vocab() == build_word_tokenizer(TEXTS, 50).get_vocab()


def test_literal_special_token_text_maps_to_the_special_id():
    # Documented behaviour: typing "<bos>" yields the special id (harmless for a keyboard).
    tok = build_char_tokenizer(["abc"])
    assert encode_batch(tok, ["<bos>a"])[0][0] == BOS_ID
