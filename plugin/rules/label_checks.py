"""Label and Beers checks over chart facts: drug pairs the catalog lacks, drug-condition and age limits, and
the few dose limits a product name or structured dosage can decide.

Each rule cites the knowledge-base entry it enforces (plugin/knowledge/entries_drug_safety.json) first, and a
card's severity is that entry's severity hint. Drugs without a class key (proton-pump inhibitors, calcium and
magnesium salts, sucralfate) are matched by ingredient name. Everything here is a pure function of
`RuleFacts`, so governance runs it on a proposed drug too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Final

from plugin import terminology
from plugin.context.codes import QUALITATIVE_TESTS
from plugin.rules.catalog import (
    Rule,
    allergy_ingredients,
    strength_mg,
)
from plugin.rules.dose_range import analgesic_nsaids, low_dose_aspirin
from plugin.rules.dosing import (
    EXTENDED_RELEASE,
    LOCAL_ROUTE,
    PARENTERAL,
    SKIN_EYE_EAR,
    daily_mg,
    dosage_of,
    route_text,
)
from plugin.rules.interactions import Interaction, named
from plugin.rules.interactions import pair as _pair
from plugin.rules.model import Exposure, Finding, LabOrder, RuleFacts, Severity
from plugin.rules.monitoring import OLDER_ADULT_AGE, _combined_hormonal_contraceptive, bp_high
from plugin.rules.phrasing import handles as _handles
from plugin.rules.phrasing import names as _names
from plugin.rules.phrasing import proposed as _proposed
from plugin.rules.phrasing import short as _short

__all__ = ["LABEL_CHECK_RULES"]

LITHIUM_LEVEL = LabOrder("14334-7", "Lithium [Moles/volume] in Serum or Plasma")


def _named_pair(
    pair: Interaction,
    *,
    left: Iterable[str] = (),
    right: Iterable[str] = (),
    order: LabOrder | None = None,
) -> Interaction:
    return replace(pair, left_named=frozenset(left), right_named=frozenset(right), order=order)


# --- drug pairs ---------------------------------------------------------------------------------------------

# Polyvalent cations that bind fluoroquinolones, tetracyclines and levothyroxine in the gut. Parenteral iron
# never meets the tablet, so it is left out.
CATIONS: Final = (
    "calcium",
    "magnesium",
    "aluminum",
    "aluminium",
    "zinc",
    "sucralfate",
    "lanthanum",
    "sevelamer",
)
PARENTERAL_IRON: Final = ("iron sucrose", "ferric carboxymaltose")
BILE_ACID_SEQUESTRANTS: Final = ("cholestyramine", "colesevelam", "colestipol")
# Combined P-gp and strong CYP3A4 inhibitors named by the rivaroxaban and apixaban labels.
COMBINED_PGP_CYP3A4: Final = (
    "ketoconazole",
    "itraconazole",
    "posaconazole",
    "ritonavir",
    "lopinavir",
    "cobicistat",
)
# Proton-pump inhibitors and misoprostol: the gastroprotection AGS Beers and the NSAID labels name.
GASTROPROTECTION: Final = (
    "omeprazole",
    "esomeprazole",
    "pantoprazole",
    "lansoprazole",
    "dexlansoprazole",
    "rabeprazole",
    "misoprostol",
)

SSRI_SNRI_BLEEDING: Final = _pair(
    "rule.ssri-snri-bleeding",
    ["ssri", "snri"],
    ["nsaid", "cox2-inhibitor", "anticoagulant"],
    "warning",
    ["kb.ssri-bleeding-with-nsaid-anticoagulant"],
    "raises bleeding risk",
    "consider gastroprotection and asking about bleeding",
    "SSRIs and SNRIs deplete platelet serotonin, which adds to the bleeding risk of NSAIDs and anticoagulants.",
    right_unless=["antiplatelet"],  # aspirin (an NSAID here too): antiplatelet therapy, not in this rule
    right_systemic_only=True,  # a skin NSAID adds little to the bleeding risk
    # A PPI already protects the stomach from the NSAID's share; an anticoagulant still speaks.
    option_taken=GASTROPROTECTION,
    option_covers=["nsaid", "cox2-inhibitor"],
)

PAIRS: tuple[Interaction, ...] = (
    _named_pair(
        _pair(
            "rule.clopidogrel-omeprazole",
            ["antiplatelet"],
            [],
            "warning",
            ["kb.clopidogrel-omeprazole"],
            "may weaken clopidogrel",
            "consider pantoprazole instead",
            "Omeprazole and esomeprazole inhibit CYP2C19, which turns clopidogrel into its active form.",
            left_ingredients=["clopidogrel"],
        ),
        right=["omeprazole", "esomeprazole"],
    ),
    _pair(
        "rule.calcineurin-cyp3a4-inhibitor",
        ["calcineurin-inhibitor"],
        ["azole-antifungal", "macrolide", "strong-cyp3a4-inhibitor", "non-dihydropyridine-ccb"],
        "critical",
        ["kb.calcineurin-inhibitor-cyp3a4-inhibitors"],
        "can sharply raise its levels",
        "consider another drug (an anti-infective, or amlodipine for blood pressure) or checking trough levels",
        "Azoles, macrolides, diltiazem, verapamil and other CYP3A4 inhibitors block tacrolimus and cyclosporine clearance, risking kidney and nerve toxicity.",
        right_unless_ingredients=["azithromycin"],  # barely inhibits CYP3A4
    ),
    _named_pair(
        _pair(
            "rule.doac-pgp-cyp3a4-inhibitor",
            ["doac"],
            [],
            "warning",
            [
                ("rivaroxaban", "kb.rivaroxaban-strong-cyp3a4-pgp-inhibitors"),
                ("apixaban", "kb.apixaban-strong-cyp3a4-pgp-inhibitors"),
            ],
            "raises anticoagulant levels and bleeding risk",
            "consider avoiding it or, for apixaban, halving the dose",
            "These drugs block both CYP3A4 and P-glycoprotein, the two routes that clear rivaroxaban and apixaban.",
            left_ingredients=["rivaroxaban", "apixaban"],
        ),
        right=COMBINED_PGP_CYP3A4,
    ),
    _named_pair(
        _pair(
            "rule.lithium-clearance",
            ["lithium"],
            ["ace-inhibitor", "arb", "arni", "thiazide", "nsaid", "cox2-inhibitor"],
            "warning",
            ["kb.lithium-interactions"],
            "can push lithium into the toxic range",
            "consider another drug or a lithium level within a week",
            "ACE inhibitors, ARBs, thiazides and NSAIDs reduce the kidneys' clearance of lithium.",
            right_unless_ingredients=["aspirin"],  # aspirin does not raise lithium levels
            right_systemic_only=True,  # nor does an NSAID on the skin
        ),
        order=LITHIUM_LEVEL,
    ),
    _pair(
        "rule.triptan-ssri-snri",
        ["triptan"],
        ["ssri", "snri"],
        "info",
        ["kb.triptan-ssri-snri"],
        "can rarely cause serotonin syndrome",
        "consider telling the patient its signs",
        "Triptans add serotonergic activity to SSRIs and SNRIs; the combination is allowed but the labels warn of it.",
    ),
    _named_pair(
        _pair(
            "rule.chelation-antibiotic",
            ["fluoroquinolone", "tetracycline"],
            ["iron-supplement"],
            "warning",
            ["kb.chelation-fluoroquinolone-tetracycline"],
            "can block the antibiotic's absorption",
            "consider spacing the doses as the label directs",
            "Calcium, iron, magnesium, aluminium and zinc bind these antibiotics in the gut and stop their absorption.",
            right_unless_ingredients=PARENTERAL_IRON,
            right_systemic_only=True,
        ),
        right=CATIONS,
    ),
)

LEVOTHYROXINE_BINDING: Final = _named_pair(
    _pair(
        "rule.levothyroxine-binding",
        ["thyroid-hormone"],
        ["iron-supplement"],
        "info",
        ["kb.levothyroxine-absorption-interactions"],
        "can reduce levothyroxine absorption",
        "consider taking them at least 4 hours apart",
        "Calcium, iron, antacids, sucralfate and bile-acid sequestrants bind levothyroxine in the gut.",
        left_ingredients=["levothyroxine"],
        right_unless_ingredients=PARENTERAL_IRON,
        right_systemic_only=True,
    ),
    right=(*CATIONS, *BILE_ACID_SEQUESTRANTS),
)


def _fluoroquinolone_barred_already(facts: RuleFacts) -> bool:
    """Another card already asks for an antibiotic of another class: myasthenia gravis on record
    (rule.fluoroquinolone-myasthenia-gravis), or a fluoroquinolone on the allergy list (rule.allergy-same-drug,
    where a past tendon rupture is usually recorded)."""
    return facts.has_condition("myasthenia-gravis") or any(
        any("fluoroquinolone" in terminology.classes_of(i) for i in allergy_ingredients(a.substance))
        for a in facts.context.allergies
    )


FLUOROQUINOLONE_CORTICOSTEROID = _pair(
    "rule.fluoroquinolone-corticosteroid",
    ["fluoroquinolone"],
    ["corticosteroid"],
    "warning",
    ["kb.fluoroquinolone-disabling-adverse-effects"],
    "raises the risk of tendon rupture",
    "consider another antibiotic",
    "Fluoroquinolones injure tendons, and systemic corticosteroids multiply the risk of rupture (boxed warning).",
    right_unless=["ics"],  # inhaled and nasal steroids; skin and eye products: SystemicPair
    quiet_when=_fluoroquinolone_barred_already,
)

# Forms that barely reach the blood: the tendon warning is about systemic steroids.
_LOCAL_FORMS: Final = (
    "topical",
    "cream",
    "ointment",
    "lotion",
    "gel",
    "shampoo",
    "ophthalmic",
    "otic",
    "nasal",
    "inhal",
)


def _local(exposure: Exposure) -> bool:
    words = exposure.label.lower()
    return any(form in words for form in _LOCAL_FORMS)


@dataclass(frozen=True, slots=True)
class SystemicPair:
    """A pair that counts only systemic forms: a steroid cream or antibiotic eye drops barely reach the blood."""

    pair: Interaction

    @property
    def rule_id(self) -> str:
        return self.pair.rule_id

    def __call__(self, facts: RuleFacts) -> Iterator[Finding]:
        yield from self.pair(replace(facts, exposures=tuple(e for e in facts.exposures if not _local(e))))


def systemic_beside_nsaids(facts: RuleFacts, *classes: str) -> tuple[Exposure, ...]:
    """Systemic drugs of these classes other than the analgesic NSAIDs themselves: low-dose aspirin counts as
    the antiplatelet it is; skin, eye, nasal and inhaled products do not count."""
    nsaids = set(analgesic_nsaids(facts))
    return tuple(e for e in facts.with_class(*classes) if e not in nsaids and not LOCAL_ROUTE.search(e.label))


# What makes an NSAID beside an SSRI or SNRI worth a card (ACG 2009 risk factors for NSAID ulcer bleeding).
GI_BLEED_RISK_AGE: Final = 65


@dataclass(frozen=True, slots=True)
class GiRiskGatedPair:
    """A bleeding pair whose NSAID partners count only with a GI bleeding risk factor: age 65 or more, a peptic
    ulcer or GI bleed on record (past or present), or an anticoagulant, antiplatelet or systemic steroid beside
    them. An occasional ibuprofen with sertraline in a healthy adult is not carded; an anticoagulant always is."""

    pair: Interaction

    @property
    def rule_id(self) -> str:
        return self.pair.rule_id

    def __call__(self, facts: RuleFacts) -> Iterator[Finding]:
        if facts.drug_classes.isdisjoint(self.pair.left):
            return  # no SSRI or SNRI: nothing to gate, and the risk factors need not be read
        age = facts.age
        at_risk = (
            (age is not None and age >= GI_BLEED_RISK_AGE)
            or bool(facts.ever("peptic-ulcer") or facts.ever("gi-bleed"))
            or bool(systemic_beside_nsaids(facts, "anticoagulant", "antiplatelet", "corticosteroid"))
        )
        if not at_risk:
            nsaids = set(analgesic_nsaids(facts))
            facts = replace(facts, exposures=tuple(e for e in facts.exposures if e not in nsaids))
        yield from self.pair(facts)


# A TSH at or under this on an established combination shows the doses are already spaced well enough; a low TSH
# is over-replacement, which a binder does not cause.
TSH_UPPER: Final = 4.5
BINDER_NEW_DAYS: Final = 90
# Levothyroxine needs rise from early pregnancy (ATA 2017): until 20 weeks, or in an undated pregnancy, a binder
# beside it is carded whatever the last TSH.
BINDER_PREGNANCY_WEEKS: Final = 20


@dataclass(frozen=True, slots=True)
class TshGatedPair:
    """Levothyroxine with a binder, raised when it can matter: either drug new within 90 days or proposed, a
    pregnancy before 20 weeks (the dose must rise, absorption with it), or a TSH above range or not current. An
    established pair with a current TSH at or under the upper limit is evidently spaced well enough."""

    pair: Interaction

    @property
    def rule_id(self) -> str:
        return self.pair.rule_id

    def __call__(self, facts: RuleFacts) -> Iterator[Finding]:
        lefts, rights = self.pair.sides(facts)
        if not lefts:
            return
        tsh = facts.current("tsh")
        weeks = facts.context.pregnancy.weeks
        early_pregnancy = facts.pregnant and (weeks is None or weeks < BINDER_PREGNANCY_WEEKS)
        settled = (
            tsh is not None
            and tsh.value <= TSH_UPPER
            and not early_pregnancy
            and not any(e.new(BINDER_NEW_DAYS) for e in (*lefts, *rights))
        )
        if not settled:
            yield from self.pair(facts)


def ibuprofen_low_dose_aspirin(facts: RuleFacts) -> Iterator[Finding]:
    ibuprofen = [e for e in facts.exposures if "ibuprofen" in e.ingredients]
    aspirin = [e for e in facts.exposures if "aspirin" in e.ingredients and low_dose_aspirin(facts, e)]
    if not ibuprofen or not aspirin:
        return
    yield Finding(
        "rule.ibuprofen-low-dose-aspirin",
        "warning",
        "Ibuprofen with low-dose aspirin can block its antiplatelet effect: consider taking ibuprofen 30 min after aspirin",
        "Ibuprofen occupies the platelet site that low-dose aspirin must reach, so regular ibuprofen weakens its protection.",
        ("kb.ibuprofen-low-dose-aspirin",),
        _handles(ibuprofen, aspirin),
        _proposed(ibuprofen, aspirin),
    )


# --- dose limits ----------------------------------------------------------------------------------------------

CITALOPRAM_MAX_MG: Final = 40.0
CITALOPRAM_OLDER_MAX_MG: Final = 20.0
CITALOPRAM_OLDER_AGE: Final = 60  # "over 60": whole years from 60 are past the 60th birthday


# The citalopram label's CYP2C19 inhibitors (cimetidine named, omeprazole and esomeprazole the common ones):
# with one of them the daily dose is capped at 20 mg, as from age 60.
CYP2C19_INHIBITORS: Final = frozenset(
    {"omeprazole", "esomeprazole", "cimetidine", "fluconazole", "fluvoxamine", "voriconazole", "ticlopidine"}
)


def citalopram_qt_dose(facts: RuleFacts) -> Iterator[Finding]:
    """Citalopram above 40 mg a day, or above 20 mg from age 60 or with a CYP2C19 inhibitor. The daily dose where
    the structured dosage gives it, else the unit strength (a once-daily drug); a dose that cannot be read is not
    flagged."""
    older = facts.age is not None and facts.age >= CITALOPRAM_OLDER_AGE
    inhibitors = tuple(
        e
        for e in facts.exposures
        if not CYP2C19_INHIBITORS.isdisjoint(e.ingredients) and not SKIN_EYE_EAR.search(e.label)
    )
    limit = CITALOPRAM_OLDER_MAX_MG if older or inhibitors else CITALOPRAM_MAX_MG
    for drug in (e for e in facts.exposures if "citalopram" in e.ingredients):
        strength = strength_mg(drug, "citalopram")
        daily = daily_mg(dosage_of(facts, drug), strength)
        mg = daily if daily is not None else strength
        if mg is None or mg <= limit:
            continue
        if older:
            who = f"at age {facts.context.demographics.age_label}"
        elif inhibitors:
            who = f"with {_names(inhibitors)} (a CYP2C19 inhibitor)"
        else:
            who = "in adults"
        partners = () if older else inhibitors
        yield Finding(
            "rule.citalopram-qt-dose",
            "warning",
            _short(
                f"Citalopram {mg:g} mg a day exceeds the {limit:g} mg QT limit {who}: consider {limit:g} mg or "
                "another SSRI"
            ),
            "Citalopram lengthens the QT interval in proportion to dose, so its label caps the daily dose (20 mg "
            "from age 60 or with a CYP2C19 inhibitor).",
            ("kb.citalopram-qt-dose",),
            (drug.handle, *_handles(partners)),
            _proposed([drug, *partners]),
        )


# --- drug and condition ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DrugCondition:
    """Drugs (by class or ingredient) a recorded condition makes unsafe."""

    rule_id: str
    classes: tuple[str, ...]
    ingredients: tuple[str, ...]
    value_sets: tuple[str, ...]
    severity: Severity  # the evidence entry's severity hint
    evidence: str
    condition: str  # what the summary calls the condition
    option: str
    why: str
    systemic_only: bool = False  # eye drops and skin products of the drugs do not count
    # The drugs chosen by a reader of their own instead of classes and ingredients (analgesic NSAIDs).
    select: Callable[[RuleFacts], tuple[Exposure, ...]] | None = None
    history_counts: bool = False  # a resolved or inactive record of the condition counts too (a past clot)

    def drugs(self, facts: RuleFacts) -> tuple[Exposure, ...]:
        if self.select is not None:
            return self.select(facts)
        return tuple(
            e
            for e in facts.exposures
            if (
                (self.classes and e.has(*self.classes)) or not set(self.ingredients).isdisjoint(e.ingredients)
            )
            and not (self.systemic_only and SKIN_EYE_EAR.search(e.label))
        )

    def __call__(self, facts: RuleFacts) -> Iterator[Finding]:
        problems = tuple(
            h
            for name in self.value_sets
            for h in (facts.ever(name) if self.history_counts else facts.value_sets.get(name, ()))
        )
        drugs = self.drugs(facts)
        if not problems or not drugs:
            return
        yield Finding(
            self.rule_id,
            self.severity,
            _short(f"{self.condition} on record with {_names(drugs)}: {self.option}"),
            self.why,
            (self.evidence,),
            tuple(sorted({*problems, *_handles(drugs)})),
            _proposed(drugs),
        )


DOAC_MECHANICAL_VALVE = DrugCondition(
    "rule.doac-mechanical-valve",
    ("doac",),
    (),
    ("prosthetic-heart-valve",),
    "critical",
    "kb.doac-mechanical-heart-valve",
    "Prosthetic heart valve",
    "if it is mechanical, consider warfarin instead",
    "DOACs do not prevent valve thrombosis in mechanical heart valves; dabigatran caused more clots and bleeding than warfarin.",
)
FLUOROQUINOLONE_MYASTHENIA = DrugCondition(
    "rule.fluoroquinolone-myasthenia-gravis",
    ("fluoroquinolone",),
    (),
    ("myasthenia-gravis",),
    "critical",
    "kb.fluoroquinolone-myasthenia-gravis",
    "Myasthenia gravis",
    "consider an antibiotic of another class",
    "Fluoroquinolones block neuromuscular transmission and can tip myasthenia gravis into respiratory failure.",
    systemic_only=True,
)
FLUOROQUINOLONE_AORTIC_ANEURYSM = DrugCondition(
    "rule.fluoroquinolone-aortic-aneurysm",
    ("fluoroquinolone",),
    (),
    ("aortic-aneurysm",),
    "warning",
    "kb.fluoroquinolone-aortic-aneurysm",
    "Aortic aneurysm",
    "consider an antibiotic of another class",
    "Fluoroquinolones raise the risk of aortic aneurysm rupture or dissection (FDA 2018); avoid them with a known aneurysm.",
    systemic_only=True,
)
CHC_VENOUS_THROMBOEMBOLISM = DrugCondition(
    "rule.chc-venous-thromboembolism",
    (),
    ("ethinyl estradiol",),
    ("venous-thromboembolism",),
    "critical",
    "kb.chc-venous-thromboembolism",
    "DVT or PE",
    "consider a progestin-only method or a copper IUD",
    "Estrogen raises the risk of a further clot: US MEC category 4 after recurrent or high-risk VTE, 3 otherwise.",
    history_counts=True,
)
DULOXETINE_LIVER_DISEASE = DrugCondition(
    "rule.duloxetine-liver-disease",
    (),
    ("duloxetine",),
    ("liver-disease", "cirrhosis"),
    "warning",
    "kb.duloxetine-liver-disease",
    "Chronic liver disease",
    "consider another antidepressant or analgesic",
    "Duloxetine has caused hepatic failure and its clearance falls in liver disease; its label says to avoid it there.",
)
CLASS_IC_STRUCTURAL_HEART_DISEASE = DrugCondition(
    "rule.class-ic-structural-heart-disease",
    (),
    ("flecainide", "propafenone"),
    ("myocardial-infarction", "coronary-heart-disease", "heart-failure"),
    "critical",
    "kb.class-ic-antiarrhythmic-structural-heart-disease",
    "Coronary disease or heart failure",
    "consider another rhythm drug (amiodarone, dofetilide) or rate control",
    "Class IC drugs raised mortality after myocardial infarction (CAST); their labels restrict them to hearts without structural disease.",
)

G6PD_DEFICIENCY = DrugCondition(
    "rule.g6pd-deficiency-oxidant-drug",
    (),
    ("primaquine", "tafenoquine", "dapsone", "rasburicase", "pegloticase", "methylene blue"),
    ("g6pd-deficiency",),
    "critical",
    "kb.g6pd-deficiency-oxidant-drugs",
    "G6PD deficiency",
    "consider a drug that does not cause haemolysis",
    "These drugs oxidise red cells that lack G6PD and can cause severe haemolysis; their labels contraindicate them.",
    systemic_only=True,  # dapsone gel barely reaches the blood
    history_counts=True,
)
RALOXIFENE_VENOUS_THROMBOEMBOLISM = DrugCondition(
    "rule.raloxifene-venous-thromboembolism",
    (),
    ("raloxifene",),
    ("venous-thromboembolism",),
    "critical",
    "kb.raloxifene-venous-thromboembolism",
    "DVT or PE",
    "consider another osteoporosis treatment (a bisphosphonate or denosumab)",
    "Raloxifene raises the risk of venous thromboembolism; its label contraindicates it after a past or current clot.",
    history_counts=True,
)
_VAGINAL: Final = re.compile(r"\b(intra)?vaginal?\b", re.I)


def menopausal_estrogens(facts: RuleFacts) -> tuple[Exposure, ...]:
    """Systemic estrogen other than contraception (rule.chc-venous-thromboembolism has that): tablets, patches,
    gels and sprays; a low-dose vaginal product acts locally and is not counted."""
    return tuple(
        e
        for e in facts.with_class("estrogen")
        if not e.has("hormonal-contraceptive") and not _VAGINAL.search(e.label)
    )


MENOPAUSAL_ESTROGEN_VENOUS_THROMBOEMBOLISM = DrugCondition(
    "rule.estrogen-venous-thromboembolism",
    ("estrogen",),
    (),
    ("venous-thromboembolism",),
    "critical",
    "kb.menopausal-estrogen-venous-thromboembolism",
    "DVT or PE",
    "consider a non-hormonal treatment for menopausal symptoms",
    "Systemic estrogen about doubles the risk of a clot, most by mouth; its labels contraindicate it after a past or current DVT or PE.",
    history_counts=True,
    select=menopausal_estrogens,
)
# Eye drops count here: a dilating drop is what most often closes a narrow angle.
ANTICHOLINERGIC_ANGLE_CLOSURE = DrugCondition(
    "rule.anticholinergic-angle-closure",
    ("anticholinergic",),
    ("scopolamine", "atropine", "cyclopentolate", "homatropine", "tropicamide"),
    ("angle-closure-glaucoma",),
    "critical",
    "kb.anticholinergic-angle-closure-glaucoma",
    "Angle-closure glaucoma or narrow angles",
    "unless the angles are treated (iridotomy), consider a drug without anticholinergic action",
    "Anticholinergic drugs dilate the pupil and can precipitate acute angle closure in an untreated narrow angle.",
)
DOAC_MODERATE_HEPATIC_IMPAIRMENT = DrugCondition(
    "rule.doac-cirrhosis",
    (),
    ("rivaroxaban", "edoxaban"),
    ("cirrhosis",),
    "warning",
    "kb.doac-hepatic-impairment",
    "Cirrhosis",
    "if Child-Pugh B or C, consider another anticoagulant",
    "Rivaroxaban and edoxaban levels and bleeding rise in moderate and severe hepatic impairment; their labels avoid them there.",
)
DRONEDARONE_HEART_FAILURE = DrugCondition(
    "rule.dronedarone-heart-failure",
    (),
    ("dronedarone",),
    ("heart-failure",),
    "critical",
    "kb.dronedarone-heart-failure",
    "Heart failure",
    "if NYHA IV or decompensated recently, contraindicated; consider amiodarone or rate control",
    "Dronedarone doubled mortality in advanced or recently decompensated heart failure (ANDROMEDA).",
)
DOAC_PREGNANCY = DrugCondition(
    "rule.doac-pregnancy",
    ("doac",),
    (),
    ("pregnancy",),
    "warning",
    "kb.doac-pregnancy",
    "Pregnancy",
    "consider low-molecular-weight heparin instead",
    "Direct oral anticoagulants cross the placenta and lack safety data in pregnancy; heparins do not cross it.",
)
IL17_INFLAMMATORY_BOWEL_DISEASE = DrugCondition(
    "rule.il17-inhibitor-ibd",
    (),
    ("secukinumab", "ixekizumab", "brodalumab", "bimekizumab"),
    ("inflammatory-bowel-disease",),
    "warning",
    "kb.il17-inhibitor-inflammatory-bowel-disease",
    "Inflammatory bowel disease",
    "consider a biologic of another class (IL-23 or TNF inhibitor)",
    "IL-17 inhibitors have caused new and worsening Crohn's disease and ulcerative colitis.",
    history_counts=True,  # IBD in remission still flares
)
INCRETIN_MEDULLARY_THYROID_CANCER = DrugCondition(
    "rule.incretin-medullary-thyroid-cancer",
    ("glp1-agonist",),
    (),
    ("medullary-thyroid-cancer-men2",),
    "critical",
    "kb.incretin-medullary-thyroid-cancer",
    "Medullary thyroid cancer or MEN2",
    "contraindicated; consider another glucose- or weight-lowering drug",
    "GLP-1 receptor agonists and tirzepatide are contraindicated with a history of medullary thyroid cancer or MEN2.",
    history_counts=True,  # a treated cancer is still the history the label names
)
SGLT2_TYPE_1_DIABETES = DrugCondition(
    "rule.sglt2-inhibitor-type-1-diabetes",
    ("sglt2-inhibitor",),
    (),
    ("type-1-diabetes",),
    "critical",
    "kb.sglt2-inhibitor-type-1-diabetes",
    "Type 1 diabetes",
    "not recommended (ketoacidosis, even with normal glucose); consider stopping it",
    "SGLT2 inhibitors raise the risk of diabetic ketoacidosis in type 1 diabetes, where they are not approved.",
)
NITROFURANTOIN_PYELONEPHRITIS = DrugCondition(
    "rule.nitrofurantoin-pyelonephritis",
    ("nitrofurantoin",),
    (),
    ("pyelonephritis",),
    "critical",
    "kb.nitrofurantoin-pyelonephritis",
    "Pyelonephritis",
    "nitrofurantoin does not reach the kidney; consider an agent that does",
    "Nitrofurantoin is concentrated only in bladder urine and is not indicated for pyelonephritis.",
)
THIAZIDE_GOUT = DrugCondition(
    "rule.thiazide-gout",
    ("thiazide",),
    (),
    ("gout",),
    "warning",
    "kb.thiazide-gout",
    "Gout",
    "consider another antihypertensive (losartan or a calcium-channel blocker) where blood pressure allows",
    "Thiazides raise serum urate and the risk of gout flares; ACR 2020 advises switching hydrochlorothiazide "
    "where feasible.",
)
SEDATIVE_CIRRHOSIS = DrugCondition(
    "rule.sedative-cirrhosis",
    ("z-drug", "benzodiazepine"),
    (),
    ("cirrhosis",),
    "warning",
    "kb.sedative-hypnotic-cirrhosis",
    "Cirrhosis",
    "consider tapering it; if a hypnotic is needed, the lowest dose (zolpidem 5 mg) and never in encephalopathy",
    "Benzodiazepine and z-drug clearance falls in cirrhosis, and both can precipitate or mask hepatic "
    "encephalopathy.",
)
ANTICHOLINERGIC_URINARY_RETENTION = DrugCondition(
    "rule.anticholinergic-urinary-retention",
    ("anticholinergic",),
    (),
    ("urinary-retention",),
    "warning",
    "kb.anticholinergic-urinary-retention",
    "Urinary retention",
    "consider stopping it (bladder antimuscarinics included) and checking the residual",
    "Anticholinergic drugs, bladder antimuscarinics among them, weaken the bladder's contraction; their labels "
    "contraindicate them in urinary retention.",
    systemic_only=True,
)
ATENOLOL_PREGNANCY = DrugCondition(
    "rule.atenolol-pregnancy",
    (),
    ("atenolol",),
    ("pregnancy",),
    "warning",
    "kb.atenolol-pregnancy",
    "Pregnancy",
    "consider labetalol or extended-release nifedipine",
    "Atenolol through pregnancy is linked to fetal growth restriction; ACOG prefers labetalol or nifedipine.",
)
PSEUDOEPHEDRINE_LACTATION = DrugCondition(
    "rule.pseudoephedrine-lactation",
    (),
    ("pseudoephedrine",),
    ("lactation",),
    "warning",
    "kb.pseudoephedrine-milk-supply",
    "Breastfeeding",
    "consider saline or a nasal steroid instead (it can lower milk supply)",
    "A single dose of pseudoephedrine cut milk production by about a quarter; repeated doses can dry up supply.",
    systemic_only=True,
)
ITRACONAZOLE_HEART_FAILURE = DrugCondition(
    "rule.itraconazole-heart-failure",
    (),
    ("itraconazole",),
    ("heart-failure",),
    "warning",
    "kb.itraconazole-heart-failure",
    "Heart failure or ventricular dysfunction",
    "for nail infections, consider terbinafine or a topical agent instead",
    "Itraconazole has negative inotropic effects and has caused heart failure; its boxed warning bars it for "
    "onychomycosis in ventricular dysfunction.",
    systemic_only=True,
)
TRAMADOL_EPILEPSY = DrugCondition(
    "rule.tramadol-epilepsy",
    (),
    ("tramadol",),
    ("epilepsy",),
    "warning",
    "kb.tramadol-seizure-risk",
    "Epilepsy",
    "consider another analgesic (it lowers the seizure threshold)",
    "Tramadol causes seizures at recommended doses; its label warns against it with epilepsy or a seizure history.",
    history_counts=True,
)
PRASUGREL_PRIOR_STROKE_TIA = DrugCondition(
    "rule.prasugrel-prior-stroke-tia",
    (),
    ("prasugrel",),
    ("stroke", "ischaemic-stroke", "stroke-type-unrecorded", "transient-ischaemic-attack"),
    "critical",
    "kb.prasugrel-prior-stroke-tia",
    "A TIA or stroke",
    "consider clopidogrel or ticagrelor instead",
    "Prasugrel is contraindicated after any TIA or stroke: those patients had more intracranial bleeding and no "
    "net benefit (boxed warning).",
    history_counts=True,
)
JAK_INHIBITORS: Final = ("tofacitinib", "baricitinib", "upadacitinib", "abrocitinib", "ritlecitinib")
JAK_INHIBITOR_THROMBOSIS = DrugCondition(
    "rule.jak-inhibitor-thrombosis",
    (),
    JAK_INHIBITORS,
    ("venous-thromboembolism",),
    "warning",
    "kb.jak-inhibitor-thrombosis",
    "A past DVT or PE",
    "consider a biologic without the thrombosis warning",
    "JAK inhibitors raised venous thromboembolism and death in ORAL Surveillance; the boxed warning says to avoid "
    "them in patients at increased risk of thrombosis.",
    systemic_only=True,
    history_counts=True,
)
JAK_INHIBITOR_CARDIOVASCULAR = DrugCondition(
    "rule.jak-inhibitor-cardiovascular",
    (),
    JAK_INHIBITORS,
    ("coronary-heart-disease", "myocardial-infarction", "ischaemic-stroke"),
    "warning",
    "kb.jak-inhibitor-cardiovascular",
    "Coronary disease or a past MI or stroke",
    "consider a biologic without the cardiovascular warning",
    "JAK inhibitors raised major cardiovascular events in ORAL Surveillance; the boxed warning asks to weigh them "
    "against other treatment in patients with cardiovascular disease or its risk factors.",
    systemic_only=True,
    history_counts=True,
)
TNF_INHIBITOR_HEART_FAILURE = DrugCondition(
    "rule.tnf-inhibitor-heart-failure",
    (),
    ("adalimumab", "infliximab", "etanercept", "certolizumab", "golimumab"),
    ("heart-failure",),
    "warning",
    "kb.tnf-inhibitor-heart-failure",
    "Heart failure",
    "consider a non-TNF biologic or close heart-failure monitoring",
    "TNF inhibitors have worsened heart failure and raised mortality in moderate to severe heart failure; their "
    "labels warn (infliximab above 5 mg/kg is contraindicated in NYHA III-IV).",
)
THIAZIDE_HYPERCALCAEMIA = DrugCondition(
    "rule.thiazide-hypercalcaemia",
    ("thiazide",),
    (),
    ("hypercalcaemia",),
    "warning",
    "kb.thiazide-hypercalcaemia",
    "Hypercalcaemia or primary hyperparathyroidism",
    "consider another antihypertensive",
    "Thiazides cut urinary calcium excretion and raise serum calcium, worsening hypercalcaemia of "
    "hyperparathyroidism.",
)
PIOGLITAZONE_BLADDER_CANCER = DrugCondition(
    "rule.pioglitazone-bladder-cancer",
    (),
    ("pioglitazone",),
    ("bladder-cancer",),
    "warning",
    "kb.pioglitazone-bladder-cancer",
    "Bladder cancer",
    "consider another glucose-lowering drug",
    "Pioglitazone is linked to bladder cancer: its label bars it in active bladder cancer and weighs its benefit "
    "against recurrence after one.",
    history_counts=True,
)
THIAZOLIDINEDIONE_OSTEOPOROSIS = DrugCondition(
    "rule.thiazolidinedione-osteoporosis",
    ("thiazolidinedione",),
    (),
    ("osteoporosis",),
    "warning",
    "kb.thiazolidinedione-fracture",
    "Osteoporosis",
    "consider another glucose-lowering drug",
    "Pioglitazone and rosiglitazone raise fracture risk, above all in women; their labels ask that bone health be "
    "weighed in patients at risk of fracture.",
)
ROFLUMILAST_DEPRESSION = DrugCondition(
    "rule.roflumilast-depression",
    (),
    ("roflumilast",),
    ("depression",),
    "warning",
    "kb.roflumilast-psychiatric-events",
    "Depression",
    "consider whether its benefit outweighs worsening mood and weight loss",
    "Roflumilast causes insomnia, anxiety, depression and suicidal thoughts, and weight loss; its label asks that "
    "these be weighed in patients with depression.",
    history_counts=True,
)


def _oral_bisphosphonates(facts: RuleFacts) -> tuple[Exposure, ...]:
    return tuple(
        e
        for e in facts.with_ingredient("alendronate", "risedronate", "ibandronate")
        if not PARENTERAL.search(route_text(facts, e))
    )


ORAL_BISPHOSPHONATE_OESOPHAGUS = DrugCondition(
    "rule.oral-bisphosphonate-oesophagus",
    (),
    (),
    ("oesophageal-emptying-disorder",),
    "warning",
    "kb.oral-bisphosphonate-oesophageal-disorder",
    "An oesophageal stricture or achalasia",
    "contraindicated; consider IV zoledronic acid or denosumab",
    "Tablets held up in a narrowed or slow oesophagus cause oesophagitis and ulcers; the oral bisphosphonate "
    "labels contraindicate them with oesophageal abnormalities that delay emptying.",
    select=_oral_bisphosphonates,
    history_counts=True,  # a dilated stricture still narrows
)
ANTIPERISTALTIC_C_DIFFICILE = DrugCondition(
    "rule.antiperistaltic-c-difficile",
    (),
    ("loperamide", "diphenoxylate"),
    ("c-difficile-infection",),
    "warning",
    "kb.antiperistaltic-c-difficile",
    "C. difficile infection",
    "consider stopping it while the infection is treated",
    "Antiperistaltic drugs keep the toxin in the colon; their labels contraindicate them in antibiotic-associated "
    "pseudomembranous colitis, where they risk toxic megacolon.",
)
ERGONOVINE_HYPERTENSION = DrugCondition(
    "rule.methylergonovine-hypertension",
    (),
    ("methylergonovine",),
    ("hypertension", "preeclampsia"),
    "critical",
    "kb.methylergonovine-hypertension",
    "Hypertension or preeclampsia",
    "contraindicated; consider oxytocin, carboprost (not in asthma) or misoprostol",
    "Methylergonovine constricts vessels and can cause a hypertensive crisis, stroke or seizures; its label "
    "contraindicates it in hypertension and toxaemia of pregnancy.",
)
INCRETIN_GASTROPARESIS = DrugCondition(
    "rule.incretin-gastroparesis",
    ("glp1-agonist",),
    (),
    ("gastroparesis",),
    "warning",
    "kb.glp1-agonist-gastroparesis",
    "Gastroparesis",
    "consider stopping it for a drug that does not slow gastric emptying",
    "GLP-1 receptor agonists slow gastric emptying; their labels do not recommend them in severe gastrointestinal "
    "disease such as gastroparesis.",
)
FEBUXOSTAT_CARDIOVASCULAR_DISEASE = DrugCondition(
    "rule.febuxostat-cardiovascular-disease",
    (),
    ("febuxostat",),
    (
        "myocardial-infarction",
        "coronary-heart-disease",
        "stroke",
        "ischaemic-stroke",
        "peripheral-arterial-disease",
    ),
    "warning",
    "kb.febuxostat-cardiovascular-death",
    "Established cardiovascular disease",
    "reserve it for gout that allopurinol failed or cannot treat",
    "Febuxostat raised cardiovascular death compared with allopurinol in patients with cardiovascular disease (CARES).",
    history_counts=True,
)
MONTELUKAST_SUICIDALITY = DrugCondition(
    "rule.montelukast-suicidality",
    (),
    ("montelukast",),
    ("suicidal-behaviour",),
    "warning",
    "kb.montelukast-neuropsychiatric-events",
    "Suicidal thoughts or behaviour",
    "consider another controller or allergy treatment",
    "Montelukast carries a boxed warning for serious neuropsychiatric events, suicidal thoughts and actions among them.",
    history_counts=True,
)
TERBINAFINE_LIVER_DISEASE = DrugCondition(
    "rule.terbinafine-liver-disease",
    (),
    ("terbinafine",),
    ("cirrhosis", "liver-disease"),
    "critical",
    "kb.terbinafine-liver-disease",
    "Chronic liver disease",
    "oral terbinafine is not recommended; consider a topical antifungal",
    "Oral terbinafine can cause liver failure, and its label does not recommend it in chronic or active liver disease.",
    systemic_only=True,
)
NALTREXONE_CIRRHOSIS = DrugCondition(
    "rule.naltrexone-cirrhosis",
    (),
    ("naltrexone",),
    ("cirrhosis",),
    "warning",
    "kb.naltrexone-hepatic-impairment",
    "Cirrhosis",
    "if decompensated, consider acamprosate instead for alcohol use disorder",
    "Naltrexone exposure rises several-fold in cirrhosis, and its label warns of hepatocellular injury.",
)
NSAID_BARIATRIC_SURGERY = DrugCondition(
    "rule.nsaid-bariatric-surgery",
    (),
    (),
    ("bariatric-surgery",),
    "warning",
    "kb.nsaid-after-gastric-bypass",
    "Gastric bypass",
    "consider acetaminophen or a topical NSAID (marginal-ulcer risk)",
    "After gastric bypass, oral NSAIDs cause marginal ulcers and perforation, so they are avoided long term.",
    select=analgesic_nsaids,
    history_counts=True,
)
LACTATION_AVOID = DrugCondition(
    "rule.lactation-avoid",
    (),
    # Codeine and tramadol have their own card (rule.codeine-tramadol-breastfeeding).
    ("doxepin", "amiodarone", "ergotamine", "tinidazole", "atenolol"),
    ("lactation",),
    "warning",
    "kb.lactation-drugs-to-avoid",
    "Breastfeeding",
    "consider an alternative compatible with breastfeeding",
    "These drugs reach the breastfed infant in amounts that have caused sedation, breathing problems or toxicity.",
    systemic_only=True,
)
MOOD_STABILISERS: Final = ("lithium", "valproate", "antipsychotic")
MOOD_STABILISER_INGREDIENTS: Final = frozenset({"lamotrigine", "carbamazepine", "oxcarbazepine"})


def _antidepressants_without_mood_stabiliser(facts: RuleFacts) -> tuple[Exposure, ...]:
    if any(
        e.has(*MOOD_STABILISERS) or not MOOD_STABILISER_INGREDIENTS.isdisjoint(e.ingredients)
        for e in facts.exposures
    ):
        return ()
    return tuple(e for e in facts.exposures if e.has("ssri", "snri", "tca") or "bupropion" in e.ingredients)


BIPOLAR_ANTIDEPRESSANT_MONOTHERAPY = DrugCondition(
    "rule.bipolar-antidepressant-monotherapy",
    (),
    (),
    ("bipolar-disorder",),
    "warning",
    "kb.bipolar-antidepressant-monotherapy",
    "Bipolar disorder",
    "no mood stabiliser or antipsychotic on record; consider adding one or stopping the antidepressant",
    "Antidepressants without a mood stabiliser can switch bipolar disorder into mania or rapid cycling.",
    select=_antidepressants_without_mood_stabiliser,
)


# Drugs that multiply an NSAID's upper-GI bleeding risk (ACG 2009 high-risk group; SSRI with NSAID, Beers 2023).
_BLEEDING_PARTNERS: Final = ("ssri", "snri", "anticoagulant", "antiplatelet", "corticosteroid")


def nsaid_peptic_ulcer(facts: RuleFacts) -> Iterator[Finding]:
    """An analgesic NSAID with a peptic ulcer or GI bleed on record, past or present (Beers 2023 names a history
    of ulcers). Critical with a past bleed and a drug that adds to it, and no PPI: the highest-risk group."""
    ulcers, bleeds = facts.ever("peptic-ulcer"), facts.ever("gi-bleed")
    nsaids = list(analgesic_nsaids(facts))
    if not (ulcers or bleeds) or not nsaids:
        return
    protected = any(named(e, GASTROPROTECTION) for e in facts.exposures)
    partners = systemic_beside_nsaids(facts, *_BLEEDING_PARTNERS)
    highest = bool(bleeds) and bool(partners) and not protected
    option = "consider another analgesic" if protected else "consider another analgesic or adding a PPI"
    also = f" and {_names(partners)}" if highest else ""
    yield Finding(
        "rule.nsaid-peptic-ulcer",
        "critical" if highest else "warning",
        _short(f"Peptic ulcer or GI bleeding on record with {_names(nsaids)}{also}: {option}"),
        "After a peptic ulcer or GI bleed, NSAIDs raise the risk of another bleed more than tenfold, and an "
        "SSRI, anticoagulant, antiplatelet or steroid beside them multiplies it again.",
        ("kb.nsaid-peptic-ulcer-history",),
        tuple(sorted({*ulcers, *bleeds, *_handles(nsaids), *(_handles(partners) if highest else ())})),
        _proposed(nsaids),
    )


# Tonsillectomy or adenoidectomy within this many days: the post-operative pain the 2017 restriction covers.
TONSILLECTOMY_DAYS: Final = 30


# --- clopidogrel with reduced CYP2C19 function ---------------------------------------------------------------

_CLOPIDOGREL_INDICATIONS: Final = (
    "coronary-heart-disease",
    "myocardial-infarction",
    "stroke",
    "ischaemic-stroke",
    "transient-ischaemic-attack",
)


def clopidogrel_cyp2c19_reduced_function(facts: RuleFacts) -> Iterator[Finding]:
    """Clopidogrel with a CYP2C19 poor or intermediate metaboliser result, for coronary disease or stroke: it is
    a prodrug CYP2C19 activates, so these patients get less platelet inhibition and more stent thrombosis."""
    clopidogrel = facts.with_ingredient("clopidogrel")
    genotype = facts.result("cyp2c19-reduced-function")
    if not clopidogrel or genotype is None or genotype.result != "positive":
        return
    indication = tuple(h for name in _CLOPIDOGREL_INDICATIONS for h in facts.ever(name))
    if not indication:
        return
    yield Finding(
        "rule.clopidogrel-cyp2c19-reduced-function",
        "warning",
        _short(
            f"Clopidogrel with reduced CYP2C19 function ({genotype.label}): consider prasugrel or ticagrelor if "
            "not contraindicated"
        ),
        "Clopidogrel needs CYP2C19 to become active; poor and intermediate metabolisers have more stent thrombosis "
        "and cardiovascular events on it (boxed warning, CPIC).",
        ("kb.clopidogrel-cyp2c19",),
        tuple(sorted({genotype.handle, *indication, *_handles(clopidogrel)})),
        _proposed(clopidogrel),
    )


# --- AV nodal blockers in pre-excited atrial fibrillation --------------------------------------------------

AV_NODAL_BLOCKER_CLASSES: Final = ("non-dihydropyridine-ccb", "cardiac-glycoside")
AV_NODAL_BLOCKER_INGREDIENTS: Final = frozenset({"adenosine"})


def av_nodal_blocker_pre_excited_af(facts: RuleFacts) -> Iterator[Finding]:
    """Diltiazem, verapamil, digoxin or adenosine with a pre-excitation (WPW) pattern and atrial fibrillation or
    flutter: blocking the AV node sends the fibrillation down the accessory pathway."""
    pathway = facts.ever("pre-excitation")
    fibrillation = facts.value_sets.get("atrial-fibrillation", ())
    if not pathway or not fibrillation:
        return
    drugs = tuple(
        e
        for e in facts.exposures
        if e.has(*AV_NODAL_BLOCKER_CLASSES) or not AV_NODAL_BLOCKER_INGREDIENTS.isdisjoint(e.ingredients)
    )
    if not drugs:
        return
    yield Finding(
        "rule.av-nodal-blocker-pre-excitation",
        "critical",
        _short(
            f"Pre-excited atrial fibrillation (WPW) and {_names(drugs)}: contraindicated; consider procainamide "
            "or cardioversion"
        ),
        "Slowing the AV node lets pre-excited atrial fibrillation conduct down the accessory pathway, which can "
        "degenerate into ventricular fibrillation.",
        ("kb.av-nodal-blockers-pre-excited-af",),
        (*pathway, *fibrillation, *_handles(drugs)),
        _proposed(drugs),
    )


# --- glucose-lowering drugs to switch in pregnancy ----------------------------------------------------------

PREGNANCY_SWITCH_CLASSES: Final = ("sglt2-inhibitor", "glp1-agonist", "dpp4-inhibitor")


def diabetes_drugs_in_pregnancy(facts: RuleFacts) -> Iterator[Finding]:
    """An SGLT2 inhibitor, GLP-1 receptor agonist or DPP-4 inhibitor in pregnancy: insulin is the treatment."""
    if not facts.pregnant:
        return
    drugs = facts.with_class(*PREGNANCY_SWITCH_CLASSES)
    if not drugs:
        return
    yield Finding(
        "rule.diabetes-drug-pregnancy",
        "warning",
        _short(f"Pregnancy with {_names(drugs)}: consider stopping it and starting insulin"),
        "These drugs lack safety data in pregnancy and SGLT2 inhibitors are not recommended after the first "
        "trimester; insulin is the preferred treatment when pregnancy starts.",
        ("kb.ada-diabetes-drugs-in-pregnancy",),
        (*facts.context.pregnancy.evidence, *_handles(drugs)),
        _proposed(drugs),
    )


def codeine_after_tonsillectomy(facts: RuleFacts) -> Iterator[Finding]:
    """Codeine or tramadol from 12 to 17 after a recent tonsillectomy (under 12 rule.paediatric-codeine-tramadol
    already says contraindicated). An undated procedure counts: it is shown, not assumed to be old."""
    age = facts.age
    if age is None or not 12 <= age < 18:
        return
    drugs = facts.with_class("codeine-like-opioid")
    if not drugs:
        return
    operations = [
        p.handle
        for p in facts.context.procedures
        if terminology.in_value_set("tonsillectomy-recent", p.code.system, p.code.code)
        and (p.days_ago is None or p.days_ago <= TONSILLECTOMY_DAYS)
    ]
    # A problem-list entry ("status post tonsillectomy", by code or words) counts while it began within the same
    # 30 days; an undated one counts.
    operations += facts.began_within(TONSILLECTOMY_DAYS, "tonsillectomy-recent")
    if not operations:
        return
    # Obstructive sleep apnoea, the usual reason for the operation, adds to the risk the label names.
    operations += facts.value_sets.get("obstructive-sleep-apnoea", ())
    yield Finding(
        "rule.paediatric-codeine-tonsillectomy",
        "critical",
        _short(
            f"{_names(drugs).capitalize()} after tonsillectomy at {age}: contraindicated; consider a non-opioid analgesic"
        ),
        "Children who metabolise codeine or tramadol ultra-rapidly have died of respiratory depression after these operations.",
        ("kb.codeine-tramadol-tonsillectomy-under-18",),
        tuple(sorted({*operations, *_handles(drugs)})),
        _proposed(drugs),
    )


CHC_SMOKING_AGE: Final = 35  # "over 35": whole years from 35 are past the 35th birthday


def chc_smoking_over_35(facts: RuleFacts) -> Iterator[Finding]:
    smoking = facts.value_sets.get("tobacco-smoking", ())
    if facts.age is None or facts.age < CHC_SMOKING_AGE or not smoking:
        return
    drugs = [e for e in facts.exposures if _combined_hormonal_contraceptive(e)]
    if not drugs:
        return
    yield Finding(
        "rule.chc-smoking-over-35",
        "critical",
        _short(
            f"Smoker aged {facts.context.demographics.age_label} on {_names(drugs)}: "
            "consider a progestogen-only or non-hormonal method"
        ),
        "Combined hormonal contraceptives are contraindicated in smokers over 35 because of heart attack and stroke risk.",
        ("kb.combined-hormonal-contraceptive-smoking-over-35",),
        tuple(sorted({*smoking, *_handles(drugs)})),
        _proposed(drugs),
    )


def chc_hypertension(facts: RuleFacts) -> Iterator[Finding]:
    """A combined hormonal contraceptive with hypertension on record or a current BP of 140/90 or more: US MEC
    2024 category 3 when controlled, 4 at 160/100 or more (estrogen raises BP and, with hypertension, stroke
    and heart attack risk)."""
    drugs = [e for e in facts.exposures if _combined_hormonal_contraceptive(e)]
    if not drugs:
        return
    hypertension = facts.value_sets.get("hypertension", ())
    systolic, diastolic = facts.current("systolic_bp"), facts.current("diastolic_bp")
    high = bp_high(systolic, diastolic)
    if not hypertension and not high:
        return
    bp = tuple(m.handle for m in (systolic, diastolic) if m is not None) if high else ()
    yield Finding(
        "rule.chc-hypertension",
        "warning",
        _short(f"Hypertension and {_names(drugs)}: consider a progestin-only or non-hormonal method"),
        "Estrogen-containing contraception raises blood pressure and, with hypertension, the risk of stroke and "
        "heart attack (US Medical Eligibility Criteria).",
        ("kb.chc-hypertension",),
        tuple(sorted({*hypertension, *bp, *_handles(drugs)})),
        _proposed(drugs),
    )


# --- age ------------------------------------------------------------------------------------------------------

PROMETHAZINE_MIN_AGE: Final = 2
TETRACYCLINE_MIN_AGE: Final = 8
FLUOROQUINOLONE_MIN_AGE: Final = 18


def paediatric_label_limits(facts: RuleFacts) -> Iterator[Finding]:
    age = facts.age
    if age is None or age >= 18:
        return
    promethazine = [e for e in facts.exposures if "promethazine" in e.ingredients]
    if promethazine and age < PROMETHAZINE_MIN_AGE:
        yield Finding(
            "rule.paediatric-promethazine",
            "critical",
            f"Promethazine is contraindicated under 2 (age {age}): consider another antiemetic or antihistamine",
            "Promethazine has caused fatal respiratory depression in children younger than 2 (boxed warning).",
            ("kb.promethazine-under-2",),
            _handles(promethazine),
            _proposed(promethazine),
        )
    tetracyclines = facts.with_class("tetracycline")
    if tetracyclines and age < TETRACYCLINE_MIN_AGE:
        yield Finding(
            "rule.paediatric-tetracycline",
            "warning",
            _short(
                f"{_names(tetracyclines).capitalize()} at age {age} can stain teeth: "
                "consider another antibiotic unless rickettsial disease or anthrax"
            ),
            "Tetracyclines bind to developing teeth and can stain them permanently before about age 8.",
            ("kb.tetracycline-children-under-8",),
            _handles(tetracyclines),
            _proposed(tetracyclines),
        )
    quinolones = facts.with_class("fluoroquinolone")
    if quinolones and age < FLUOROQUINOLONE_MIN_AGE:
        yield Finding(
            "rule.paediatric-fluoroquinolone",
            "warning",
            _short(
                f"{_names(quinolones).capitalize()} at age {age}: consider another antibiotic "
                "unless complicated UTI, anthrax or plague"
            ),
            "Children given fluoroquinolones had more joint and tendon problems, so the labels keep them for a few infections.",
            ("kb.fluoroquinolone-children",),
            _handles(quinolones),
            _proposed(quinolones),
        )


# MHRA (2024): childbearing potential runs from the first period to the menopause; 12 to 50 is the span a chart
# without menstrual history can stand on.
CHILDBEARING_AGES: Final = (12, 50)


def valproate_childbearing_potential(facts: RuleFacts) -> Iterator[Finding]:
    """Valproate in a girl or woman who could become pregnant: the Pregnancy Prevention Programme. A pregnant
    patient gets rule.pregnancy-teratogen (critical) instead."""
    age, sex = facts.age, facts.context.demographics.sex
    if (
        age is None
        or sex != "female"
        or not CHILDBEARING_AGES[0] <= age <= CHILDBEARING_AGES[1]
        or facts.pregnant
    ):
        return
    drugs = facts.with_class("valproate")
    if not drugs:
        return
    yield Finding(
        "rule.valproate-childbearing-potential",
        "warning",
        _short(
            f"Valproate in a female aged {age}: consider confirming the Pregnancy Prevention Programme "
            "and effective contraception"
        ),
        "Valproate causes major malformations and developmental harm, so it is used in those who could become "
        "pregnant only under a prevention programme.",
        ("kb.teratogen-contraception-counselling", "kb.valproate-pregnancy-prevention-programme"),
        _handles(drugs),
        _proposed(drugs),
    )


# --- older adults (AGS Beers criteria 2023) ----------------------------------------------------------------

# Strongly anticholinergic tricyclics; doxepin only above 6 mg a day.
DOXEPIN_LOW_DOSE_MG: Final = 6.0
LONG_ACTING_SULFONYLUREAS: Final = ("glyburide", "glimepiride", "chlorpropamide")
ASCVD_VALUE_SETS: Final = (
    "coronary-heart-disease",
    "myocardial-infarction",
    "stroke",
    "ischaemic-stroke",
    "peripheral-arterial-disease",
)


def _older(facts: RuleFacts) -> bool:
    return facts.age is not None and facts.age >= OLDER_ADULT_AGE and not facts.context.demographics.deceased


def _age(facts: RuleFacts) -> str:
    return f"Age {facts.context.demographics.age_label}"


def _low_dose_doxepin(facts: RuleFacts, exposure: Exposure) -> bool:
    if exposure.ingredients != ("doxepin",):
        return False
    strength = strength_mg(exposure, "doxepin")
    daily = daily_mg(dosage_of(facts, exposure), strength)
    mg = daily if daily is not None else strength
    return mg is not None and mg <= DOXEPIN_LOW_DOSE_MG


def _nsaid_advised_against(facts: RuleFacts) -> bool:
    """Another card already advises another analgesic instead of the NSAID (with an anticoagulant, in heart
    failure): adding a PPI to it is not the option to offer beside that. In kidney disease the NSAID card only asks
    to limit the course, so the gut is still worth protecting."""
    return bool(facts.with_class("anticoagulant") or facts.has_condition("heart-failure"))


def beers_label_checks(facts: RuleFacts) -> Iterator[Finding]:
    if not _older(facts):
        return
    tcas = [e for e in facts.with_class("tca") if not _low_dose_doxepin(facts, e)]
    if tcas:
        yield Finding(
            "rule.beers-anticholinergic-tca",
            "warning",
            _short(f"{_age(facts)} on {_names(tcas)}: consider a less anticholinergic antidepressant"),
            "Tricyclics are strongly anticholinergic and cause confusion, constipation, urinary retention and falls in older adults.",
            ("kb.beers-anticholinergic-tricyclics",),
            _handles(tcas),
            _proposed(tcas),
        )
    sulfonylureas = [
        e for e in facts.exposures if not set(LONG_ACTING_SULFONYLUREAS).isdisjoint(e.ingredients)
    ]
    if sulfonylureas:
        yield Finding(
            "rule.beers-long-acting-sulfonylurea",
            "warning",
            _short(
                f"{_age(facts)} on {_names(sulfonylureas)}: consider glipizide or a drug with less hypoglycaemia"
            ),
            "Long-acting sulfonylureas cause prolonged hypoglycaemia in older adults (AGS Beers criteria).",
            ("kb.beers-sulfonylureas",),
            _handles(sulfonylureas),
            _proposed(sulfonylureas),
        )
    # An ulcer or bleed, now or past, is rule.nsaid-peptic-ulcer's; an injected NSAID is a dose, not chronic use.
    ulcer = bool(facts.ever("peptic-ulcer") or facts.ever("gi-bleed"))
    nsaids = [
        e
        for e in analgesic_nsaids(facts)
        if not e.has("cox2-inhibitor") and not PARENTERAL.search(route_text(facts, e))
    ]
    if (
        nsaids
        and not ulcer
        and not _nsaid_advised_against(facts)
        and not any(named(e, GASTROPROTECTION) for e in facts.exposures)
    ):
        yield Finding(
            "rule.beers-nsaid-without-gastroprotection",
            "warning",
            _short(
                f"{_age(facts)} on {_names(nsaids)} without a PPI: if long-term, consider stopping it or adding one"
            ),
            "Long-term NSAIDs cause ulcers and bleeding in 2-4% of older adults a year unless a PPI or misoprostol protects them.",
            ("kb.beers-nsaid-chronic-use",),
            _handles(nsaids),
            _proposed(nsaids),
        )
    aspirin = [e for e in facts.exposures if "aspirin" in e.ingredients and low_dose_aspirin(facts, e)]
    ascvd = any(facts.has_condition(name) for name in ASCVD_VALUE_SETS)
    other_antithrombotic = any(
        e.has("antiplatelet", "anticoagulant") and "aspirin" not in e.ingredients for e in facts.exposures
    )
    if aspirin and not ascvd and not other_antithrombotic:
        yield Finding(
            "rule.beers-aspirin-primary-prevention",
            "warning",
            _short(
                f"{_age(facts)} on low-dose aspirin with no cardiovascular disease on record: "
                "if for primary prevention, consider stopping it"
            ),
            "For primary prevention in older adults, aspirin's bleeding risk outweighs its benefit (AGS Beers criteria).",
            ("kb.beers-aspirin-primary-prevention",),
            _handles(aspirin),
            _proposed(aspirin),
        )
    antipsychotics = facts.with_class("antipsychotic")
    dementia = facts.value_sets.get("dementia", ())
    if antipsychotics and dementia:
        yield Finding(
            "rule.beers-antipsychotic-dementia",
            "warning",
            _short(
                f"{_age(facts)} with dementia on {_names(antipsychotics)}: consider non-drug approaches and tapering"
            ),
            "In dementia, antipsychotics raise the risk of stroke, cognitive decline and death (boxed warning, AGS Beers criteria).",
            ("kb.beers-antipsychotics-dementia",),
            tuple(sorted({*dementia, *_handles(antipsychotics)})),
            _proposed(antipsychotics),
        )
    elif antipsychotics:
        yield from _beers_antipsychotic_without_indication(facts, antipsychotics)
    yield from _beers_anticoagulant(facts)


# Short-term antiemetic use is Beers' own exception; pimavanserin treats Parkinson's disease psychosis.
_ANTIEMETIC_OR_PARKINSON_ANTIPSYCHOTICS: Final = frozenset({"prochlorperazine", "droperidol", "pimavanserin"})
# What Beers 2023 accepts an antipsychotic for in older adults (with Tourette's and Huntington's chorea), and
# the psychosis of Parkinson's disease and Lewy body dementia (rule.parkinson-dopamine-blocker judges the drug).
_ANTIPSYCHOTIC_INDICATIONS: Final = (
    "psychotic-disorder",
    "bipolar-disorder",
    "depression",
    "tic-or-chorea",
    "parkinsons-disease",
    "lewy-body-dementia",
)
# Beside these an antipsychotic (olanzapine, haloperidol) is most likely an antiemetic, Beers' own exception.
_ANTIEMETIC_PARTNERS: Final = ("aprepitant", "fosaprepitant", "netupitant", "rolapitant")


def _beers_antipsychotic_without_indication(
    facts: RuleFacts, antipsychotics: tuple[Exposure, ...]
) -> Iterator[Finding]:
    """An older adult on an antipsychotic with no psychosis, bipolar disorder, depression (adjunct), Tourette's
    or Huntington's on record, past or present: often one started for delirium or sleep and never stopped."""
    drugs = tuple(
        e for e in antipsychotics if _ANTIEMETIC_OR_PARKINSON_ANTIPSYCHOTICS.isdisjoint(e.ingredients)
    )
    if not drugs or any(facts.ever(name) for name in _ANTIPSYCHOTIC_INDICATIONS):
        return
    if facts.with_class("5-ht3-antagonist") or any(named(e, _ANTIEMETIC_PARTNERS) for e in facts.exposures):
        return
    yield Finding(
        "rule.beers-antipsychotic-without-indication",
        "warning",
        _short(
            f"{_age(facts)} on {_names(drugs)} with no psychiatric indication on record: if for sleep, delirium "
            "or behaviour, consider tapering it"
        ),
        "In older adults antipsychotics raise the risk of falls, stroke and death; Beers 2023 advises against "
        "them except for schizophrenia, bipolar disorder or as adjuncts in depression.",
        ("kb.beers-antipsychotics-without-indication",),
        _handles(drugs),
        _proposed(drugs),
    )


def _beers_anticoagulant(facts: RuleFacts) -> Iterator[Finding]:
    """Atrial fibrillation at 65 or over: rivaroxaban (apixaban is safer), or warfarin started new without a
    prosthetic valve on record (a DOAC is first-line unless contraindicated). Only the EHR's draft orders count
    as a start: a governance proposal may update an existing order whose target is left out of the facts."""
    af = facts.value_sets.get("atrial-fibrillation", ())
    if not af:
        return
    rivaroxaban = [e for e in facts.exposures if "rivaroxaban" in e.ingredients]
    current_warfarin = any(e.has("vitamin-k-antagonist") and not e.proposed for e in facts.exposures)
    drafts = {d.handle for d in facts.context.draft_orders}
    new_warfarin = [
        e
        for e in facts.with_class("vitamin-k-antagonist")
        if e.handle in drafts and not current_warfarin and not facts.has_condition("prosthetic-heart-valve")
    ]
    if rivaroxaban:
        drugs, situation = rivaroxaban, f"on {_names(rivaroxaban)}: consider apixaban instead"
    elif new_warfarin:
        drugs, situation = (
            new_warfarin,
            "starting warfarin: consider a DOAC first unless one is contraindicated",
        )
    else:
        return
    yield Finding(
        "rule.beers-anticoagulant-choice",
        "warning",
        _short(f"{_age(facts)} with atrial fibrillation {situation}"),
        "In older adults apixaban bleeds less than rivaroxaban and warfarin, so AGS Beers advises it first.",
        ("kb.beers-anticoagulant-choice",),
        tuple(sorted({*af, *_handles(drugs)})),
        _proposed(drugs),
    )


# --- drug and genotype, drug and hepatitis B serology ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DrugAllele:
    """A drug an HLA allele makes dangerous (a severe hypersensitivity reaction) when the chart holds a positive
    result; a negative result says nothing here. `test_before` asks for the result when the drug is being ordered
    and none, or only an indeterminate one, is on record (abacavir: screening before the first dose is the label's
    rule). No
    order is offered: HLA tests are coded locally, and a wrong LOINC on an order is worse than none."""

    rule_id: str
    ingredients: frozenset[str]
    test: str  # codes.QUALITATIVE_TESTS key
    evidence: str
    reaction: str
    test_before: bool = False

    def __call__(self, facts: RuleFacts) -> Iterator[Finding]:
        drugs = facts.with_ingredient(*self.ingredients)
        if not drugs:
            return
        result = facts.result(self.test)
        allele = result.label if result is not None else QUALITATIVE_TESTS[self.test].label
        if result is not None and result.result == "positive":
            yield Finding(
                self.rule_id,
                "critical",
                _short(
                    f"{allele} positive and {_names(drugs)}: contraindicated ({self.reaction}); consider an alternative"
                ),
                f"Carriers of {allele} are at high risk of {self.reaction} with this drug, which is not given to them.",
                (self.evidence,),
                (*_handles(drugs), result.handle),
                _proposed(drugs),
            )
        elif (
            (result is None or result.result == "indeterminate")
            and self.test_before
            and any(e.proposed for e in drugs)
        ):
            proposed = tuple(e for e in drugs if e.proposed)
            yield Finding(
                self.rule_id,
                "warning",
                _short(f"No conclusive {allele} result for new {_names(proposed)}: consider testing first"),
                f"Screening for the allele before the first dose prevents {self.reaction}; an unknown result is not a negative one.",
                (self.evidence,),
                (*_handles(proposed), *((result.handle,) if result is not None else ())),
                _proposed(proposed),
            )


ABACAVIR_HLA_B5701 = DrugAllele(
    "rule.abacavir-hla-b5701",
    frozenset({"abacavir"}),
    "hla-b5701",
    "kb.abacavir-hla-b5701",
    "abacavir hypersensitivity",
    test_before=True,
)
CARBAMAZEPINE_HLA_B1502 = DrugAllele(
    "rule.carbamazepine-hla-b1502",
    frozenset({"carbamazepine", "oxcarbazepine"}),
    "hla-b1502",
    "kb.carbamazepine-hla-b1502",
    "Stevens-Johnson syndrome or TEN",
)
ALLOPURINOL_HLA_B5801 = DrugAllele(
    "rule.allopurinol-hla-b5801",
    frozenset({"allopurinol"}),
    "hla-b5801",
    "kb.allopurinol-hla-b5801",
    "severe cutaneous reactions (SJS, TEN, DRESS)",
)
ANTI_CD20: Final = frozenset({"rituximab", "obinutuzumab", "ofatumumab", "ocrelizumab", "ublituximab"})
# Tenofovir is named three ways: by the brand (Viread, Vemlidy) and by each salt written out in the text.
HBV_PROPHYLAXIS: Final = frozenset(
    {"entecavir", "tenofovir", "tenofovir alafenamide", "tenofovir disoproxil"}
)
HBV_SCREEN = LabOrder("5196-1", "Hepatitis B virus surface Ag [Presence] in Serum or Plasma by Immunoassay")


def anti_cd20_hepatitis_b(facts: RuleFacts) -> Iterator[Finding]:
    """An anti-CD20 antibody reactivates hepatitis B: a positive HBsAg or anti-HBc calls for entecavir or
    tenofovir prophylaxis (AASLD, the labels' boxed warning); a new order with no serology asks for it."""
    drugs = facts.with_ingredient(*ANTI_CD20)
    if not drugs:
        return
    # An indeterminate answer is no answer: it neither calls for prophylaxis nor stands in for screening.
    serology = tuple(
        r
        for test in ("hbsag", "anti-hbc")
        if (r := facts.result(test)) is not None and r.result != "indeterminate"
    )
    positive = tuple(r for r in serology if r.result == "positive")
    if positive:
        if any(not HBV_PROPHYLAXIS.isdisjoint(e.ingredients) for e in facts.exposures):
            return
        yield Finding(
            "rule.anti-cd20-hbv-prophylaxis",
            "warning",
            _short(
                f"{' and '.join(r.label for r in positive)} positive on {_names(drugs)} with no antiviral: "
                "consider entecavir or tenofovir prophylaxis"
            ),
            "Anti-CD20 antibodies can reactivate hepatitis B, sometimes fatally; prophylaxis is given to HBsAg- or "
            "anti-HBc-positive patients through treatment and for at least a year after.",
            ("kb.anti-cd20-hbv-reactivation",),
            (*_handles(drugs), *(r.handle for r in positive)),
            _proposed(drugs),
        )
    elif len(serology) < 2 and any(e.proposed for e in drugs):
        proposed = tuple(e for e in drugs if e.proposed)
        known = {r.test for r in serology}
        missing = " and ".join(
            label for test, label in (("hbsag", "HBsAg"), ("anti-hbc", "anti-HBc")) if test not in known
        )
        yield Finding(
            "rule.anti-cd20-hbv-prophylaxis",
            "warning",
            _short(f"No {missing} on record before {_names(proposed)}: consider hepatitis B screening first"),
            "Every patient is screened for hepatitis B (HBsAg and anti-HBc) before an anti-CD20 antibody; an "
            "unknown result is not a negative one.",
            ("kb.anti-cd20-hbv-reactivation",),
            _handles(proposed),
            _proposed(proposed),
            HBV_SCREEN,
        )


def chc_antiphospholipid(facts: RuleFacts) -> Iterator[Finding]:
    """Estrogen-containing contraception with antiphospholipid antibodies (a condition, or a positive lupus
    anticoagulant): US MEC category 4, with or without lupus."""
    drugs = tuple(e for e in facts.exposures if _combined_hormonal_contraceptive(e))
    if not drugs:
        return
    result = facts.result("lupus-anticoagulant")
    evidence = (
        *facts.value_sets.get("antiphospholipid-syndrome", ()),
        *((result.handle,) if result is not None and result.result == "positive" else ()),
    )
    if not evidence:
        return
    yield Finding(
        "rule.chc-antiphospholipid",
        "critical",
        _short(
            f"Antiphospholipid antibodies on record with {_names(drugs)}: consider a progestin-only or copper IUD"
        ),
        "Estrogen raises the already high clotting risk of antiphospholipid antibodies (US MEC category 4).",
        ("kb.chc-antiphospholipid-antibodies",),
        (*evidence, *_handles(drugs)),
        _proposed(drugs),
    )


KETOROLAC_MAX_DAYS: Final = 5  # the label's limit for all routes together


def ketorolac_beyond_five_days(facts: RuleFacts) -> Iterator[Finding]:
    drugs = tuple(
        e
        for e in facts.with_ingredient("ketorolac")
        if not SKIN_EYE_EAR.search(e.label) and e.taken_longer_than(KETOROLAC_MAX_DAYS)
    )
    if not drugs:
        return
    days = max(e.started_days_ago or 0 for e in drugs)
    yield Finding(
        "rule.ketorolac-beyond-five-days",
        "critical",
        _short(
            f"Ketorolac ordered {days} days ago and still active: the label stops it at 5 days; consider stopping it"
        ),
        "Ketorolac's risks of GI bleeding and kidney injury climb past five days, its labelled maximum.",
        ("kb.ketorolac-five-day-limit",),
        _handles(drugs),
    )


RANOLAZINE_MODERATE_INHIBITORS: Final = frozenset({"diltiazem", "verapamil", "erythromycin", "fluconazole"})
RANOLAZINE_WITH_MODERATE_MAX_MG: Final = 1000  # 500 mg twice daily


def ranolazine_moderate_inhibitor_dose(facts: RuleFacts) -> Iterator[Finding]:
    partners = tuple(
        e
        for e in facts.exposures
        if not RANOLAZINE_MODERATE_INHIBITORS.isdisjoint(e.ingredients) and not SKIN_EYE_EAR.search(e.label)
    )
    if not partners:
        return
    for drug in facts.with_ingredient("ranolazine"):
        daily = daily_mg(dosage_of(facts, drug), strength_mg(drug, "ranolazine"))
        if daily is None or daily <= RANOLAZINE_WITH_MODERATE_MAX_MG:
            continue
        yield Finding(
            "rule.ranolazine-moderate-cyp3a-dose",
            "warning",
            _short(
                f"Ranolazine {daily:g} mg a day with {_names(partners)}: the label's limit is 500 mg twice daily; "
                "consider reducing it"
            ),
            "Moderate CYP3A inhibitors raise ranolazine levels, and with them QT prolongation.",
            ("kb.ranolazine-moderate-cyp3a-inhibitors",),
            (drug.handle, *_handles(partners)),
            _proposed([drug]),
        )


# Given through a feeding tube: a tube route on the order, or a feeding tube on the problem list.
_TUBE_ROUTE: Final = re.compile(
    r"gastrostomy|jejunostomy|nasogastric|enteral|\btube\b|\bpeg\b", re.IGNORECASE
)
_NOT_CRUSHED: Final = re.compile(r"transdermal|patch|\bsuspension\b|\bsolution\b|sprinkle", re.IGNORECASE)


def extended_release_via_tube(facts: RuleFacts) -> Iterator[Finding]:
    """Extended-release tablets and capsules for a patient fed by tube: crushing one releases the whole dose at
    once (ISMP Do Not Crush list). Patches, liquids and sprinkle capsules are meant for this."""
    tube = facts.value_sets.get("enteral-feeding-tube", ())
    drugs = []
    for exposure in facts.exposures:
        if not EXTENDED_RELEASE.search(exposure.label) or _NOT_CRUSHED.search(exposure.label):
            continue
        dosage = dosage_of(facts, exposure)
        by_tube = dosage is not None and dosage.route is not None and bool(_TUBE_ROUTE.search(dosage.route))
        if by_tube or tube:
            drugs.append(exposure)
    if not drugs:
        return
    yield Finding(
        "rule.extended-release-via-tube",
        "critical",
        _short(
            f"Extended-release {_names(drugs)} for a patient fed by tube: crushing releases the whole dose at "
            "once; consider an immediate-release or liquid form"
        ),
        "Crushed extended-release products deliver their full dose at once: overdose (opioids, beta-blockers) "
        "followed by hours without drug.",
        ("kb.do-not-crush-extended-release",),
        (*tube, *_handles(drugs)),
        _proposed(drugs),
    )


# Products whose hormone does not pass the stomach: tirzepatide's delayed gastric emptying spares them.
_NOT_SWALLOWED: Final = re.compile(
    r"\b(patch|transdermal|ring|vaginal|intrauterine|iud|implant|inject\w*|intramuscular|subcutaneous)\b",
    re.IGNORECASE,
)


def tirzepatide_oral_contraceptive(facts: RuleFacts) -> Iterator[Finding]:
    """Tirzepatide with an oral hormonal contraceptive: its label asks for a non-oral or an added barrier method
    for 4 weeks after the start and after each dose increase (the delayed gastric emptying lowers the pill's
    exposure). Patches, rings, implants, injections and IUDs are not affected."""
    tirzepatide = facts.with_ingredient("tirzepatide")
    pills = tuple(e for e in facts.with_class("hormonal-contraceptive") if not _NOT_SWALLOWED.search(e.label))
    if not tirzepatide or not pills:
        return
    yield Finding(
        "rule.tirzepatide-oral-contraceptive",
        "warning",
        _short(
            f"Tirzepatide with oral {_names(pills)}: consider a barrier or non-oral method for 4 weeks after "
            "each dose step"
        ),
        "Tirzepatide delays gastric emptying and lowers oral contraceptive exposure, most after the first dose "
        "and each increase.",
        ("kb.tirzepatide-oral-contraceptives",),
        _handles((*tirzepatide, *pills)),
        _proposed((*tirzepatide, *pills)),
    )


# Drugs whose labels ask for latent tuberculosis testing before the first dose (boxed warnings: TNF and JAK
# inhibitors; warnings: IL-6 receptor antibodies).
TB_SCREEN_BEFORE: Final = frozenset(
    {
        "adalimumab",
        "etanercept",
        "infliximab",
        "certolizumab",
        "golimumab",
        "tofacitinib",
        "baricitinib",
        "upadacitinib",
        "tocilizumab",
        "sarilumab",
    }
)
LATENT_TB_TREATMENT: Final = frozenset({"isoniazid", "rifampin", "rifapentine"})


def tuberculosis_screen_before_immunosuppression(facts: RuleFacts) -> Iterator[Finding]:
    """A TNF, JAK or IL-6 receptor inhibitor: a positive TB screen with no latent TB treatment on record calls
    for it; a new order with no screening result asks for one (an indeterminate answer is no answer)."""
    drugs = facts.with_ingredient(*TB_SCREEN_BEFORE)
    if not drugs:
        return
    screen = facts.result("tb-screen")
    if screen is not None and screen.result == "positive":
        if any(not LATENT_TB_TREATMENT.isdisjoint(e.ingredients) for e in facts.exposures):
            return
        yield Finding(
            "rule.tuberculosis-screen-before-immunosuppression",
            "warning",
            _short(
                f"Positive TB screen with {_names(drugs)} and no latent TB treatment on record: consider "
                "treating it (isoniazid or a rifamycin) before or with the drug"
            ),
            "TNF, JAK and IL-6 inhibitors reactivate latent tuberculosis; a positive screen is treated, ideally "
            "before the first dose.",
            ("kb.tuberculosis-screen-before-biologics",),
            (*_handles(drugs), screen.handle),
            _proposed(drugs),
        )
        return
    proposed = tuple(e for e in drugs if e.proposed)
    if proposed and (screen is None or screen.result == "indeterminate"):
        yield Finding(
            "rule.tuberculosis-screen-before-immunosuppression",
            "warning",
            _short(
                f"No {'conclusive ' if screen is not None else ''}TB screen on record before {_names(proposed)}: "
                "consider an IGRA (or skin test) first"
            ),
            "These drugs' labels ask for latent tuberculosis testing before the first dose; an unknown result is "
            "not a negative one.",
            ("kb.tuberculosis-screen-before-biologics",),
            (*_handles(proposed), *((screen.handle,) if screen is not None else ())),
            _proposed(proposed),
        )


def antithrombotics_without_gastroprotection(facts: RuleFacts) -> Iterator[Finding]:
    """Two antithrombotics (dual antiplatelet therapy, or an anticoagulant with an antiplatelet) after a peptic
    ulcer or GI bleed, with no PPI: the ACC/AHA DAPT update and ACG advise one for exactly this patient."""
    antithrombotics = systemic_beside_nsaids(facts, "antiplatelet", "anticoagulant")
    history = (*facts.ever("peptic-ulcer"), *facts.ever("gi-bleed"))
    if len({e.ingredients for e in antithrombotics}) < 2 or not history:
        return
    if any(named(e, GASTROPROTECTION) for e in facts.exposures):
        return
    yield Finding(
        "rule.antithrombotics-without-gastroprotection",
        "warning",
        _short(
            f"Peptic ulcer or GI bleed on record with {_names(antithrombotics)} and no PPI: consider adding one "
            "for as long as both are taken"
        ),
        "Two antithrombotics after an ulcer or GI bleed carry a high risk of another bleed; a PPI cuts it by "
        "more than half.",
        ("kb.antithrombotic-gastroprotection",),
        tuple(sorted({*history, *_handles(antithrombotics)})),
        _proposed(antithrombotics),
    )


ROMOSOZUMAB_EVENT_DAYS: Final = 365  # the boxed warning's preceding year


def romosozumab_after_mi_or_stroke(facts: RuleFacts) -> Iterator[Finding]:
    """Romosozumab with a myocardial infarction or stroke that began within the past year (or undated: shown, not
    assumed old): its boxed warning says not to start it then."""
    drugs = facts.with_ingredient("romosozumab")
    if not drugs:
        return
    recent = facts.began_within(ROMOSOZUMAB_EVENT_DAYS, "myocardial-infarction", "stroke", "ischaemic-stroke")
    if not recent:
        return
    yield Finding(
        "rule.romosozumab-recent-mi-stroke",
        "critical",
        _short(
            "Myocardial infarction or stroke within the past year with romosozumab: consider another "
            "osteoporosis treatment (teriparatide, abaloparatide, denosumab)"
        ),
        "Romosozumab raised the rate of heart attack, stroke and cardiovascular death; its boxed warning says not "
        "to start it within a year of either.",
        ("kb.romosozumab-cardiovascular",),
        tuple(sorted({*recent, *_handles(drugs)})),
        _proposed(drugs),
    )


LABEL_CHECK_RULES: tuple[Rule, ...] = (
    GiRiskGatedPair(SSRI_SNRI_BLEEDING),
    TshGatedPair(LEVOTHYROXINE_BINDING),
    *PAIRS,
    SystemicPair(FLUOROQUINOLONE_CORTICOSTEROID),
    ibuprofen_low_dose_aspirin,
    citalopram_qt_dose,
    DOAC_MECHANICAL_VALVE,
    FLUOROQUINOLONE_MYASTHENIA,
    FLUOROQUINOLONE_AORTIC_ANEURYSM,
    CHC_VENOUS_THROMBOEMBOLISM,
    MENOPAUSAL_ESTROGEN_VENOUS_THROMBOEMBOLISM,
    DULOXETINE_LIVER_DISEASE,
    CLASS_IC_STRUCTURAL_HEART_DISEASE,
    G6PD_DEFICIENCY,
    RALOXIFENE_VENOUS_THROMBOEMBOLISM,
    ANTICHOLINERGIC_ANGLE_CLOSURE,
    DOAC_MODERATE_HEPATIC_IMPAIRMENT,
    BIPOLAR_ANTIDEPRESSANT_MONOTHERAPY,
    DRONEDARONE_HEART_FAILURE,
    DOAC_PREGNANCY,
    ABACAVIR_HLA_B5701,
    CARBAMAZEPINE_HLA_B1502,
    ALLOPURINOL_HLA_B5801,
    anti_cd20_hepatitis_b,
    tuberculosis_screen_before_immunosuppression,
    IL17_INFLAMMATORY_BOWEL_DISEASE,
    THIAZIDE_GOUT,
    SEDATIVE_CIRRHOSIS,
    ANTICHOLINERGIC_URINARY_RETENTION,
    ATENOLOL_PREGNANCY,
    PSEUDOEPHEDRINE_LACTATION,
    ITRACONAZOLE_HEART_FAILURE,
    TRAMADOL_EPILEPSY,
    PRASUGREL_PRIOR_STROKE_TIA,
    JAK_INHIBITOR_THROMBOSIS,
    PIOGLITAZONE_BLADDER_CANCER,
    INCRETIN_GASTROPARESIS,
    ANTIPERISTALTIC_C_DIFFICILE,
    ERGONOVINE_HYPERTENSION,
    ORAL_BISPHOSPHONATE_OESOPHAGUS,
    JAK_INHIBITOR_CARDIOVASCULAR,
    TNF_INHIBITOR_HEART_FAILURE,
    THIAZIDE_HYPERCALCAEMIA,
    THIAZOLIDINEDIONE_OSTEOPOROSIS,
    ROFLUMILAST_DEPRESSION,
    av_nodal_blocker_pre_excited_af,
    clopidogrel_cyp2c19_reduced_function,
    diabetes_drugs_in_pregnancy,
    romosozumab_after_mi_or_stroke,
    antithrombotics_without_gastroprotection,
    tirzepatide_oral_contraceptive,
    FEBUXOSTAT_CARDIOVASCULAR_DISEASE,
    MONTELUKAST_SUICIDALITY,
    TERBINAFINE_LIVER_DISEASE,
    NALTREXONE_CIRRHOSIS,
    NSAID_BARIATRIC_SURGERY,
    LACTATION_AVOID,
    chc_antiphospholipid,
    ketorolac_beyond_five_days,
    ranolazine_moderate_inhibitor_dose,
    extended_release_via_tube,
    INCRETIN_MEDULLARY_THYROID_CANCER,
    SGLT2_TYPE_1_DIABETES,
    NITROFURANTOIN_PYELONEPHRITIS,
    nsaid_peptic_ulcer,
    codeine_after_tonsillectomy,
    chc_smoking_over_35,
    chc_hypertension,
    paediatric_label_limits,
    valproate_childbearing_potential,
    beers_label_checks,
)
