"""Language detection (text.detect_language over py3langid) and the governance language step that uses it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from plugin.governance import GovernancePolicy, Reason, steps, text
from plugin.suggestions import AiSuggestion
from tests.support import governance_corpus as corpus

pytestmark = pytest.mark.unit

POLICY = GovernancePolicy()

# Clinical English as the model writes it: drug names, acronyms, doses, units and lab values.
ENGLISH = [
    "Consider checking the INR. Warfarin needs regular INR monitoring and no recent INR result is on file.",
    "Consider reviewing naproxen use with warfarin for bleeding risk. Naproxen is an NSAID and with warfarin "
    "it raises the bleeding risk.",
    "Consider metformin for glucose control. Metformin is first-line; kidney function and eGFR thresholds "
    "were reviewed.",
    "Consider repeating the HbA1c; last HbA1c 8.2% on metformin 1000 mg BID.",
    "Consider checking K+ and eGFR on lisinopril and spironolactone",
    "Consider pantoprazole for GI protection while on naproxen and warfarin.",
    "Consider checking the INR within a week after starting fluconazole",
    "Consider holding metformin before iodinated contrast",
    "Consider amoxicillin-clavulanate 875/125 mg BID x 7 days for CAP; PCN allergy was reviewed.",
    "Consider avoiding nsaids with warfarin because the bleeding risk rises.",
    "CONSIDER CHECKING THE INR ON WARFARIN TODAY",
]
# Short clinical English may be undecidable, but must never be taken for another language.
TERSE_ENGLISH = [
    "Consider a DOAC instead of warfarin for AF: CHA2DS2-VASc 4, HAS-BLED 2, eGFR 25 mL/min/1.73m2.",
    "Consider TSH, free T4; on levothyroxine 75 mcg qd.",
    "Consider statin therapy: LDL-C 4.1 mmol/L, ASCVD risk 12%.",
    "Consider pneumococcal vaccination (PCV20) for age 65+",
    "Consider atorvastatin 40 mg",
    "Consider dose reduction of enoxaparin for CrCl < 30 mL/min",
    "Consider acetaminophen for pain",
    "Consider a lipid panel",
    "Consider annual influenza vaccine",
    "Consider CBC, CMP and lipids",
    "Consider switching to apixaban",
    "Consider influenza vaccination this season",
]
OTHER_LANGUAGES = [
    (
        "Envisager de vérifier l'INR chez cette patiente sous warfarine. La warfarine nécessite une "
        "surveillance régulière de l'INR.",
        "fr",
    ),
    ("Envisager de contrôler la fonction rénale sous metformine", "fr"),
    (
        "Considere revisar el INR del paciente que toma warfarina; no hay ningún resultado reciente en la "
        "historia clínica.",
        "es",
    ),
    ("Considere suspender la metformina porque la función renal ha empeorado.", "es"),
    ("Erwägen Sie eine Kontrolle der INR unter Warfarin", "de"),
    ("Erwägen Sie, die Nierenfunktion unter Metformin zu überprüfen; die eGFR liegt bei 25.", "de"),
    ("Der Wert ist nicht mit dem Befund vereinbar", "de"),
    ("Considere avaliar a função renal antes de manter a metformina; a TFG está abaixo de 30.", "pt"),
    (
        "Considere verificar o INR do paciente em uso de varfarina, pois não há resultado recente no "
        "prontuário.",
        "pt",
    ),
    ("Valutare il controllo dell'INR nel paziente in terapia con warfarin", "it"),
    ("वारफारिन लेने वाले मरीज़ में आईएनआर की जाँच पर विचार करें", "hi"),
    # Another script decides at any confidence: these two are short and the model is unsure of them.
    ("परीक्षण की समीक्षा करें", "hi"),
    ("Проверьте МНО у пациента", "ru"),
    ("考虑检查服用华法林患者的INR", "zh"),
]
UNDECIDABLE = [
    "",
    "   ",
    "INR",
    "1234 5678",
    "eGFR 25",
    "Warfarin",
    "INR, warfarin.",
    "Consider INR",
    "Considere revisar el INR",  # three words left, too few for the model to be sure
    "xxxx yyyy zzzz",  # the model's "no linguistic content", even when sure of it
    "𝔞𝔟𝔠 𝔡𝔢𝔣",  # letters outside the Latin script but no language
]


@pytest.mark.parametrize("sample", ENGLISH)
def test_clinical_english_is_english(sample: str) -> None:
    assert text.detect_language(sample) == "en"


@pytest.mark.parametrize("sample", TERSE_ENGLISH)
def test_terse_clinical_english_is_never_another_language(sample: str) -> None:
    assert text.detect_language(sample) in ("en", None)


@pytest.mark.parametrize(("sample", "expected"), OTHER_LANGUAGES)
def test_other_languages_are_detected(sample: str, expected: str) -> None:
    assert text.detect_language(sample) == expected


@pytest.mark.parametrize("sample", UNDECIDABLE)
def test_short_or_empty_text_is_undecided(sample: str) -> None:
    assert text.detect_language(sample) is None


def test_detection_is_deterministic() -> None:
    samples = [*ENGLISH, *TERSE_ENGLISH, *(s for s, _ in OTHER_LANGUAGES), *UNDECIDABLE]
    first = [text.detect_language(s) for s in samples]
    assert [text.detect_language(s) for s in reversed(samples)] == first[::-1]


def _suggestion(summary: str, rationale: str) -> AiSuggestion:
    return AiSuggestion.model_validate(corpus.suggestion(summary, rationale, corpus.inr_test(), ["M1"]))


def test_language_step_rejects_detected_languages_and_passes_english() -> None:
    english = _suggestion("Consider checking the INR", "Warfarin needs regular INR monitoring.")
    assert steps.check_language(english, "en-US", POLICY) == steps.Verdict(
        None, "declared en-US, detected en"
    )
    for summary, rationale, code in [
        ("Envisager de vérifier l'INR", "La warfarine nécessite une surveillance régulière de l'INR.", "fr"),
        ("वारफारिन पर विचार करें", "वारफारिन लेने वाले मरीज़ में आईएनआर की जाँच पर विचार करें", "hi"),
        ("Considere revisar el INR", "La warfarina requiere un control regular del INR del paciente.", "es"),
    ]:
        verdict = steps.check_language(_suggestion(summary, rationale), "en", POLICY)
        assert verdict.reason is Reason.WRONG_LANGUAGE
        assert verdict.detail == f"detected {code}, configured en"


def test_the_language_model_loads_once_even_when_threads_race_for_it() -> None:
    from plugin.governance import text as module

    text.warm_up()
    loaded = module._identifier()
    saved = module._loaded

    class LoadedWhileWaiting(list):  # type: ignore[type-arg]
        """Empty to the first look, loaded to the second: another thread loaded it while we waited."""

        looks = 0

        def __len__(self) -> int:
            self.looks += 1
            return 0 if self.looks == 1 else super().__len__()

    try:
        module._loaded = LoadedWhileWaiting([loaded])
        assert module._identifier() is loaded, "the waiter takes the model the other thread loaded"
        module._loaded = []
        with ThreadPoolExecutor(max_workers=8) as pool:
            identities = set(pool.map(lambda _: id(module._identifier()), range(8)))
        assert len(identities) == 1 and len(module._loaded) == 1, "eight racing threads, one load"
    finally:
        module._loaded = saved
