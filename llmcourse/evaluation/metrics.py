"""Text metrics for generated answers: exact match, token F1, ROUGE-L and "contains the key fact".

Every metric compares a model's `prediction` with the `reference` answer, after normalising both. The
original course's exact-match loop did neither: it compared raw strings, and each reference with a stale
`generated_answer` left over from an earlier cell instead of the answer just generated, so it scored about 0
whatever the model could do (notebook 04, section 2, replays it).
"""
from __future__ import annotations

import re
import string
from collections import Counter

ARTICLES = {"a", "an", "the"}
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}‘’“”–—…]")
# Capitalised words that are grammar, not names, even in mid-sentence.
_NOT_NAMES = {"i", "a", "an", "the", "it", "its", "this", "that", "these", "those", "you", "your", "we", "our",
              "they", "their", "he", "she", "his", "her", "yes", "no", "if", "in", "on", "at", "for", "and", "or"}


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace (the SQuAD recipe)."""
    text = _PUNCT.sub("", str(text).lower())
    return " ".join(w for w in text.split() if w not in ARTICLES)


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when prediction and reference are the same answer after normalisation, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall (normalised tokens, counted with multiplicity)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def _lcs_length(a: list[str], b: list[str]) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        prev_diag = 0
        for j, y in enumerate(b, 1):
            prev_diag, row[j] = row[j], prev_diag + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1: the longest common subsequence of normalised tokens, so word order counts."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    lcs = _lcs_length(pred, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


_STRIP = string.punctuation + "‘’“”…"
_JOINERS = re.compile(r"[-–—/]")  # KB-4401937, 3–5, Oyelaran-Voss, example/claim: each part is a token
_FILLER = {"about", "after", "also", "been", "does", "from", "have", "into", "only", "than", "that", "their",
           "them", "then", "there", "these", "they", "this", "when", "where", "which", "while", "will", "with",
           "your", "what", "like"}


def fact_tokens(text: str) -> list[str]:
    """Normalised tokens; hyphenated words count as their parts and as one word (flat-core: flat, core, flatcore)."""
    tokens = []
    for word in str(text).split():
        parts = [t for part in _JOINERS.split(word) for t in normalize_answer(part).split()]
        tokens += parts + (["".join(parts)] if len(parts) > 1 else [])
    return tokens


def _pieces(text: str) -> list[tuple[str, bool]]:
    """(piece, starts_a_sentence) for each word part, outer punctuation stripped."""
    out, sentence_start = [], True
    for raw in str(text).split():
        for i, part in enumerate(_JOINERS.split(raw)):
            piece = part.strip(_STRIP)
            if piece:
                out.append((piece, sentence_start and i == 0))
        sentence_start = raw.endswith((".", "!", "?", ":"))
    return out


def _is_distinctive(piece: str, sentence_start: bool) -> bool:
    if any(c.isdigit() for c in piece) or "@" in piece or "." in piece:  # numbers, prices, times, codes, e-mails, web addresses
        return True
    letters = [c for c in piece if c.isalpha()]
    if len(letters) >= 2 and all(c.isupper() for c in letters):  # acronyms and codes: CET, EU, RMA
        return True
    # Capitalised mid-sentence words are names; a sentence's first word is capitalised by grammar.
    return piece[0].isupper() and not sentence_start and piece.lower() not in _NOT_NAMES


def key_facts(answer: str, question: str | None = None) -> list[str]:
    """The tokens of `answer` a correct reply must contain, normalised.

    Distinctive tokens: anything with a digit (numbers, prices, dates, times, codes), e-mail and web
    addresses, ALL-CAPS codes, and capitalised names that do not start a sentence. Hyphens, dashes and
    slashes split tokens (KB-4401937 -> kb, 4401937). Tokens the question already contains are dropped:
    repeating the question earns nothing. An answer with no distinctive token falls back to its content
    words (4+ letters, not filler like "with" or "which", not in the question).
    """
    asked = set(fact_tokens(question)) if question else set()
    facts: list[str] = []
    for piece, start in _pieces(answer):
        norm = normalize_answer(piece)
        if norm and _is_distinctive(piece, start) and norm not in asked and norm not in facts:
            facts.append(norm)
    if not facts:
        for norm in fact_tokens(answer):
            if len(norm) >= 4 and norm not in _FILLER and norm not in asked and norm not in facts:
                facts.append(norm)
    return facts


def contains_key_fact(prediction: str, reference: str, question: str | None = None) -> float:
    """1.0 when every key fact of the reference (see `key_facts`) is a token of the prediction, else 0.0.

    If the question already says everything the reference does (no key fact left), exact match decides,
    so the metric is never vacuously 1.0.
    """
    facts = key_facts(reference, question)
    if not facts:
        return exact_match(prediction, reference)
    have = set(fact_tokens(prediction))
    return float(all(f in have for f in facts))


METRICS = {"exact_match": exact_match, "token_f1": token_f1, "rouge_l": rouge_l}


def score_answer(prediction: str, reference: str, question: str | None = None) -> dict[str, float]:
    """All text metrics for one answer, as {metric name: value in [0, 1]}."""
    row = {name: fn(prediction, reference) for name, fn in METRICS.items()}
    row["key_fact"] = contains_key_fact(prediction, reference, question)
    return row
