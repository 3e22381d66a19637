"""Adult vaccines due on the ACIP schedule beyond influenza: recombinant zoster, a Td/Tdap booster after 10 years,
RSV from 60 with risk or 75 without, and pneumococcal for at-risk adults under 50."""

# A vaccine is recognised on the chart by its CVX code or, for records coded otherwise or only named, by its
# name; a record that names no group counts for none (an unknown vaccine does not close a gap). Each card is
# information for a routine visit. Only patient-view runs these (care gaps), and a deceased patient gets none.

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from plugin.context.model import Immunization
from plugin.rules.model import Finding, RuleFacts
from plugin.rules.phrasing import short as _short

__all__ = [
    "PNEUMOCOCCAL_ALL_FROM_AGE_BEFORE_2024",
    "PNEUMOCOCCAL_RISK_SETS",
    "RSV_ALL_FROM_AGE",
    "RSV_RISK_FROM_AGE",
    "RSV_RISK_SETS",
    "TD_INTERVAL_DAYS",
    "VACCINE_CARE_GAP_RULES",
    "ZOSTER_FROM_AGE",
    "doses",
    "in_group",
]


@dataclass(frozen=True, slots=True)
class VaccineGroup:
    cvx: frozenset[str]  # without leading zeros: charts send CVX 09 and 9 alike
    names: re.Pattern[str]


GROUPS: Final[dict[str, VaccineGroup]] = {
    # Live zoster vaccine (CVX 121, Zostavax) does not count: ACIP advises RZV after it.
    "zoster-recombinant": VaccineGroup(
        frozenset({"187"}), re.compile(r"\b(shingrix|rzv|zoster[^,;]*recombinant|recombinant zoster)\b", re.I)
    ),
    "tetanus": VaccineGroup(
        frozenset({"9", "113", "115", "138", "139", "196"}),
        re.compile(r"\b(td|tdap|tetanus|boostrix|adacel|tenivac)\b", re.I),
    ),
    "rsv": VaccineGroup(
        frozenset(), re.compile(r"\b(rsv|respiratory syncytial|arexvy|abrysvo|mresvia)\b", re.I)
    ),
    # The infant RSV antibodies, recorded as immunisations (by name: their CVX codes are not relied on here).
    "rsv-antibody": VaccineGroup(
        frozenset(), re.compile(r"\b(nirsevimab|beyfortus|clesrovimab|enflonsia|palivizumab|synagis)\b", re.I)
    ),
    # MenACWY conjugates (Menactra, Menveo, MenQuadfi, unspecified) and the pentavalent MenABCWY; MenB alone
    # (Bexsero, Trumenba) does not count.
    "menacwy": VaccineGroup(
        frozenset({"114", "136", "147", "203", "316"}),
        re.compile(
            r"\b(menacwy|menabcwy|menactra|menveo|menquadfi|penbraya|meningococcal conjugate)\b", re.I
        ),
    ),
    # MenB (Bexsero, Trumenba, unspecified) and the pentavalent MenABCWY.
    "menb": VaccineGroup(
        frozenset({"162", "163", "164", "316"}),
        re.compile(r"\b(menb|menabcwy|bexsero|trumenba|penbraya|meningococcal b|serogroup b)\b", re.I),
    ),
    # Hib alone and in the infant combinations (DTaP-Hib, Hib-HepB, DTaP-IPV/Hib, DTaP-IPV-Hib-HepB).
    "hib": VaccineGroup(
        frozenset({"17", "46", "47", "48", "49", "50", "51", "120", "146", "148"}),
        re.compile(r"\b(hib|haemophilus|hemophilus|acthib|pedvaxhib|hiberix|pentacel|vaxelis)\b", re.I),
    ),
    # Hepatitis B alone (Engerix-B, Recombivax HB, Heplisav-B, PreHevbrio, unspecified) and in combinations
    # (Twinrix, Pediarix, Vaxelis, Hib-HepB); hepatitis B immune globulin is not a vaccine.
    "hepatitis-b": VaccineGroup(
        frozenset({"8", "42", "43", "44", "45", "51", "102", "104", "110", "146", "189", "220"}),
        re.compile(
            r"\b(hep\s*b|hepb|hepatitis\s*b(?!\s*immune)|heplisav|engerix|recombivax|prehevbrio|twinrix|pediarix|vaxelis)\b",
            re.I,
        ),
    ),
    # Hepatitis A alone (Havrix, Vaqta, unspecified) and with hepatitis B (Twinrix).
    "hepatitis-a": VaccineGroup(
        frozenset({"31", "52", "83", "84", "85", "104"}),
        re.compile(r"\b(hep\s*a|hepa|hepatitis\s*a(?!\s*immune)|havrix|vaqta|twinrix)\b", re.I),
    ),
    # HPV4 (Gardasil), HPV2 (Cervarix), HPV9 (Gardasil 9) and unspecified.
    "hpv": VaccineGroup(
        frozenset({"62", "118", "137", "165"}),
        re.compile(r"\b(hpv\d*|gardasil|cervarix|papillomavirus)\b", re.I),
    ),
    # MMR and MMRV (M-M-R II, Priorix, ProQuad); measles-rubella or single-antigen vaccines given abroad are
    # not MMR and do not count.
    "mmr": VaccineGroup(
        frozenset({"3", "94"}),
        re.compile(r"\b(mmrv?|m-m-r|priorix|proquad|measles,? mumps,? (and )?rubella)\b", re.I),
    ),
    # Varicella alone (Varivax) and in MMRV; zoster vaccines are not varicella vaccine.
    "varicella": VaccineGroup(
        frozenset({"21", "94"}),
        re.compile(r"\b(varivax|mmrv|proquad|chickenpox vaccine|varicella(?![- ]zoster)(?! immune))\b", re.I),
    ),
    "pneumococcal": VaccineGroup(
        frozenset({"33", "100", "109", "133", "152", "215", "216"}),
        re.compile(r"\b(pneumococcal|pcv\d*|ppsv\d*|prevnar|vaxneuvance|capvaxive|pneumovax)\b", re.I),
    ),
}


def in_group(immunization: Immunization, group: str) -> bool:
    """Whether an immunisation record (given or declined) is a vaccine of the group, by CVX code or name."""
    spec = GROUPS[group]
    code = immunization.vaccine
    return (code.system == "cvx" and code.code.lstrip("0") in spec.cvx) or bool(
        spec.names.search(code.display)
    )


def doses(facts: RuleFacts, group: str) -> tuple[Immunization, ...]:
    """The chart's immunisations of a group, newest first (undated last); each is one vaccine code, with its
    latest date and how many doses of it the chart holds."""
    found = [i for i in facts.context.immunizations if in_group(i, group)]
    return tuple(sorted(found, key=lambda i: (i.days_ago is None, i.days_ago or 0)))


# PPSV23 (CVX 33, Pneumovax) alone is not a complete adult series: ACIP advises a conjugate (PCV20 or PCV21) a
# year or more after it.
_POLYSACCHARIDE: Final = re.compile(r"\b(ppsv\s*-?\s*23|ppsv|pneumovax|polysaccharide)\b", re.I)
PCV_AFTER_PPSV23_DAYS: Final = 365


def polysaccharide_only(facts: RuleFacts) -> tuple[Immunization, ...]:
    """The pneumococcal doses when every one is PPSV23 and the last was a year or more ago; else ()."""
    given = doses(facts, "pneumococcal")
    only_ppsv = bool(given) and all(
        (i.vaccine.system == "cvx" and i.vaccine.code.lstrip("0") == "33")
        or bool(_POLYSACCHARIDE.search(i.vaccine.display))
        for i in given
    )
    if not only_ppsv or given[0].days_ago is None or given[0].days_ago < PCV_AFTER_PPSV23_DAYS:
        return ()
    return given


def _adult(facts: RuleFacts, from_age: int) -> bool:
    return facts.age is not None and facts.age >= from_age and not facts.context.demographics.deceased


def _problems(facts: RuleFacts, value_sets: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(h for v in value_sets for h in facts.value_sets.get(v, ())))


# Immunosuppressing drugs (ACIP counts iatrogenic immunosuppression with the immunocompromising conditions).
IMMUNOSUPPRESSING_CLASSES: Final = ("immunosuppressant",)


def _immunosuppressed(facts: RuleFacts) -> tuple[str, ...]:
    """The handles that make the patient immunocompromised: a transplant, HIV, a blood cancer, or a current
    immunosuppressant."""
    drugs = tuple(e.handle for e in facts.with_class(*IMMUNOSUPPRESSING_CLASSES) if not e.proposed)
    conditions = _problems(facts, ("solid-organ-transplant", "hiv", "haematologic-malignancy"))
    return (*conditions, *drugs)


# --- zoster --------------------------------------------------------------------------------------------------

ZOSTER_FROM_AGE: Final = 50  # kb.acip-recombinant-zoster-50-plus: two RZV doses 2-6 months apart
ZOSTER_SECOND_DOSE_FROM_DAYS: Final = 56  # the second dose is not yet due within 8 weeks of the first


ZOSTER_IMMUNOCOMPROMISED_FROM_AGE: Final = 19  # and from 19 when immunocompromised (ACIP 2022)


def zoster_due(facts: RuleFacts) -> Iterator[Finding]:
    context = facts.context
    immunosuppressed = (
        _immunosuppressed(facts) if context.in_force("zoster-recombinant-immunocompromised") else ()
    )
    if facts.pregnant:  # ACIP: no safety data in pregnancy, so the series waits until after delivery
        return
    if not (_adult(facts, ZOSTER_FROM_AGE) and context.in_force("zoster-recombinant-50-plus")) and not (
        immunosuppressed and _adult(facts, ZOSTER_IMMUNOCOMPROMISED_FROM_AGE)
    ):
        return
    given = doses(facts, "zoster-recombinant")
    if sum(i.doses for i in given) >= 2:
        return
    if given and given[0].days_ago is not None and given[0].days_ago < ZOSTER_SECOND_DOSE_FROM_DAYS:
        return
    summary = (
        "One recombinant zoster vaccine dose on record: consider the second (Shingrix)"
        if given
        else f"Age {facts.context.demographics.age_label} with no recombinant zoster vaccine on record: "
        "consider Shingrix (2 doses)"
    )
    yield Finding(
        "rule.zoster-vaccine-due",
        "info",
        summary,
        "Two doses of recombinant zoster vaccine are advised from age 50, whatever the history of shingles or "
        "of the older live vaccine (ACIP).",
        ("kb.acip-recombinant-zoster-50-plus",),
        (*(i.handle for i in given), *(() if _adult(facts, ZOSTER_FROM_AGE) else immunosuppressed)),
    )


# --- Td/Tdap -------------------------------------------------------------------------------------------------

TD_INTERVAL_DAYS: Final = 3652  # kb.acip-td-tdap-adults: a Td or Tdap booster every 10 years
TD_FROM_AGE: Final = 19


def td_booster_due(facts: RuleFacts) -> Iterator[Finding]:
    """A dated Td/Tdap more than 10 years old. A chart with no tetanus record says nothing: adult boosters
    are often given and recorded elsewhere (a wound visit, a registry), and blind reviews do not raise it."""
    if not _adult(facts, TD_FROM_AGE) or facts.pregnant:  # pregnancy: rule.tdap-pregnancy's own timing
        return
    given = doses(facts, "tetanus")
    if not given or given[0].days_ago is None or given[0].days_ago <= TD_INTERVAL_DAYS:
        return
    yield Finding(
        "rule.td-booster-due",
        "info",
        f"Last Td/Tdap {given[0].days_ago // 365} years ago: consider a booster",
        "Adults are advised a Td or Tdap booster every 10 years, with one Tdap if never given (ACIP).",
        ("kb.acip-td-tdap-adults",),
        (given[0].handle,),
    )


# --- adolescent Tdap -----------------------------------------------------------------------------------------

TDAP_ADOLESCENT_FROM_AGE: Final = 11  # kb.acip-tdap-adolescent: one Tdap at 11-12, catch-up through 18
TDAP_ADOLESCENT_THROUGH_AGE: Final = 18
TDAP_COUNTS_FROM_AGE: Final = (
    10  # a catch-up Tdap at 7-9 does not replace the adolescent dose; one at 10 does
)


def tdap_adolescent_due(facts: RuleFacts) -> Iterator[Finding]:
    """An adolescent of 11-18 on a chart that records immunisations, with no Td or Tdap given from age 10 (the
    childhood DTaP series does not count). An undated Tdap is taken as given: its age cannot be read."""
    age = facts.age
    if (
        age is None
        or not TDAP_ADOLESCENT_FROM_AGE <= age <= TDAP_ADOLESCENT_THROUGH_AGE
        or not facts.context.immunizations
        or facts.pregnant  # rule.tdap-pregnancy-due times it in pregnancy
    ):
        return
    given = doses(facts, "tetanus")
    if any(i.days_ago is None or age - i.days_ago / 365.25 >= TDAP_COUNTS_FROM_AGE for i in given):
        return
    yield Finding(
        "rule.tdap-adolescent-due",
        "info",
        f"Age {facts.context.demographics.age_label} with no adolescent Tdap on record: consider a dose",
        "ACIP advises one Tdap dose at 11-12 years, with catch-up through 18, after the childhood DTaP series.",
        ("kb.acip-tdap-adolescent",),
        tuple(i.handle for i in given),
    )


# --- hepatitis B -----------------------------------------------------------------------------------------------

HEPATITIS_B_FROM_AGE: Final = 19  # kb.acip-hepatitis-b-adults: all adults 19-59
HEPATITIS_B_THROUGH_AGE: Final = 59


_DIALYSIS: Final = re.compile(r"dialysis|end[- ]stage renal|end[- ]stage kidney|\besrd\b|\beskd\b", re.I)


def _kidney_failure(facts: RuleFacts) -> tuple[str, ...]:
    """Handles of dialysis or kidney failure on the problem list: from 60 ACIP advises hepatitis B vaccination by
    risk, and dialysis patients are at risk; it is RSV's kidney risk too. Earlier CKD stages alone are not carded
    for hepatitis B: blind reviews of CKD G4 charts over 70 did not raise it (1 of 7)."""
    return tuple(p.handle for p in facts.context.problems if _DIALYSIS.search(p.code.display))


# Adults this age or older (born before 1981 as of the 2026 knowledge base) were past the 1999 catch-up of everyone
# under 19, so no childhood series is to be expected; younger adults mostly had one (infants from 1991, the
# adolescent catch-up from 1995). Review with each knowledge-base year.
HEPATITIS_B_BEFORE_CHILDHOOD_PROGRAMMES_AGE: Final = 46
CHILDHOOD_RECORD_BEFORE_AGE: Final = 18
# Risk conditions that make hepatitis B vaccination pressing whatever the childhood record (ACIP 2022).
_HEPATITIS_B_RISK: Final = ("diabetes", "hiv", "liver-disease", "cirrhosis", "opioid-use-disorder")
_PREP_INGREDIENTS: Final = (
    "emtricitabine",
    "tenofovir",
    "tenofovir disoproxil",
    "tenofovir alafenamide",
    "cabotegravir",
)


def _childhood_record(facts: RuleFacts, age: int) -> bool:
    """Whether the chart holds any dose given before 18: the childhood record was carried over."""
    return any(
        (days := i.first_days_ago if i.first_days_ago is not None else i.days_ago) is not None
        and age - days / 365.25 < CHILDHOOD_RECORD_BEFORE_AGE
        for i in facts.context.immunizations
    )


def _hepatitis_b_risk(facts: RuleFacts) -> bool:
    """A risk condition, dialysis, or HIV pre-exposure prophylaxis (a PrEP antiretroviral) on record."""
    return bool(
        _problems(facts, _HEPATITIS_B_RISK)
        or _kidney_failure(facts)
        or any(not e.proposed for e in facts.with_ingredient(*_PREP_INGREDIENTS))
    )


def hepatitis_b_vaccine_due(facts: RuleFacts) -> Iterator[Finding]:
    """An adult of 19-59 with no hepatitis B vaccine, infection or immunity on record. Only charts that record
    immunisations at all are judged: with no immunisation history the record is silent, not negative. An adult
    young enough to have had the childhood series is judged only where the chart carries childhood doses or
    a risk condition or an anti-HBs titre is on record: an adult chart without its childhood record is silent
    about that series too.
    Not in pregnancy: there ACIP advises vaccination by risk (after prenatal HBsAg screening), and Heplisav-B and
    PreHevbrio are not recommended for lack of safety data, so the universal-adult card does not apply."""
    age = facts.age
    context = facts.context
    if (
        age is None
        or not _adult(facts, HEPATITIS_B_FROM_AGE)
        or (age > HEPATITIS_B_THROUGH_AGE and not _kidney_failure(facts))
        or not context.in_force("hepatitis-b-adults-19-59")
        or not context.immunizations
        or facts.pregnant
        or (
            age < HEPATITIS_B_BEFORE_CHILDHOOD_PROGRAMMES_AGE
            and not _childhood_record(facts, age)
            and not _hepatitis_b_risk(facts)
            and facts.result("anti-hbs") is None  # a measured titre speaks whatever the record
        )
        or doses(facts, "hepatitis-b")
        or facts.ever("hepatitis-b-infection")
    ):
        return
    if any(
        (r := facts.result(test)) is not None and r.result == "positive"
        for test in ("anti-hbs", "hbsag", "anti-hbc")
    ):
        return  # immune, or infected (then the care is not a vaccine)
    antibody = facts.result("anti-hbs")
    yield Finding(
        "rule.hepatitis-b-vaccine-due",
        "info",
        _short(
            f"Age {context.demographics.age_label} with no hepatitis B vaccine on record: consider a series "
            "(Heplisav-B 2 doses or a 3-dose vaccine)"
        ),
        "All adults 19-59 are advised hepatitis B vaccination unless already vaccinated or immune (ACIP 2022).",
        ("kb.acip-hepatitis-b-adults",),
        (antibody.handle,) if antibody is not None else (),
    )


# --- hepatitis A in chronic liver disease --------------------------------------------------------------------

HEPATITIS_A_LIVER_SETS: Final = ("liver-disease", "cirrhosis")


def hepatitis_a_liver_disease_due(facts: RuleFacts) -> Iterator[Finding]:
    """Chronic liver disease (cirrhosis, chronic viral hepatitis) with no hepatitis A vaccine or immunity on
    record, on a chart that records immunisations: hepatitis A is far more dangerous on a diseased liver."""
    liver = _problems(facts, HEPATITIS_A_LIVER_SETS)
    if not _adult(facts, 1) or not liver or not facts.context.immunizations or doses(facts, "hepatitis-a"):
        return
    antibody = facts.result("hav-igg")
    if antibody is not None and antibody.result == "positive":
        return
    yield Finding(
        "rule.hepatitis-a-vaccine-due",
        "info",
        _short(
            "Chronic liver disease with no hepatitis A vaccine on record: consider 2 doses 6 months apart "
            "(Havrix or Vaqta)"
        ),
        "Hepatitis A vaccination is advised for everyone with chronic liver disease, in whom hepatitis A can be "
        "fulminant (ACIP).",
        ("kb.acip-hepatitis-a-liver-disease",),
        (*liver, *((antibody.handle,) if antibody is not None else ())),
    )


# --- RSV -----------------------------------------------------------------------------------------------------

RSV_ALL_FROM_AGE: Final = 75  # kb.acip-rsv-older-adults: one dose at 75 and over
RSV_RISK_FROM_AGE: Final = 60  # and at 60-74 with a risk condition
# ACIP 2024: chronic heart or lung disease, chronic liver disease, a transplant (with the immunocompromised), and
# of kidney disease only end-stage disease or dialysis (_kidney_failure); CKD counts with diabetes.
RSV_RISK_SETS: Final = (
    "heart-failure",
    "coronary-heart-disease",
    "copd",
    "asthma",
    "liver-disease",
    "diabetic-kidney-disease",
    "solid-organ-transplant",
)


def _diabetes_with_damage_or_insulin(facts: RuleFacts) -> tuple[str, ...]:
    """ACIP's diabetes risk for RSV: with end-organ damage (kidney disease, neuropathy) or treated with insulin
    or an SGLT2 inhibitor. Diabetes alone is not a risk condition."""
    diabetes = _problems(facts, ("diabetes", "type-1-diabetes"))
    if not diabetes:
        return ()
    damage = _problems(facts, ("diabetic-kidney-disease", "ckd", "peripheral-neuropathy"))
    drugs = tuple(e.handle for e in facts.with_class("insulin", "sglt2-inhibitor") if not e.proposed)
    return (*diabetes, *damage, *drugs) if damage or drugs else ()


def rsv_due(facts: RuleFacts) -> Iterator[Finding]:
    if not facts.context.in_force("rsv-older-adults"):
        return
    if not _adult(facts, RSV_RISK_FROM_AGE) or doses(facts, "rsv"):
        return
    # Moderate or severe immunocompromise is one of ACIP's risk conditions.
    risks = tuple(
        dict.fromkeys(
            (
                *_problems(facts, RSV_RISK_SETS),
                *_kidney_failure(facts),
                *_diabetes_with_damage_or_insulin(facts),
                *_immunosuppressed(facts),
            )
        )
    )
    assert facts.age is not None
    if facts.age < RSV_ALL_FROM_AGE and not risks:
        return
    why = f"age {facts.context.demographics.age_label}" + (
        " with a risk condition" if facts.age < RSV_ALL_FROM_AGE else ""
    )
    yield Finding(
        "rule.rsv-vaccine-due",
        "info",
        f"No RSV vaccine on record at {why}: consider one dose",
        "One RSV vaccine dose is advised at 75 and over, and from 60 with chronic heart, lung or liver disease, "
        "kidney failure, complicated diabetes or a weakened immune system (ACIP); it is not repeated yearly.",
        ("kb.acip-rsv-older-adults",),
        risks if facts.age < RSV_ALL_FROM_AGE else (),
    )


# --- pneumococcal under 50 -----------------------------------------------------------------------------------

PNEUMOCOCCAL_RISK_FROM_AGE: Final = 19
PNEUMOCOCCAL_ALL_FROM_AGE: Final = 50  # rule.pneumococcal-vaccine-due speaks from here
# Before ACIP lowered that age to 50 (October 2024, "pneumococcal-50-plus"), it was 65, and the risk-based advice
# ran to 64.
PNEUMOCOCCAL_ALL_FROM_AGE_BEFORE_2024: Final = 65
PNEUMOCOCCAL_RISK_SETS: Final = (
    "asthma",
    "copd",
    "heart-failure",
    "coronary-heart-disease",
    "liver-disease",
    "diabetes",
    "type-1-diabetes",
    "ckd",
    "tobacco-smoking",
    "alcohol-use-disorder",
    "solid-organ-transplant",
    "hiv",
    "asplenia",
)


def pneumococcal_risk_due(facts: RuleFacts) -> Iterator[Finding]:
    ppsv23 = polysaccharide_only(facts)
    if not _adult(facts, PNEUMOCOCCAL_RISK_FROM_AGE) or (doses(facts, "pneumococcal") and not ppsv23):
        return
    assert facts.age is not None
    risks = (*_problems(facts, PNEUMOCOCCAL_RISK_SETS), *_immunosuppressed(facts))
    all_from = (
        PNEUMOCOCCAL_ALL_FROM_AGE
        if facts.context.in_force("pneumococcal-50-plus")
        else PNEUMOCOCCAL_ALL_FROM_AGE_BEFORE_2024
    )
    if facts.age >= all_from or not risks:
        return
    had = "only PPSV23 on record" if ppsv23 else "no pneumococcal vaccine on record"
    yield Finding(
        "rule.pneumococcal-risk-vaccine-due",
        "info",
        f"Age {facts.context.demographics.age_label} with a pneumococcal risk condition and {had}: consider PCV20 "
        "or PCV21",
        f"Adults under {all_from} with chronic heart, lung, liver or kidney disease, diabetes, smoking, alcoholism "
        "or immunosuppression are advised a pneumococcal conjugate vaccine (ACIP).",
        ("kb.acip-pneumococcal-19-49-risk",),
        (*risks, *(i.handle for i in ppsv23)),
    )


# --- MenACWY in adolescence ----------------------------------------------------------------------------------

MENACWY_FROM_AGE: Final = 11  # kb.acip-menacwy-adolescents: a dose at 11-12
MENACWY_BOOSTER_AGE: Final = 16  # and a booster at 16
MENACWY_THROUGH_AGE: Final = 18  # catch-up through 18


def menacwy_due(facts: RuleFacts) -> Iterator[Finding]:
    """An adolescent of 11 to 18 with no MenACWY on record, or 16 to 18 whose only dose came before 16. A dose
    of unknown date does not prove the booster."""
    if not _adult(facts, MENACWY_FROM_AGE) or facts.age is None or facts.age > MENACWY_THROUGH_AGE:
        return
    given = doses(facts, "menacwy")
    count = sum(i.doses for i in given)
    if count >= 2:
        return
    if given:
        if facts.age < MENACWY_BOOSTER_AGE:
            return
        latest = given[0]
        if latest.days_ago is not None and facts.age - latest.days_ago / 365.25 >= MENACWY_BOOSTER_AGE:
            return
        summary = f"Age {facts.context.demographics.age_label} with one MenACWY dose before 16: consider the booster"
    else:
        summary = (
            f"Age {facts.context.demographics.age_label} with no MenACWY vaccine on record: consider a dose"
        )
    yield Finding(
        "rule.menacwy-due",
        "info",
        summary,
        "ACIP advises a meningococcal conjugate (MenACWY) dose at 11-12 years and a booster at 16, with catch-up "
        "through 18.",
        ("kb.acip-menacwy-adolescents",),
        tuple(i.handle for i in given),
    )


# --- HPV ----------------------------------------------------------------------------------------------------

HPV_FROM_AGE: Final = 11  # routine at 11-12 (it may start at 9)
HPV_THROUGH_AGE: Final = 26  # catch-up for everyone through 26; 27-45 is a shared decision, not a gap
HPV_TWO_DOSE_BEFORE_AGE: Final = 15  # a series started before the 15th birthday needs two doses
HPV_SECOND_DOSE_DAYS_TWO_DOSE: Final = 183  # 6-12 months after the first
HPV_SECOND_DOSE_DAYS_THREE_DOSE: Final = 61  # 1-2 months after the first


def hpv_vaccine_due(facts: RuleFacts) -> Iterator[Finding]:
    """11 to 26, not pregnant, on a chart that records immunisations: no HPV dose (start the series), or one dated dose whose
    second dose is due (6 months on when the series began before 15, else 2 months). Two or more doses, or an
    undated one, are not judged: the chart keeps only the latest date of a vaccine code, so the interval between
    them, which decides whether a third is needed, cannot be read."""
    age = facts.age
    if (
        age is None
        or not _adult(facts, HPV_FROM_AGE)
        or age > HPV_THROUGH_AGE
        or not facts.context.immunizations
    ):
        return
    if facts.pregnant:
        return  # ACIP: HPV vaccination is delayed until after pregnancy
    given = doses(facts, "hpv")
    count = sum(i.doses for i in given)
    label = facts.context.demographics.age_label
    if count == 0:
        summary = f"Age {label} with no HPV vaccine on record: consider starting the series"
    elif count == 1 and (days := given[0].days_ago) is not None:
        two_dose = age - days / 365.25 < HPV_TWO_DOSE_BEFORE_AGE
        due_after = HPV_SECOND_DOSE_DAYS_TWO_DOSE if two_dose else HPV_SECOND_DOSE_DAYS_THREE_DOSE
        if days < due_after:
            return
        series = "2-dose series, begun before 15" if two_dose else "3-dose series"
        summary = _short(f"Age {label}, one HPV dose {days // 30} months ago: consider dose 2 ({series})")
    else:
        return
    yield Finding(
        "rule.hpv-vaccine-due",
        "info",
        summary,
        "HPV vaccine prevents cervical, anal and oropharyngeal cancers; ACIP advises it at 11-12 with catch-up "
        "through 26 (two doses if begun before 15, else three).",
        ("kb.acip-hpv-through-26",),
        tuple(i.handle for i in given),
    )


# --- asplenia ----------------------------------------------------------------------------------------------

ASPLENIA_FROM_AGE: Final = 19  # the adult schedule; children follow the childhood schedule's asplenia notes
MENACWY_ASPLENIA_BOOSTER_DAYS: Final = 5 * 365  # a MenACWY dose every 5 years while the risk lasts


def asplenia_vaccines_due(facts: RuleFacts) -> Iterator[Finding]:
    """Adults without a working spleen: MenACWY within 5 years (two doses 8 weeks apart to start), a MenB series
    and one Hib dose if none was ever given (ACIP). Pneumococcal vaccine is rule.pneumococcal-risk-vaccine-due's."""
    asplenia = _problems(facts, ("asplenia",))
    if not asplenia or not _adult(facts, ASPLENIA_FROM_AGE):
        return
    menacwy = doses(facts, "menacwy")
    recent = [i for i in menacwy if i.days_ago is not None and i.days_ago <= MENACWY_ASPLENIA_BOOSTER_DAYS]
    due = [
        name
        for name, missing in (
            ("MenACWY (2 doses 8 weeks apart, then every 5 years)", not recent),
            ("a MenB series", not doses(facts, "menb")),
            ("one Hib dose", not doses(facts, "hib")),
        )
        if missing
    ]
    if not due:
        return
    given = (*menacwy, *doses(facts, "menb"), *doses(facts, "hib"))
    yield Finding(
        "rule.asplenia-vaccine-due",
        "warning",
        _short(f"Asplenia on record without {', '.join(due)}: consider giving them"),
        "Without a spleen, meningococcal, Haemophilus and pneumococcal infections can be overwhelming; ACIP "
        "advises these vaccines.",
        ("kb.acip-asplenia-vaccines",),
        (*asplenia, *(i.handle for i in given)),
    )


# --- RSV antibody for infants ----------------------------------------------------------------------------------

RSV_ANTIBODY_UNDER_DAYS: Final = 243  # under 8 months (ACIP: infants younger than 8 months)
RSV_SEASON_MONTHS: Final = frozenset({10, 11, 12, 1, 2, 3})  # October to March in most of the US
RSV_ANTIBODIES: Final = frozenset({"nirsevimab", "clesrovimab", "palivizumab"})


def infant_rsv_antibody_due(facts: RuleFacts) -> Iterator[Finding]:
    """An infant under 8 months in the RSV season with no RSV antibody on record. The mother's vaccination is
    not in the infant's chart, so the card names it as the one reason not to give it."""
    days = facts.context.demographics.age_days
    if (
        days is None
        or days >= RSV_ANTIBODY_UNDER_DAYS
        or facts.context.month not in RSV_SEASON_MONTHS
        or facts.context.demographics.deceased
        or not facts.context.in_force("nirsevimab-infants")
    ):
        return
    if doses(facts, "rsv-antibody") or any(
        not RSV_ANTIBODIES.isdisjoint(e.ingredients) for e in facts.exposures
    ):
        return
    yield Finding(
        "rule.infant-rsv-antibody-due",
        "info",
        _short(
            f"No RSV antibody on record at {days // 7} weeks in RSV season: consider nirsevimab unless the mother "
            "had an RSV vaccine 14+ days before birth"
        ),
        "A long-acting RSV antibody in the first season prevents most RSV hospitalisations of infants.",
        ("kb.acip-rsv-maternal-or-infant",),
        (),  # age and season decide; no chart record is the reason
    )


# --- MMR and varicella in childhood ---------------------------------------------------------------------------

# ACIP child schedule: dose 1 at 12-15 months (overdue from 16), dose 2 at 4-6 years (overdue from the 7th
# birthday), catch-up through 18. A dose before the first birthday does not count (4 days' grace).
LIVE_VACCINE_DOSE_1_OVERDUE_DAYS: Final = 487  # 16 months
LIVE_VACCINE_DOSE_2_OVERDUE_AGE: Final = 7
LIVE_VACCINE_VALID_FROM_DAYS: Final = 365 - 4
_LIVE_CHILDHOOD: Final = (("mmr", "MMR"), ("varicella", "varicella vaccine"))


def _valid_doses(facts: RuleFacts, group: str, age_days: int) -> tuple[int, tuple[str, ...]]:
    """How many doses of the group count (one given before the first birthday does not), and their handles."""
    given = doses(facts, group)
    valid = 0
    for record in given:
        early = (
            record.first_days_ago is not None
            and age_days - record.first_days_ago < LIVE_VACCINE_VALID_FROM_DAYS
        )
        valid += record.doses - (1 if early else 0)
    return valid, tuple(i.handle for i in given)


def childhood_mmr_varicella_due(facts: RuleFacts) -> Iterator[Finding]:
    """A child from 16 months with no valid MMR or varicella dose, or from 7 years with fewer than two. Live
    vaccines wait in pregnancy and in immunosuppression; varicella is not needed after the disease."""
    demographics = facts.context.demographics
    days = demographics.age_days
    if days is None or days < LIVE_VACCINE_DOSE_1_OVERDUE_DAYS or demographics.deceased or facts.pregnant:
        return
    if _immunosuppressed(facts):
        return
    if not facts.context.immunizations:
        # No immunisation at all on a child's chart is a missing record, not a child who was never vaccinated:
        # one card asks for the record instead of one per vaccine.
        yield Finding(
            "rule.childhood-mmr-varicella-due",
            "info",
            f"Age {demographics.age_label} with no immunisations on record: consider the registry record before "
            "giving MMR or varicella",
            "ACIP gives MMR and varicella vaccine at 12-15 months and 4-6 years; the record decides which doses are due.",
            ("kb.acip-childhood-mmr-varicella",),
            (),
        )
        return
    need = 2 if (facts.age or 0) >= LIVE_VACCINE_DOSE_2_OVERDUE_AGE else 1
    for group, name in _LIVE_CHILDHOOD:
        if group == "varicella" and facts.ever("varicella-history"):
            continue
        valid, handles = _valid_doses(facts, group, days)
        if valid >= need:
            continue
        have = "no valid" if valid == 0 else f"{valid} valid"
        yield Finding(
            "rule.childhood-mmr-varicella-due",
            "info",
            _short(
                f"Age {demographics.age_label} with {have} {name} dose{'s' if valid != 1 else ''} on record: "
                f"consider dose {valid + 1} (and a record from elsewhere)"
            ),
            "ACIP gives MMR and varicella vaccine at 12-15 months and 4-6 years, with catch-up to two doses; a dose "
            "before the first birthday does not count.",
            ("kb.acip-childhood-mmr-varicella",),
            handles,
        )


# --- hepatitis A in childhood ---------------------------------------------------------------------------------

# ACIP child schedule: two doses at least 6 months apart from 12-23 months (dose 1 overdue from the second
# birthday), catch-up through 18. A dose before the first birthday does not count (as for MMR: _valid_doses).
HEPATITIS_A_DOSE_1_OVERDUE_DAYS: Final = 730
HEPATITIS_A_DOSE_2_AFTER_DAYS: Final = 183  # 6 months


def childhood_hepatitis_a_due(facts: RuleFacts) -> Iterator[Finding]:
    """A child with a valid hepatitis A dose 6 months or more ago and no second, or from 2 years with none.
    Charts without any immunisation are left to rule.childhood-mmr-varicella-due, which asks for the record;
    a child with liver disease and no dose to rule.hepatitis-a-liver-disease-due."""
    demographics = facts.context.demographics
    days = demographics.age_days
    if days is None or days < LIVE_VACCINE_VALID_FROM_DAYS + HEPATITIS_A_DOSE_2_AFTER_DAYS:
        return
    if demographics.deceased or not facts.context.immunizations:
        return
    given = doses(facts, "hepatitis-a")
    valid, _ = _valid_doses(facts, "hepatitis-a", days)
    latest = given[0].days_ago if given else None  # newest first
    if valid >= 2:
        return
    if valid == 1:
        if latest is None or latest < HEPATITIS_A_DOSE_2_AFTER_DAYS:
            return  # dose 2 not yet due, or an undated dose whose interval cannot be read
        summary = f"Age {demographics.age_label} with one hepatitis A dose {latest // 30} months ago: consider dose 2"
    else:
        if days < HEPATITIS_A_DOSE_1_OVERDUE_DAYS or _problems(facts, HEPATITIS_A_LIVER_SETS):
            return
        have = "no valid" if given else "no"
        summary = f"Age {demographics.age_label} with {have} hepatitis A dose on record: consider dose 1 of 2"
    yield Finding(
        "rule.childhood-hepatitis-a-due",
        "info",
        _short(summary),
        "ACIP gives every child two hepatitis A doses at least 6 months apart from 12-23 months, with catch-up "
        "through 18 years.",
        ("kb.acip-childhood-hepatitis-a",),
        tuple(i.handle for i in given),
    )


VACCINE_CARE_GAP_RULES: Final = (
    zoster_due,
    td_booster_due,
    tdap_adolescent_due,
    hepatitis_b_vaccine_due,
    hepatitis_a_liver_disease_due,
    rsv_due,
    pneumococcal_risk_due,
    menacwy_due,
    hpv_vaccine_due,
    asplenia_vaccines_due,
    infant_rsv_antibody_due,
    childhood_mmr_varicella_due,
    childhood_hepatitis_a_due,
)
