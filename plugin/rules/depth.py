"""Second-depth checks: AKI on the triple whammy, potassium before K-raising starts, low K/Mg, acetaminophen totals (and in cirrhosis), amiodarone tests, anticholinergics with dementia drugs, Tdap in pregnancy."""

# Each rule reads only the labs in LABS_READ, judged current by their windows in knowledge/lab_validity.json
# (plugin.rules.freshness); a stale or missing value is unknown and is said so on the card, never read as normal.

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from plugin.context.model import Measurement
from plugin.rules.catalog import CHOLINESTERASE_INHIBITORS, POTASSIUM_RAISING, POTASSIUM_START_BLOCKED, Rule
from plugin.rules.dose_range import analgesic_nsaids, daily_frequency, ingredient_strength_mg, single_dose_mg
from plugin.rules.dosing import INTRAVENOUS, SKIN_EYE_EAR, dosage_of, route_text
from plugin.rules.model import Exposure, Finding, LabOrder, RuleFacts, Severity
from plugin.rules.phrasing import handles as _handles
from plugin.rules.phrasing import names as _names
from plugin.rules.phrasing import proposed as _proposed
from plugin.rules.phrasing import short as _short
from plugin.rules.renal_rules import aki_on_triple_whammy
from plugin.rules.vaccines import in_group

__all__ = [
    "ACETAMINOPHEN_MAX_DAILY_MG",
    "CHOLINESTERASE_INHIBITORS",
    "DEPTH_CARE_GAP_RULES",
    "DEPTH_MEDICATION_RULES",
    "LABS_READ",
    "MAGNESIUM_LOW_MG_DL",
    "POTASSIUM_LOW",
    "TDAP_WEEKS",
]

POTASSIUM = LabOrder("2823-3", "Potassium [Moles/volume] in Serum or Plasma")
TSH = LabOrder("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma")
ALT = LabOrder("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma")
LABS_READ: Final = ("potassium", "magnesium", "tsh", "alt", "platelets")

# --- rule.low-potassium-magnesium ------------------------------------------------------------------------

POTASSIUM_LOW: Final = 3.5  # mmol/L; below it is hypokalaemia (kb.diuretic-hypokalaemia-replacement)
MAGNESIUM_LOW_MG_DL: Final = 1.8  # the QT rule's threshold (plugin/rules/high_harm.py), as the entry says
_WASTING: Final = ("loop-diuretic", "thiazide")
_K_SENSITIVE: Final = ("cardiac-glycoside",)
# Low potassium or magnesium makes a QT-prolonging drug more likely to cause torsades: a current low value is
# replaced on one too (kb.qt-drug-hypokalaemia). A stale value is asked for again only on the drugs above.
_QT: Final = ("qt-prolonging",)


def low_potassium_magnesium(facts: RuleFacts) -> Iterator[Finding]:
    """Potassium below 3.5 mmol/L or magnesium below 1.8 mg/dL on a thiazide or loop diuretic, digoxin or a
    QT-prolonging drug.

    Only current values decide. A stale potassium that was already low is asked for again here, unless
    rule.potassium-recheck asks for it (a potassium-raising drug or digoxin is taken)."""
    drugs = facts.with_class(*_WASTING, *_K_SENSITIVE, *_QT)
    if not drugs:
        return
    potassium, magnesium = facts.current("potassium"), facts.current("magnesium")
    low: list[tuple[str, Measurement]] = []
    if potassium is not None and potassium.value < POTASSIUM_LOW:
        low.append((f"K {potassium.value:g}", potassium))
    if magnesium is not None and magnesium.value < MAGNESIUM_LOW_MG_DL:
        low.append((f"Mg {magnesium.value:g}", magnesium))
    evidence = ["kb.diuretic-hypokalaemia-replacement"]
    if any(e.has(*_K_SENSITIVE) for e in drugs):
        evidence.append("kb.digoxin-monitoring")
    if facts.with_class("qt-prolonging"):
        evidence.append("kb.qt-drug-hypokalaemia")
    if low:
        said = " and ".join(text for text, _ in low)
        yield Finding(
            "rule.low-potassium-magnesium",
            "warning",
            _short(f"{said} on {_names(drugs)}: consider replacing it and rechecking within a week"),
            "Thiazide and loop diuretics waste potassium and magnesium, and low values make digoxin and "
            "QT-prolonging drugs more toxic.",
            tuple(evidence),
            (*_handles(drugs), *(m.handle for _, m in low)),
            _proposed(drugs),
            POTASSIUM if any(m is potassium for _, m in low) else None,
        )
        return
    drugs = facts.with_class(*_WASTING, *_K_SENSITIVE)
    if not drugs:
        return
    stale = facts.stale("potassium") if potassium is None else None
    if stale is None or stale.value >= POTASSIUM_LOW or facts.with_class(*POTASSIUM_RAISING, *_K_SENSITIVE):
        return
    when = "undated" if stale.days_ago is None else f"{stale.days_ago} days old"
    yield Finding(
        "rule.low-potassium-magnesium",
        "warning",
        _short(f"Last K {stale.value:g} ({when}) on {_names(drugs)}: consider rechecking and replacing it"),
        "The last potassium was low on a potassium-wasting diuretic, and nothing recent shows it corrected.",
        tuple(evidence),
        (*_handles(drugs), stale.handle),
        _proposed(drugs),
        POTASSIUM,
    )


# --- rule.potassium-unknown-before-starting ---------------------------------------------------------------


def potassium_unknown_before_starting(facts: RuleFacts) -> Iterator[Finding]:
    """A potassium-raising drug being started with no current potassium: the start threshold above cannot be
    judged, so the card asks for the value first (fail closed; the 90-day potassium window decides current)."""
    starting = tuple(e for e in facts.with_class(*POTASSIUM_START_BLOCKED) if e.proposed)
    if not starting or facts.current("potassium") is not None:
        return
    also = tuple(e for e in facts.with_class(*POTASSIUM_RAISING) if e not in starting)
    stale = facts.stale("potassium")
    if stale is None:
        when = "no potassium on record"
    elif stale.days_ago is None:
        when = f"only an undated potassium ({stale.value:g})"
    else:
        when = f"the last potassium ({stale.value:g}) {stale.days_ago} days old"
    with_others = f" with {_short(_names(also), 40)}" if also else ""
    yield Finding(
        "rule.potassium-unknown-before-starting",
        "warning",
        _short(
            f"Starting {_names(starting)}{with_others} and {when}: consider checking potassium and "
            "kidney function first"
        ),
        "These drugs are started only below a potassium of 5.0 mmol/L, and the chart has no value recent "
        "enough to tell; an old value is shown, not used.",
        ("kb.potassium-raising-drug-start-threshold", "kb.potassium-monitoring-raas"),
        (*_handles(starting, also), *((stale.handle,) if stale is not None else ())),
        _proposed(starting),
        POTASSIUM,
    )


# --- rule.acetaminophen-daily-total ----------------------------------------------------------------------

ACETAMINOPHEN_MAX_DAILY_MG: Final = 4000.0  # kb.acetaminophen-daily-maximum: 4 g in 24 h from all sources


@dataclass(frozen=True, slots=True)
class _Daily:
    exposure: Exposure
    mg: float | None  # None: dose, frequency or strength not readable (or a proposal, which has no dosage)


def _acetaminophen_daily(facts: RuleFacts, exposure: Exposure) -> _Daily:
    dosage = dosage_of(facts, exposure)
    if dosage is None:
        return _Daily(exposure, None)
    one = single_dose_mg(dosage, ingredient_strength_mg(exposure.label, "acetaminophen"))
    times = daily_frequency(dosage)
    most = one * times if one is not None and times is not None else None
    cap = dosage.max_daily_mg  # the prescriber's "do not exceed": the most this product can add
    if cap is not None:
        most = cap if most is None else min(most, cap)
    return _Daily(exposure, most)


def _grams(mg: float) -> str:
    return f"{mg / 1000:.2f}".rstrip("0").rstrip(".")


def acetaminophen_daily_total(facts: RuleFacts) -> Iterator[Finding]:
    """Acetaminophen from every product (combinations included, as-needed counted at their most frequent use)
    above 4 g a day; or, with two or more products, a total that cannot be read (fail closed: said unknown).

    One draft order alone is the dose-range rule's (rule.dose-above-maximum); one product whose dose cannot
    be read is no total across products and gets no card here."""
    products = [e for e in facts.exposures if "acetaminophen" in e.ingredients]
    if not products or (len(products) == 1 and products[0].proposed):
        return
    daily = [_acetaminophen_daily(facts, e) for e in products]
    known = sum(d.mg for d in daily if d.mg is not None)
    unknown = [d.exposure for d in daily if d.mg is None]
    if known > ACETAMINOPHEN_MAX_DAILY_MG:
        parts = " + ".join(f"{_grams(d.mg)} g" for d in daily if d.mg is not None)
        more = f" plus {len(unknown)} of unread dose" if unknown else ""
        summary = (
            f"Acetaminophen {_grams(known)} g/day ({parts}{more}) is above the 4 g maximum: "
            "consider stopping one product or lowering the dose"
        )
    elif unknown and len(products) >= 2:
        summary = (
            f"Acetaminophen in {len(products)} products ({_short(_names(products), 60)}), total daily dose "
            "unknown: consider checking it stays at or below 4 g"
        )
    else:
        return
    yield Finding(
        "rule.acetaminophen-daily-total",
        "warning",
        _short(summary),
        "Acetaminophen's liver toxicity follows the total from all products, and combination products are the "
        "usual hidden source of an excess.",
        ("kb.acetaminophen-daily-maximum",),
        _handles(products),
        _proposed(products),
    )


# --- rule.acetaminophen-cirrhosis -----------------------------------------------------------------------

ACETAMINOPHEN_CIRRHOSIS_MAX_DAILY_MG: Final = 2000.0  # kb.acetaminophen-cirrhosis: at most 2 g a day


def acetaminophen_in_cirrhosis(facts: RuleFacts) -> Iterator[Finding]:
    """Acetaminophen above 2 g a day (all products, as-needed at their most frequent use) with cirrhosis. Above
    4 g the daily-total card speaks for every patient and this one stays quiet; an unread dose is that card's."""
    cirrhosis = facts.value_sets.get("cirrhosis", ())
    products = [e for e in facts.exposures if "acetaminophen" in e.ingredients]
    if not cirrhosis or not products:
        return
    daily = [_acetaminophen_daily(facts, e) for e in products]
    known = sum(d.mg for d in daily if d.mg is not None)
    if not ACETAMINOPHEN_CIRRHOSIS_MAX_DAILY_MG < known <= ACETAMINOPHEN_MAX_DAILY_MG:
        return
    yield Finding(
        "rule.acetaminophen-cirrhosis",
        "warning",
        _short(
            f"Cirrhosis and acetaminophen {_grams(known)} g/day: consider at most 2 g a day (it stays the "
            "preferred analgesic)"
        ),
        "In cirrhosis acetaminophen remains the analgesic of choice, at no more than 2 g a day.",
        ("kb.acetaminophen-cirrhosis",),
        (*cirrhosis, *_handles(products)),
        _proposed(products),
    )


# --- rule.insulin-infusion-low-potassium -----------------------------------------------------------------

INSULIN_INFUSION_MIN_POTASSIUM: Final = 3.5  # kb.dka-potassium-before-insulin


def _intravenous(facts: RuleFacts, exposure: Exposure) -> bool:
    return bool(INTRAVENOUS.search(route_text(facts, exposure)))


def insulin_infusion_low_potassium(facts: RuleFacts) -> Iterator[Finding]:
    """An intravenous insulin order while the current potassium is below 3.5 mmol/L (hyperglycaemic crisis):
    insulin drives potassium into the cells, so potassium is replaced first."""
    potassium = facts.current("potassium")
    if potassium is None or potassium.value >= INSULIN_INFUSION_MIN_POTASSIUM:
        return
    drugs = tuple(e for e in facts.with_class("insulin") if e.proposed and _intravenous(facts, e))
    if not drugs:
        return
    yield Finding(
        "rule.insulin-infusion-low-potassium",
        "critical",
        _short(
            f"IV insulin ({_names(drugs)}) with potassium {potassium.value:g}: consider holding insulin until "
            "potassium is replaced to 3.5 or more"
        ),
        "Insulin moves potassium into cells; started while potassium is low it can cause arrhythmia and "
        "respiratory muscle weakness.",
        ("kb.dka-potassium-before-insulin",),
        (potassium.handle, *_handles(drugs)),
        _proposed(drugs),
    )


# --- rule.anticoagulant-low-platelets ----------------------------------------------------------------------

FULL_DOSE_MIN_PLATELETS: Final = 50.0  # x10^3/uL; kb.anticoagulation-thrombocytopenia
ANY_DOSE_MIN_PLATELETS: Final = 25.0
# Daily doses at or under these are prophylactic; above them, treatment doses.
PROPHYLACTIC_MAX_MG_A_DAY: Final[dict[str, float]] = {"enoxaparin": 40.0, "fondaparinux": 2.5}


def _treatment_dose(facts: RuleFacts, exposure: Exposure) -> bool:
    """An oral anticoagulant, an IV heparin, or a low-molecular-weight heparin or fondaparinux above its
    prophylactic dose (an unread dose counts as a treatment dose: it cannot be shown to be prophylactic)."""
    if exposure.has("doac", "vitamin-k-antagonist"):
        return True
    for ingredient, prophylactic in PROPHYLACTIC_MAX_MG_A_DAY.items():
        if ingredient in exposure.ingredients:
            dosage = dosage_of(facts, exposure)
            one = (
                None
                if dosage is None
                else single_dose_mg(dosage, ingredient_strength_mg(exposure.label, ingredient))
            )
            times = None if dosage is None else daily_frequency(dosage)
            return one is None or times is None or one * times > prophylactic
    return "heparin" in exposure.ingredients and _intravenous(facts, exposure)


def anticoagulant_low_platelets(facts: RuleFacts) -> Iterator[Finding]:
    """A treatment-dose anticoagulant with platelets below 50, or any anticoagulant below 25."""
    platelets = facts.current("platelets")
    if platelets is None or platelets.value >= FULL_DOSE_MIN_PLATELETS:
        return
    very_low = platelets.value < ANY_DOSE_MIN_PLATELETS
    drugs = tuple(
        e
        for e in facts.with_class("anticoagulant")
        if not SKIN_EYE_EAR.search(e.label) and (very_low or _treatment_dose(facts, e))
    )
    if not drugs:
        return
    option = (
        "consider holding anticoagulation"
        if very_low
        else "consider a reduced or prophylactic dose, or platelet support"
    )
    yield Finding(
        "rule.anticoagulant-low-platelets",
        "critical",
        _short(
            f"{'Any dose of ' if very_low else 'Full-dose '}{_names(drugs)} with platelets {platelets.value:g}: {option}"
        ),
        "Bleeding risk climbs steeply under 50,000 platelets: treatment doses are reduced from 50 and anticoagulation "
        "is held under 25.",
        ("kb.anticoagulation-thrombocytopenia",),
        (platelets.handle, *_handles(drugs)),
        _proposed(drugs),
    )


# --- rule.urate-lowering-without-flare-prophylaxis --------------------------------------------------------

FLARE_PROPHYLAXIS_START_DAYS: Final = 90  # the first three months of urate-lowering therapy
_SYSTEMIC_STEROIDS: Final = frozenset({"prednisone", "prednisolone", "methylprednisolone"})


def urate_lowering_without_flare_prophylaxis(facts: RuleFacts) -> Iterator[Finding]:
    """Allopurinol or febuxostat started within 90 days (or ordered now) for gout, with no colchicine, NSAID or
    low-dose steroid beside it: starting urate-lowering therapy brings on flares."""
    gout = facts.value_sets.get("gout", ())
    starts = tuple(
        e for e in facts.with_class("xanthine-oxidase-inhibitor") if e.new(FLARE_PROPHYLAXIS_START_DAYS)
    )
    if not gout or not starts:
        return
    if (
        facts.with_ingredient("colchicine")
        or analgesic_nsaids(facts)
        or any(not _SYSTEMIC_STEROIDS.isdisjoint(e.ingredients) for e in facts.exposures)
    ):
        return
    yield Finding(
        "rule.urate-lowering-without-flare-prophylaxis",
        "warning",
        _short(
            f"Gout and {_names(starts)} started without flare prophylaxis: consider colchicine 0.6 mg daily (or "
            "an NSAID or low-dose prednisone) for 3-6 months"
        ),
        "Urate-lowering therapy mobilises crystals and brings on flares in its first months; anti-inflammatory "
        "prophylaxis prevents most of them and keeps patients on treatment.",
        ("kb.acr-gout-flare-prophylaxis",),
        (*gout, *_handles(starts)),
        _proposed(starts),
    )


# --- rule.amiodarone-monitoring --------------------------------------------------------------------------


def _lab_gap(facts: RuleFacts, analyte: str, label: str) -> tuple[str, Measurement | None] | None:
    """None when the lab is current; else how the card says it is missing, and the stale value if any."""
    if facts.current(analyte) is not None:
        return None
    stale = facts.stale(analyte)
    if stale is None:
        return f"no {label} on record", None
    if stale.days_ago is None:
        return f"only an undated {label}", stale
    return f"{label} {stale.days_ago} days old", stale


def amiodarone_monitoring(facts: RuleFacts) -> Iterator[Finding]:
    """Amiodarone without a current TSH or ALT (windows: tsh and alt in lab_validity.json): ask for them."""
    drugs = tuple(e for e in facts.exposures if "amiodarone" in e.ingredients)
    if not drugs:
        return
    gaps = [
        (gap, order)
        for analyte, label, order in (("tsh", "TSH", TSH), ("alt", "ALT", ALT))
        if (gap := _lab_gap(facts, analyte, label)) is not None
    ]
    if not gaps:
        return
    said = " and ".join(text for (text, _), _ in gaps)
    yield Finding(
        "rule.amiodarone-monitoring",
        "info",
        _short(f"On amiodarone with {said}: consider checking thyroid and liver tests"),
        "Amiodarone can cause thyroid disease and liver injury, so its label asks for these tests at baseline "
        "and periodically.",
        ("kb.amiodarone-thyroid-liver-monitoring",),
        (*_handles(drugs), *(m.handle for (_, m), _ in gaps if m is not None)),
        _proposed(drugs),
        gaps[0][1],
    )


# TSH limits on amiodarone (mIU/L): above the reference range, asked about; at 10 or more, overt enough that
# levothyroxine is usually started (amiodarone continued); suppressed below 0.1, amiodarone thyrotoxicosis.
TSH_UPPER_REFERENCE: Final = 4.5
TSH_TREAT: Final = 10.0
TSH_SUPPRESSED: Final = 0.1


def amiodarone_thyroid_dysfunction(facts: RuleFacts) -> Iterator[Finding]:
    """A current TSH out of range on amiodarone, with no thyroid hormone or antithyroid drug taken (the
    levothyroxine rules speak for a patient already treated)."""
    drugs = tuple(e for e in facts.exposures if "amiodarone" in e.ingredients)
    tsh = facts.current("tsh")
    if (
        not drugs
        or tsh is None
        or facts.with_class("thyroid-hormone")
        or facts.with_ingredient("methimazole")
    ):
        return
    if TSH_SUPPRESSED <= tsh.value <= TSH_UPPER_REFERENCE:
        return
    severity: Severity
    if tsh.value < TSH_SUPPRESSED:
        severity, said = "warning", "consider free T4 and T3 for amiodarone-induced thyrotoxicosis"
    elif tsh.value >= TSH_TREAT:
        severity, said = "warning", "consider levothyroxine for amiodarone-induced hypothyroidism"
    else:
        severity, said = "info", "consider a free T4 and treating if it is low"
    yield Finding(
        "rule.amiodarone-thyroid-dysfunction",
        severity,
        _short(f"TSH {tsh.value:g} mIU/L on amiodarone: {said}"),
        "Amiodarone's iodine causes hypothyroidism or thyrotoxicosis in up to a fifth of patients; both are "
        "treated, usually without stopping amiodarone in hypothyroidism.",
        ("kb.amiodarone-thyroid-dysfunction",)
        if severity == "warning"
        else ("kb.amiodarone-thyroid-liver-monitoring",),
        (*_handles(drugs), tsh.handle),
        _proposed(drugs),
    )


# --- rule.anticholinergic-cholinesterase-inhibitor -------------------------------------------------------


def anticholinergic_cholinesterase_inhibitor(facts: RuleFacts) -> Iterator[Finding]:
    """A strongly anticholinergic drug with a cholinesterase inhibitor, at any age (the inhibitor implies the
    dementia Beers speaks of; a charted dementia is cited when there is one)."""
    inhibitors = facts.with_ingredient(*CHOLINESTERASE_INHIBITORS)
    if not inhibitors:
        return
    anticholinergics = tuple(e for e in facts.with_class("anticholinergic") if e not in inhibitors)
    if not anticholinergics:
        return
    yield Finding(
        "rule.anticholinergic-cholinesterase-inhibitor",
        "warning",
        _short(
            f"{_names(anticholinergics).capitalize()} with {_names(inhibitors)}: the anticholinergic works "
            "against it and worsens cognition; consider stopping it or an alternative"
        ),
        "Anticholinergic drugs oppose cholinesterase inhibitors and are to be avoided in dementia (AGS Beers).",
        ("kb.cholinesterase-inhibitor-anticholinergic",),
        (*_handles(anticholinergics, inhibitors), *facts.value_sets.get("dementia", ())),
        _proposed(anticholinergics, inhibitors),
    )


# --- rule.tdap-pregnancy-due -----------------------------------------------------------------------------

TDAP_WEEKS: Final = (27, 36)  # kb.acip-tdap-each-pregnancy: preferably early in weeks 27-36
_TDAP_CVX: Final = frozenset({"115"})
_TDAP_TEXT: Final = re.compile(r"\btdap\b|pertussis|boostrix|adacel", re.IGNORECASE)
_FULL_TERM_DAYS: Final = 40 * 7


def _tdap_since(facts: RuleFacts, days: int) -> bool:
    return any(
        (i.vaccine.code in _TDAP_CVX and i.vaccine.system == "cvx") or _TDAP_TEXT.search(i.vaccine.display)
        for i in facts.context.immunizations
        if i.days_ago is not None and 0 <= i.days_ago <= days
    )


def tdap_pregnancy_due(facts: RuleFacts) -> Iterator[Finding]:
    """No Tdap in this pregnancy at 27-36 completed weeks. An undated pregnancy cannot be placed in the window:
    the card then says so when no Tdap is recorded in the last 40 weeks (fail closed)."""
    if not facts.pregnant or facts.context.demographics.deceased:
        return
    weeks = facts.context.pregnancy.weeks
    first, last = TDAP_WEEKS
    if weeks is None:
        # Weeks are also None past 44 (a pregnancy record left open): only a truly undated one is asked about.
        evidence = set(facts.context.pregnancy.evidence)
        dated = any(p.onset_days_ago is not None for p in facts.context.problems if p.handle in evidence)
        if dated or _tdap_since(facts, _FULL_TERM_DAYS):
            return
        summary = "Pregnant, gestational age unknown, no Tdap in 40 weeks: consider Tdap at 27-36 weeks"
    else:
        # Completed weeks: the pregnancy began between weeks*7 and weeks*7 + 6 days ago.
        if not first <= weeks <= last or _tdap_since(facts, weeks * 7 + 6):
            return
        summary = f"{weeks} weeks pregnant with no Tdap in this pregnancy: consider giving Tdap now"
    yield Finding(
        "rule.tdap-pregnancy-due",
        "info",
        summary,
        "Tdap in every pregnancy, preferably at 27-36 weeks, passes pertussis antibodies to the newborn.",
        ("kb.acip-tdap-each-pregnancy",),
        facts.context.pregnancy.evidence,
    )


# --- rule.companion-therapy-absent ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Companion:
    """A drug whose label makes another part of the regimen: without it the drug's harm is the expected one."""

    drug: str  # ingredient
    needs: tuple[tuple[str, frozenset[str]], ...]  # (what the card calls it, ingredients that satisfy it)
    severity: Severity
    option: str
    why: str
    evidence: str


_SYSTEMIC_GLUCOCORTICOIDS: Final = frozenset(
    {"prednisone", "prednisolone", "methylprednisolone", "dexamethasone", "hydrocortisone"}
)
COMPANIONS: Final = (
    # ALIMTA label (2.1): folic acid from 7 days before the first dose and vitamin B12 1 mg IM a week before it,
    # then every three cycles; without them neutropenia, infection and death are more frequent.
    Companion(
        "pemetrexed",
        (
            ("folic acid", frozenset({"folic acid"})),
            ("vitamin B12", frozenset({"cyanocobalamin", "hydroxocobalamin"})),
        ),
        "critical",
        "consider folic acid 400-1000 mcg daily and vitamin B12 1 mg IM before the first dose",
        "Pemetrexed without folic acid and vitamin B12 causes severe, sometimes fatal marrow and gut toxicity.",
        "kb.pemetrexed-vitamin-supplementation",
    ),
    # ZYTIGA label (2.1, 5.1): given with prednisone (or methylprednisolone) to offset its mineralocorticoid excess.
    Companion(
        "abiraterone",
        (("a corticosteroid", _SYSTEMIC_GLUCOCORTICOIDS),),
        "warning",
        "consider prednisone 5 mg once or twice daily as labelled",
        "Abiraterone raises mineralocorticoids: without a corticosteroid it causes hypertension, low potassium "
        "and fluid retention.",
        "kb.abiraterone-with-corticosteroid",
    ),
    # VELCADE label (5.x, herpes zoster reactivation): antiviral prophylaxis is to be considered with bortezomib;
    # myeloma guidelines give acyclovir or valacyclovir for the whole course.
    Companion(
        "bortezomib",
        (("antiviral prophylaxis", frozenset({"acyclovir", "valacyclovir", "famciclovir"})),),
        "warning",
        "consider acyclovir 400 mg twice daily (or valacyclovir 500 mg daily) through treatment",
        "Bortezomib reactivates varicella-zoster in many patients without antiviral prophylaxis.",
        "kb.bortezomib-antiviral-prophylaxis",
    ),
)


def companion_therapy_absent(facts: RuleFacts) -> Iterator[Finding]:
    """A drug taken or ordered without the companion its label makes part of the regimen (not on the list as a
    current medication or a draft): pemetrexed without folic acid and vitamin B12, abiraterone without a
    corticosteroid, bortezomib without antiviral prophylaxis."""
    for companion in COMPANIONS:
        drugs = facts.with_ingredient(companion.drug)
        if not drugs:
            continue
        missing = [name for name, ingredients in companion.needs if not facts.with_ingredient(*ingredients)]
        if not missing:
            continue
        yield Finding(
            "rule.companion-therapy-absent",
            companion.severity,
            _short(
                f"{_names(drugs).capitalize()} without {' or '.join(missing)} on the list: {companion.option}"
            ),
            companion.why,
            (companion.evidence,),
            _handles(drugs),
            _proposed(drugs),
        )


# rule.aki-triple-whammy lives with the other kidney rules (plugin/rules/renal_rules.py) and is listed here.
DEPTH_MEDICATION_RULES: Final[tuple[Rule, ...]] = (
    aki_on_triple_whammy,
    potassium_unknown_before_starting,
    low_potassium_magnesium,
    acetaminophen_daily_total,
    acetaminophen_in_cirrhosis,
    insulin_infusion_low_potassium,
    anticoagulant_low_platelets,
    urate_lowering_without_flare_prophylaxis,
    companion_therapy_absent,
    amiodarone_monitoring,
    amiodarone_thyroid_dysfunction,
    anticholinergic_cholinesterase_inhibitor,
)
# --- rule.rsv-pregnancy-due -----------------------------------------------------------------------------------

RSV_PREGNANCY_WEEKS: Final = (32, 36)  # completed weeks: 32 0/7 to 36 6/7
RSV_PREGNANCY_MONTHS: Final = frozenset({9, 10, 11, 12, 1})  # September to January in most of the US


def rsv_pregnancy_due(facts: RuleFacts) -> Iterator[Finding]:
    """At 32-36 weeks from September to January with no RSV vaccine in this pregnancy: RSVpreF (Abrysvo) now, or
    nirsevimab for the infant after birth (one of the two; the card names both)."""
    if not facts.pregnant or facts.context.demographics.deceased:
        return
    weeks, month = facts.context.pregnancy.weeks, facts.context.month
    first, last = RSV_PREGNANCY_WEEKS
    if weeks is None or not first <= weeks <= last or month not in RSV_PREGNANCY_MONTHS:
        return
    # Given in this pregnancy, or recorded as not done in it (declined, with the infant antibody planned).
    if any(
        in_group(i, "rsv") and i.days_ago is not None and i.days_ago <= weeks * 7 + 6
        for i in (*facts.context.immunizations, *facts.context.declined_immunizations)
    ):
        return
    yield Finding(
        "rule.rsv-pregnancy-due",
        "info",
        f"{weeks} weeks pregnant in RSV season with no RSV vaccine: consider Abrysvo now or nirsevimab for the baby",
        "RSV vaccine at 32-36 weeks (September-January) or an RSV antibody for the newborn protects the infant "
        "through the first season; one of the two is needed.",
        ("kb.acip-rsv-maternal-or-infant",),
        facts.context.pregnancy.evidence,
    )


DEPTH_CARE_GAP_RULES: Final[tuple[Rule, ...]] = (tdap_pregnancy_due, rsv_pregnancy_due)
