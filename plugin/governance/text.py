"""Text screens governance shares: key terms, numbers, URLs, identifiers, injected phrases and language."""

# Rules, exactly:
#
# - Key terms: the text lower-cased and split on anything but letters, digits, "." inside a number and "-"
#   inside a word or code (so "6301-6", "2.5" and "vitamin-k-antagonist" stay whole), minus STOP_WORDS, a
#   trailing plural "s" dropped from words of five or more letters, and tokens of one character dropped.
#   Each word that names an ingredient (terminology) adds the ingredient's class keys too, and each class
#   key adds its hyphen-separated parts, so "ibuprofen" meets a passage about "NSAIDs".
# - URLs: the schema already refuses "://" and "www."; here a link is also any host-like run of two or more
#   dot-separated labels ending in a letters-only top-level label of 2 to 24 letters that either is a common
#   top-level domain ("uptodate.com", "dailymed.nlm.nih.gov"), or is followed by a path, query or port
#   ("warfarin-guide.xyz/dose"), or closes three or more labels ("med.example.xyz"), with its path; a scheme
#   ("https:", "mailto:") counts too. Knowledge ids ("kb.x-y") are not hosts. `link_key` is how links
#   compare: lower-cased, without scheme, "//", leading "www." and trailing "/" (governance allows a link
#   only when it is the source URL of a knowledge entry the suggestion cites).
# - Identifiers: e-mail addresses, phone numbers (3-3-4 digit groups, or "+" and 8 or more digits), ISO or
#   slashed dates, US SSN shapes and any run of 6 or more digits (MRN-like) that is not a code the
#   suggestion may legitimately name.
# - Injected instructions: a fixed list of instruction phrases, or any run of `run` consecutive normalised
#   tokens shared with an untrusted chart note (`copied_run`). Tokens (`run_tokens`) are maximal runs of
#   letters or of digits (a number keeps its decimal part), lower-cased; a number loses leading zeros and
#   trailing decimal zeros ("05.50" → "5.5") and a word its plural "s" as for key terms, so digits, doses
#   and punctuation do not hide a copy. A run made only of STOP_WORDS ("for this patient") is ordinary
#   wording and never counts.
# - Language: py3langid (the maintained fork of langid.py: naive Bayes over byte n-grams, its model inside
#   the wheel, no network, deterministic) with normalised probabilities. Text entirely in capitals is
#   lower-cased first. Words that are evidence of no language are masked before classifying: any Latin-script
#   token holding a digit ("CHA2DS2", "6301", "T4"), a capital after its first letter (acronyms: "INR",
#   "eGFR", "NSAIDs") or naming an ingredient or drug class (terminology); drug names and acronyms are shared
#   across languages and mislead a detector on text this short; so are the runs left without a letter
#   (punctuation, units' slashes). What is left decides:
#   - no letters, or the model's "zxx" (no linguistic content) → None;
#   - over half of the letters outside the Latin script → the top language at any confidence (whatever it
#     is, it is not a Latin-script language);
#   - otherwise fewer than 3 words, or a top probability under 0.5 → None (too little text to tell, which
#     does not reject); else the top language.
#   Codes are ISO 639-1, or ISO 639-3 for the few languages of the model that have no two-letter code. The
#   model is loaded (about half a second) on first use, not at import.

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable
from typing import Final, Protocol

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from plugin import terminology
from plugin.terminology import CLASS_KEYS

__all__ = [
    "FUNCTION_WORDS",
    "INJECTION_PHRASES",
    "STOP_WORDS",
    "copied_run",
    "detect_language",
    "find_identifier",
    "find_injection_phrase",
    "find_url",
    "find_urls",
    "function_word_language",
    "key_terms",
    "link_key",
    "run_tokens",
    "without_urls",
    "words",
]

STOP_WORDS: Final = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "also",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "during",
        "each",
        "either",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "him",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "may",
        "might",
        "more",
        "most",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "out",
        "over",
        "own",
        "per",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "whether",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "within",
        "without",
        "would",
        "you",
        "your",
        "yet",
        "via",
        "vs",
        "consider",
        "considering",
        "review",
        "reviewing",
        "discuss",
        "discussing",
        "check",
        "checking",
        "whether",
        "patient",
        "patients",
        "current",
        "currently",
        "recent",
        "recently",
        "note",
        "noted",
        "suggest",
        "suggests",
        "suggested",
        "option",
        "options",
        "possible",
        "possibly",
        "use",
        "used",
        "using",
        "given",
        "take",
        "taking",
        "taken",
        "need",
        "needs",
        "needed",
        "appropriate",
        "based",
    ]
)

# Words that are evidence of one language (or a few), never English clinical wording, for text too short for
# the model: articles, prepositions, conjunctions, pronouns and the verbs a suggestion opens with. Left out on
# purpose: words English shares ("a", "in", "per", "no", "do", "as", "die", "von"), words that double as
# clinical abbreviations or units ("la", "il", "los", "os", "em", "um", "pas", "di") and the Latin of English
# citations ("et", "est").
FUNCTION_WORDS: Final[dict[str, frozenset[str]]] = {
    "en": frozenset(
        [
            "the",
            "and",
            "of",
            "with",
            "for",
            "is",
            "are",
            "on",
            "to",
            "this",
            "that",
            "was",
            "were",
            "has",
            "have",
            "be",
            "been",
            "not",
            "or",
            "at",
            "by",
            "from",
            "after",
            "before",
            "while",
            "because",
            "which",
            "should",
            "could",
            "may",
            "consider",
            "considering",
            "check",
            "checking",
            "review",
            "reviewing",
            "discuss",
            "whether",
        ]
    ),
    "es": frozenset(
        [
            "el",
            "las",
            "del",
            "una",
            "unos",
            "para",
            "con",
            "por",
            "que",
            "su",
            "sus",
            "revisar",
            "considere",
            "considerar",
            "evaluar",
            "valorar",
            "suspender",
            "paciente",
            "pacientes",
            "función",
            "está",
            "según",
        ]
    ),
    "fr": frozenset(
        [
            "le",
            "les",
            "du",
            "des",
            "une",
            "pour",
            "avec",
            "dans",
            "sur",
            "chez",
            "sous",
            "vérifier",
            "envisager",
            "contrôler",
            "surveiller",
            "patiente",
            "fonction",
        ]
    ),
    "de": frozenset(
        [
            "der",
            "das",
            "den",
            "dem",
            "des",
            "und",
            "ist",
            "mit",
            "bei",
            "oder",
            "nicht",
            "ein",
            "eine",
            "zu",
            "auf",
            "für",
            "unter",
            "wird",
            "erwägen",
            "sie",
            "prüfen",
            "kontrolle",
        ]
    ),
    "pt": frozenset(
        [
            "da",
            "dos",
            "das",
            "uma",
            "para",
            "com",
            "não",
            "verificar",
            "avaliar",
            "considere",
            "paciente",
            "pacientes",
            "função",
        ]
    ),
    "it": frozenset(
        [
            "della",
            "delle",
            "dei",
            "degli",
            "nel",
            "nella",
            "con",
            "che",
            "è",
            "valutare",
            "verificare",
            "controllare",
            "paziente",
            "pazienti",
            "funzione",
        ]
    ),
}

_TOKEN: Final = re.compile(r"[^\W_]+(?:[.-][^\W_]+)*", re.UNICODE)
_NUMBER_ONLY: Final = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")
_KB_ID: Final = re.compile(r"\bkb\.[a-z0-9]+(?:-[a-z0-9]+)*", re.IGNORECASE)
_COMMON_TLDS: Final = (
    "com|org|net|gov|edu|int|mil|info|biz|io|ai|app|dev|health|med|eu|uk|us|ca|au|de|fr|es|it|nl|ch|in"
)
_HOST_LABEL: Final = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_LINK_END: Final = r"[^\s<>\"'()\[\]{}]*"  # a link's path, query and fragment run to a space or bracket
_HOST_START: Final = r"(?<![\w.@-])"  # a host starts at a word start, not inside an e-mail address
_URL: Final = re.compile(
    rf"\b(?:https?|ftp|mailto):{_LINK_END}|\bwww\.{_LINK_END}|://"
    rf"|{_HOST_START}(?:{_HOST_LABEL}\.)+(?:{_COMMON_TLDS})(?![\w-])(?:[/:?#]{_LINK_END})?"
    rf"|{_HOST_START}(?:{_HOST_LABEL}\.)+[a-z]{{2,24}}(?:[/?#]|:[0-9]){_LINK_END}"
    rf"|{_HOST_START}(?:{_HOST_LABEL}\.){{2,}}[a-z]{{2,24}}(?![\w-])(?:[/:?#]{_LINK_END})?",
    re.IGNORECASE,
)
_TRAILING: Final = ".,;:!?"
_SCHEME: Final = re.compile(r"^(?:[a-z]+:)?(?://)?(?:www\.)?", re.IGNORECASE)
_EMAIL: Final = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE: Final = re.compile(r"(?<![\w.])(?:\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}|\+\d(?:[\s.-]?\d){7,})(?![\w.])")
_DATE: Final = re.compile(r"(?<!\d)(?:\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4})(?!\d)")
_SSN: Final = re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)")
_DIGIT_RUN: Final = re.compile(r"(?<!\d)\d{6,}(?!\d)")
_WORD: Final = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)
_RUN_TOKEN: Final = re.compile(r"\d+(?:\.\d+)?|[^\W\d_]+", re.UNICODE)

INJECTION_PHRASES: Final = re.compile(
    r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+)?(?:the\s+)?(?:previous|prior|above|earlier|"
    r"preceding|your|safety)\s+(?:instructions|rules|prompts?|guidelines|messages)"
    r"|\bsystem\s+prompt\b|\bdeveloper\s+(?:mode|message)\b|\bnew\s+instructions\b|\byou\s+are\s+now\b"
    r"|\bjailbreak|\bprompt\s+injection\b|\bact\s+as\s+(?:an?\s+)?(?:unrestricted|different)\b",
    re.IGNORECASE,
)

_LANGUAGE_MIN_WORDS: Final = 3
_LANGUAGE_MIN_CONFIDENCE: Final = 0.5
_NO_LANGUAGE: Final = "zxx"  # the model's label for text with no linguistic content
_LATIN_TOKEN: Final = re.compile(r"[0-9A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]+")
_LETTER: Final = re.compile(r"[^\W\d_]")
_OTHER_SCRIPT: Final = re.compile(r"[^\W\d_\x00-\u024f]")  # a letter outside the Latin script
_WITH_LETTER: Final = re.compile(r"\S*[^\W\d_]\S*")  # a whitespace-delimited run holding a letter


def words(text: str) -> list[str]:
    """Lower-case words (letters only) in order, for copied-run detection."""
    return [w.lower() for w in _WORD.findall(text)]


@functools.cache
def _expansions(token: str) -> frozenset[str]:
    found: set[str] = set()
    classes = terminology.classes_of(token) if not _NUMBER_ONLY.match(token) else frozenset()
    if token in CLASS_KEYS:
        classes = classes | {token}
    for key in classes:
        found.add(key)
        found.update(part for part in key.split("-") if len(part) > 1 and part not in STOP_WORDS)
    return frozenset(found)


def _stem(token: str) -> str:
    # Plural and singular must meet ("NSAIDs" in the claim, "NSAID" in the passage).
    if len(token) >= 5 and token.endswith("s") and not token.endswith("ss") and token.isalpha():
        return token[:-1]
    return token


def key_terms(texts: Iterable[str]) -> frozenset[str]:
    """Normalised key terms of some texts, with drug classes added for ingredient names (see above)."""
    terms: set[str] = set()
    for text in texts:
        for raw in _TOKEN.findall(text.lower()):
            if raw in STOP_WORDS or len(raw) < 2:
                continue
            token = _stem(raw)
            terms.add(token)
            terms.update(_expansions(token))
            if token != raw:
                terms.update(_expansions(raw))
    return frozenset(terms)


def find_urls(text: str) -> list[str]:
    """Every link-like fragment of a text, in order, trailing punctuation dropped; knowledge ids excepted."""
    return [m.group(0).rstrip(_TRAILING) for m in _URL.finditer(_KB_ID.sub(" ", text))]


def find_url(text: str) -> str | None:
    """The first link-like fragment of a text, knowledge ids excepted."""
    found = find_urls(text)
    return found[0] if found else None


def link_key(url: str) -> str:
    """A link as links compare: lower-case, no scheme, no "//", no leading "www.", no trailing "/"."""
    return _SCHEME.sub("", url.strip().lower()).rstrip("/")


def without_urls(text: str) -> str:
    """The text with every link-like fragment blanked out (for screens that run after the link check)."""
    return _URL.sub(" ", _KB_ID.sub(" ", text))


def find_identifier(text: str, allowed_codes: frozenset[str]) -> str | None:
    """The kind of the first identifier-like fragment, or None; digit runs in `allowed_codes` pass."""
    for kind, pattern in (("e-mail", _EMAIL), ("date", _DATE), ("SSN", _SSN), ("phone number", _PHONE)):
        if pattern.search(text):
            return kind
    for match in _DIGIT_RUN.finditer(text):
        if match.group(0) not in allowed_codes:
            return "MRN-like digit run"
    return None


def find_injection_phrase(text: str) -> bool:
    return INJECTION_PHRASES.search(text) is not None


def _normalised(token: str) -> str:
    if token[0].isdigit():
        whole, _, fraction = token.partition(".")
        fraction = fraction.rstrip("0")
        return (whole.lstrip("0") or "0") + (f".{fraction}" if fraction else "")
    return _stem(token)


def run_tokens(text: str) -> list[str]:
    """Normalised tokens in order, for copied-run detection (see the module notes)."""
    return [_normalised(t) for t in _RUN_TOKEN.findall(text.lower())]


def copied_run(output_tokens: list[str], untrusted_tokens: list[str], run: int) -> bool:
    """Whether `run` consecutive tokens of untrusted text, not all of them stop words, appear in the output."""
    if len(output_tokens) < run or len(untrusted_tokens) < run:
        return False
    grams = {
        gram
        for i in range(len(untrusted_tokens) - run + 1)
        if not STOP_WORDS.issuperset(gram := tuple(untrusted_tokens[i : i + run]))
    }
    return any(tuple(output_tokens[i : i + run]) in grams for i in range(len(output_tokens) - run + 1))


def function_word_language(text: str, expected: str) -> str | None:
    """Another language the function words of a text point to, "und" on a tie, or None (see the notes)."""
    if expected not in FUNCTION_WORDS:
        return None
    hits = dict.fromkeys(FUNCTION_WORDS, 0)
    for word in _WORD.findall(text.lower()):
        for language, listed in FUNCTION_WORDS.items():
            if word in listed:
                hits[language] += 1
    best = max(hits.values())
    if best <= hits[expected]:
        return None
    leaders = [language for language, count in hits.items() if count == best]
    return leaders[0] if len(leaders) == 1 else "und"


class _Identifier(Protocol):
    def classify(self, text: str) -> tuple[str, float]: ...


_identifier_lock = threading.Lock()
_loaded: list[_Identifier] = []


def _identifier() -> _Identifier:
    # Loaded once per process under a lock: functools.cache lets concurrent first callers (a worker's
    # threads) each load the model, half a second and ~100 MB apiece.
    if not _loaded:
        with _identifier_lock:
            if not _loaded:
                _loaded.append(LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True))
    return _loaded[0]


def warm_up() -> None:
    """Load the language model now (worker start) rather than on the first review."""
    _identifier()


def _names_a_drug(word: str) -> bool:
    return (
        word in CLASS_KEYS
        or word in terminology.terminology().unclassified
        or bool(terminology.classes_of(word))
    )


@functools.lru_cache(maxsize=8192)
def _no_evidence(token: str) -> bool:
    if any(c.isdigit() for c in token) or any(c.isupper() for c in token[1:]):
        return True
    word = token.lower()
    return _names_a_drug(word) or _names_a_drug(_stem(word))


def _masked(match: re.Match[str]) -> str:
    token = match.group(0)
    return " " if _no_evidence(token) else token


def detect_language(text: str) -> str | None:
    """The language of a text as a code ("en", "fr", "hi"), or None when there is too little to tell."""
    if text.isupper():
        text = text.lower()
    kept = _WITH_LETTER.findall(_LATIN_TOKEN.sub(_masked, text))
    if not kept:
        return None
    evidence = " ".join(kept)
    other_script = len(_OTHER_SCRIPT.findall(evidence)) * 2 > len(_LETTER.findall(evidence))
    if not other_script and len(_WORD.findall(evidence)) < _LANGUAGE_MIN_WORDS:
        return None
    code, probability = _identifier().classify(evidence)
    if code == _NO_LANGUAGE or (not other_script and probability < _LANGUAGE_MIN_CONFIDENCE):
        return None
    return code
