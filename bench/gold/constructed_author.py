"""Writes bench/gold/constructed_cases.json: the constructed-case gold set, authored here as compact Python.

Each case is a small synthetic chart written the way a clinical pharmacist sets up a teaching case: one
concern (or its near miss) per chart, with the expected findings graded from guidelines and FDA labels
alone, without reference to the product's rules. Edit the cases below, then run

    .venv/bin/python -m bench.gold.constructed_author

and the JSON is rewritten (and validated against bench/gold/model.py before it is written).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import orjson

from bench.gold.model import CONSTRUCTED_PATH, ConstructedSet

JsonDict = dict[str, Any]

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
CVX = "http://hl7.org/fhir/sid/cvx"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
LOCAL_FORMULARY = "http://hospital.example.org/fhir/CodeSystem/formulary"

SUMMER = date(2026, 6, 15)  # outside influenza season, so no flu-vaccine gap is expected
WINTER = date(2026, 1, 15)  # inside the 2025-26 season (vaccination counted from 1 August 2025)


@dataclass(frozen=True)
class Drug:
    code: str
    display: str
    ingredients: tuple[tuple[str, str | None], ...]  # (generic name, RxNorm ingredient code)
    unsure: bool = False  # the SCD code is the author's best recollection: listed in code_review


def _d(code: str, display: str, *ingredients: tuple[str, str | None], unsure: bool = False) -> Drug:
    return Drug(code, display, ingredients, unsure)


# RxNorm clinical drugs. Codes reused from tests/support/rule_cases.py and the Synthea fixtures are certain;
# the rest are marked unsure and listed in the file's code_review.
DRUGS: dict[str, Drug] = {
    "acetaminophen": _d("313782", "Acetaminophen 325 MG Oral Tablet", ("acetaminophen", "161")),
    "albuterol": _d(
        "745679", "200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler", ("albuterol", "435")
    ),
    "allopurinol": _d("197319", "Allopurinol 100 MG Oral Tablet", ("allopurinol", "519"), unsure=True),
    "alprazolam": _d("308048", "ALPRAZolam 0.5 MG Oral Tablet", ("alprazolam", "596"), unsure=True),
    "amiloride": _d("197312", "Amiloride Hydrochloride 5 MG Oral Tablet", ("amiloride", "644"), unsure=True),
    "amiodarone": _d("833528", "amiodarone hydrochloride 200 MG Oral Tablet", ("amiodarone", "703")),
    "amlodipine": _d("197361", "Amlodipine 5 MG Oral Tablet", ("amlodipine", "17767")),
    "amlodipine-10": _d("308135", "amLODIPine 10 MG Oral Tablet", ("amlodipine", "17767")),
    "amoxicillin": _d("308191", "Amoxicillin 500 MG Oral Capsule", ("amoxicillin", "723")),
    "amoxicillin-250": _d("308182", "Amoxicillin 250 MG Oral Capsule", ("amoxicillin", "723")),
    "amoxicillin-susp": _d(
        "308189", "Amoxicillin 80 MG/ML Oral Suspension", ("amoxicillin", "723"), unsure=True
    ),
    "apixaban": _d("1364445", "apixaban 5 MG Oral Tablet", ("apixaban", "1364430")),
    "apixaban-2.5": _d("1364441", "apixaban 2.5 MG Oral Tablet", ("apixaban", "1364430"), unsure=True),
    "aspirin": _d("243670", "aspirin 81 MG Oral Tablet", ("aspirin", "1191")),
    "aspirin-325": _d("198466", "Aspirin 325 MG Oral Tablet", ("aspirin", "1191"), unsure=True),
    "atorvastatin": _d("617310", "atorvastatin 20 MG Oral Tablet", ("atorvastatin", "83367")),
    "atorvastatin-40": _d("617311", "atorvastatin 40 MG Oral Tablet", ("atorvastatin", "83367"), unsure=True),
    "azathioprine": _d("197388", "Azathioprine 50 MG Oral Tablet", ("azathioprine", "1256"), unsure=True),
    "azithromycin": _d("308460", "Azithromycin 250 MG Oral Tablet", ("azithromycin", "18631")),
    "cetirizine": _d("1014676", "cetirizine hydrochloride 5 MG Oral Tablet", ("cetirizine", "20610")),
    "ciprofloxacin": _d("197511", "Ciprofloxacin 500 MG Oral Tablet", ("ciprofloxacin", "2551")),
    "citalopram": _d("200371", "Citalopram 20 MG Oral Tablet", ("citalopram", "2556"), unsure=True),
    "clarithromycin": _d("197517", "clarithromycin 500 MG Oral Tablet", ("clarithromycin", "21212")),
    "clopidogrel": _d("309362", "Clopidogrel 75 MG Oral Tablet", ("clopidogrel", "32968")),
    "co-trimoxazole": _d(
        "198335",
        "Sulfamethoxazole 800 MG / Trimethoprim 160 MG Oral Tablet",
        ("sulfamethoxazole", "10180"),
        ("trimethoprim", "10829"),
    ),
    "dabigatran": _d(
        "1037045", "dabigatran etexilate 150 MG Oral Capsule", ("dabigatran", "1546356"), unsure=True
    ),
    "digoxin": _d("197604", "Digoxin 0.125 MG Oral Tablet", ("digoxin", "3407")),
    "duloxetine": _d(
        "596930", "DULoxetine 60 MG Delayed Release Oral Capsule", ("duloxetine", "72625"), unsure=True
    ),
    "enoxaparin": _d(
        "854235",
        "0.8 ML enoxaparin sodium 100 MG/ML Prefilled Syringe",
        ("enoxaparin", "67108"),
        unsure=True,
    ),
    "epinephrine-0.15": _d("727316", "0.3 ML EPINEPHrine 0.5 MG/ML Auto-Injector", ("epinephrine", "3992")),
    "epinephrine-0.3": _d(
        "1870230", "NDA020800 0.3 ML Epinephrine 1 MG/ML Auto-Injector", ("epinephrine", "3992")
    ),
    "ergotamine": _d(
        "238135",
        "Caffeine 100 MG / Ergotamine Tartrate 1 MG Oral Tablet",
        ("caffeine", "1886"),
        ("ergotamine", "4025"),
        unsure=True,
    ),
    "escitalopram": _d("349332", "escitalopram 10 MG Oral Tablet", ("escitalopram", "321988"), unsure=True),
    "febuxostat": _d("853319", "febuxostat 40 MG Oral Tablet", ("febuxostat", "73689"), unsure=True),
    "fentanyl": _d(
        "197696", "72 HR fentanyl 0.025 MG/HR Transdermal System", ("fentanyl", "4337"), unsure=True
    ),
    "fluticasone": _d(
        "895994",
        "120 ACTUAT Fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler",
        ("fluticasone", "41126"),
    ),
    "fluticasone-salmeterol": _d(
        "896209",
        "60 ACTUAT Fluticasone propionate 0.25 MG/ACTUAT / salmeterol 0.05 MG/ACTUAT Dry Powder Inhaler",
        ("fluticasone", "41126"),
        ("salmeterol", "36117"),
    ),
    "fluvoxamine": _d(
        "903873", "fluvoxamine maleate 50 MG Oral Tablet", ("fluvoxamine", "42355"), unsure=True
    ),
    "folic-acid": _d("310410", "Folic Acid 1 MG Oral Tablet", ("folic acid", "4511"), unsure=True),
    "furosemide": _d("310429", "Furosemide 20 MG Oral Tablet", ("furosemide", "4603")),
    "gabapentin": _d("310431", "Gabapentin 300 MG Oral Capsule", ("gabapentin", "25480"), unsure=True),
    "gentamicin": _d(
        "1665088",
        "2 ML gentamicin sulfate 40 MG/ML Injection",
        ("gentamicin", "4413"),
        unsure=True,
    ),
    "glipizide": _d("310490", "glipiZIDE 5 MG Oral Tablet", ("glipizide", "4821"), unsure=True),
    "hydrochlorothiazide": _d(
        "310798", "Hydrochlorothiazide 25 MG Oral Tablet", ("hydrochlorothiazide", "5487")
    ),
    "hydrocodone-apap": _d(
        "856980",
        "Acetaminophen 325 MG / HYDROcodone Bitartrate 10 MG Oral Tablet",
        ("acetaminophen", "161"),
        ("hydrocodone", "5489"),
        unsure=True,
    ),
    "hydrocodone-apap-7.5": _d(
        "857005",
        "Acetaminophen 325 MG / HYDROcodone Bitartrate 7.5 MG Oral Tablet",
        ("acetaminophen", "161"),
        ("hydrocodone", "5489"),
    ),
    "ibuprofen": _d("197806", "Ibuprofen 600 MG Oral Tablet", ("ibuprofen", "5640")),
    "ibuprofen-200": _d("310965", "Ibuprofen 200 MG Oral Tablet", ("ibuprofen", "5640")),
    "insulin-70-30": _d(
        "106892",
        "insulin human, isophane 70 UNT/ML / Regular Insulin, Human 30 UNT/ML Injectable Suspension [Humulin]",
        ("insulin isophane, human", "5856"),
        ("insulin regular, human", "253182"),
    ),
    "isosorbide-mononitrate": _d(
        "198021",
        "24 HR Isosorbide Mononitrate 30 MG Extended Release Oral Tablet",
        ("isosorbide mononitrate", "6058"),
        unsure=True,
    ),
    "itraconazole": _d("197857", "Itraconazole 100 MG Oral Capsule", ("itraconazole", "28031"), unsure=True),
    "ketoconazole": _d("197985", "Ketoconazole 200 MG Oral Tablet", ("ketoconazole", "6135")),
    "lamotrigine": _d("198429", "lamoTRIgine 100 MG Oral Tablet", ("lamotrigine", "28439"), unsure=True),
    "levofloxacin": _d("311296", "levoFLOXacin 750 MG Oral Tablet", ("levofloxacin", "82122"), unsure=True),
    "levothyroxine": _d("966222", "Levothyroxine Sodium 0.075 MG Oral Tablet", ("levothyroxine", "10582")),
    "lisinopril": _d("314076", "lisinopril 10 MG Oral Tablet", ("lisinopril", "29046")),
    "loratadine": _d("311372", "Loratadine 10 MG Oral Tablet", ("loratadine", "28889")),
    "lorazepam": _d("197901", "Lorazepam 1 MG Oral Tablet", ("lorazepam", "6470")),
    "losartan": _d("979485", "losartan potassium 50 MG Oral Tablet", ("losartan", "52175")),
    "lovastatin": _d("197904", "Lovastatin 20 MG Oral Tablet", ("lovastatin", "6472")),
    "mercaptopurine": _d(
        "197931", "Mercaptopurine 50 MG Oral Tablet", ("mercaptopurine", "103"), unsure=True
    ),
    "metformin": _d(
        "860975",
        "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet",
        ("metformin", "6809"),
    ),
    "metformin-1000": _d(
        "861004", "Metformin hydrochloride 1000 MG Oral Tablet", ("metformin", "6809"), unsure=True
    ),
    "methadone": _d(
        "864706", "Methadone Hydrochloride 10 MG Oral Tablet", ("methadone", "6813"), unsure=True
    ),
    "methotrexate": _d("105585", "Methotrexate 2.5 MG Oral Tablet", ("methotrexate", "6851")),
    "methylphenidate": _d(
        "1091392", "Methylphenidate Hydrochloride 20 MG Oral Tablet", ("methylphenidate", "6901")
    ),
    "metoprolol": _d(
        "866414",
        "24 HR metoprolol succinate 100 MG Extended Release Oral Tablet [Toprol]",
        ("metoprolol", "6918"),
    ),
    "metronidazole": _d("197536", "Metronidazole 500 MG Oral Tablet", ("metronidazole", "6922"), unsure=True),
    "metronidazole-gel": _d(
        "311681", "Metronidazole 7.5 MG/ML Topical Gel", ("metronidazole", "6922"), unsure=True
    ),
    "naloxone": _d(
        "1725065", "naloxone hydrochloride 4 MG/ACTUAT Nasal Spray", ("naloxone", "7242"), unsure=True
    ),
    "naproxen": _d("198014", "Naproxen 500 MG Oral Tablet", ("naproxen", "7258")),
    "nitrofurantoin": _d("311989", "Nitrofurantoin 5 MG/ML Oral Suspension", ("nitrofurantoin", "7454")),
    "nitroglycerin": _d("705129", "Nitroglycerin 0.4 MG/ACTUAT Mucosal Spray", ("nitroglycerin", "4917")),
    "ondansetron": _d("312086", "Ondansetron 4 MG Oral Tablet", ("ondansetron", "26225"), unsure=True),
    "oxaliplatin": _d(
        "1736776", "oxaliplatin 5 MG/ML Injectable Solution", ("oxaliplatin", "32592"), unsure=True
    ),
    "oxycodone": _d("1049621", "Oxycodone Hydrochloride 5 MG Oral Tablet", ("oxycodone", "7804")),
    "oxycodone-apap": _d(
        "1049221",
        "Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG Oral Tablet",
        ("acetaminophen", "161"),
        ("oxycodone", "7804"),
    ),
    "phenelzine": _d("313523", "Phenelzine 15 MG Oral Tablet", ("phenelzine", "8123"), unsure=True),
    "potassium-chloride": _d(
        "628958", "Potassium Chloride 20 MEQ Extended Release Oral Tablet", ("potassium chloride", "8591")
    ),
    "pravastatin": _d(
        "904475", "Pravastatin Sodium 40 MG Oral Tablet", ("pravastatin", "42463"), unsure=True
    ),
    "pregabalin": _d("483440", "pregabalin 150 MG Oral Capsule", ("pregabalin", "187832"), unsure=True),
    "prednisone": _d("312617", "predniSONE 5 MG Oral Tablet", ("prednisone", "8640")),
    "propranolol": _d(
        "856448", "Propranolol Hydrochloride 40 MG Oral Tablet", ("propranolol", "8787"), unsure=True
    ),
    "ritonavir": _d("1535462", "ritonavir 100 MG Oral Tablet", ("ritonavir", "85762"), unsure=True),
    "rivaroxaban": _d("1232086", "rivaroxaban 20 MG Oral Tablet", ("rivaroxaban", "1114195"), unsure=True),
    "sacubitril-valsartan": _d(
        "1656349",
        "sacubitril 49 MG / valsartan 51 MG Oral Tablet",
        ("sacubitril", "1656328"),
        ("valsartan", "69749"),
        unsure=True,
    ),
    "salmeterol": _d(
        "1546445",
        "60 ACTUAT salmeterol 0.05 MG/ACTUAT Dry Powder Inhaler",
        ("salmeterol", "36117"),
        unsure=True,
    ),
    "sertraline": _d("312940", "sertraline 50 MG Oral Tablet", ("sertraline", "36437")),
    "sildenafil": _d("312950", "sildenafil 100 MG Oral Tablet", ("sildenafil", "136411"), unsure=True),
    "simvastatin-20": _d("312961", "Simvastatin 20 MG Oral Tablet", ("simvastatin", "36567")),
    "simvastatin-40": _d("198211", "Simvastatin 40 MG Oral Tablet", ("simvastatin", "36567")),
    "simvastatin-80": _d("200345", "Simvastatin 80 MG Oral Tablet", ("simvastatin", "36567"), unsure=True),
    "spironolactone": _d("313096", "spironolactone 25 MG Oral Tablet", ("spironolactone", "9997")),
    "tadalafil": _d("358263", "tadalafil 20 MG Oral Tablet", ("tadalafil", "358258"), unsure=True),
    "tizanidine": _d("313403", "tiZANidine 4 MG Oral Tablet", ("tizanidine", "57258"), unsure=True),
    "tramadol": _d("835603", "tramadol hydrochloride 50 MG Oral Tablet", ("tramadol", "10689")),
    "trazodone": _d("856377", "trazodone hydrochloride 50 MG Oral Tablet", ("trazodone", "10737")),
    "warfarin": _d("855332", "Warfarin Sodium 5 MG Oral Tablet", ("warfarin", "11289")),
}

# LOINC (code, display, UCUM unit, category).
LABS: dict[str, tuple[str, str, str, str]] = {
    "creatinine": ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", "laboratory"),
    "egfr": (
        "98979-8",
        "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or Blood by "
        "Creatinine-based formula (CKD-EPI 2021)",
        "mL/min/{1.73_m2}",
        "laboratory",
    ),
    "potassium": ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", "laboratory"),
    "magnesium": ("19123-9", "Magnesium [Mass/volume] in Serum or Plasma", "mg/dL", "laboratory"),
    "glucose": ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", "laboratory"),
    "hba1c": ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", "laboratory"),
    "hemoglobin": ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", "laboratory"),
    "platelets": ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", "laboratory"),
    "wbc": ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", "laboratory"),
    "alt": (
        "1742-6",
        "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
        "laboratory",
    ),
    "digoxin": ("10535-3", "Digoxin [Mass/volume] in Serum or Plasma", "ng/mL", "laboratory"),
    "inr": ("6301-6", "INR in Platelet poor plasma by Coagulation assay", "{INR}", "laboratory"),
    "weight": ("29463-7", "Body Weight", "kg", "vital-signs"),
    "height": ("8302-2", "Body Height", "cm", "vital-signs"),
}
LAB_NAMES = {
    "creatinine": "creatinine",
    "egfr": "egfr",
    "potassium": "potassium",
    "magnesium": "magnesium",
    "glucose": "glucose",
    "hba1c": "hba1c",
    "hemoglobin": "hemoglobin",
    "platelets": "platelets",
    "wbc": "leukocytes",
    "alt": "alt",
    "digoxin": "digoxin level",
    "inr": "inr",
    "weight": "weight",
    "height": "height",
    "bp": "blood pressure",
}

# SNOMED CT problems (code, display); `unsure` ones are listed in code_review.
PROBLEMS: dict[str, tuple[str, str]] = {
    "af": ("49436004", "Atrial fibrillation (disorder)"),
    "hypertension": ("38341003", "Hypertensive disorder, systemic arterial (disorder)"),
    "heart-failure": ("88805009", "Chronic congestive heart failure (disorder)"),
    "asthma": ("195967001", "Asthma (disorder)"),
    "copd": ("13645005", "Chronic obstructive lung disease (disorder)"),
    "diabetes": ("44054006", "Diabetes mellitus type 2 (disorder)"),
    "ra": ("69896004", "Rheumatoid arthritis (disorder)"),
    "depression": ("370143000", "Major depressive disorder (disorder)"),
    "anxiety": ("197480006", "Anxiety disorder (disorder)"),
    "chronic-pain": ("82423001", "Chronic pain (finding)"),
    "back-pain": ("278860009", "Chronic low back pain (finding)"),
    "oa-knee": ("239873007", "Osteoarthritis of knee (disorder)"),
    "hyperlipidaemia": ("55822004", "Hyperlipidemia (disorder)"),
    "epilepsy": ("84757009", "Epilepsy (disorder)"),
    "gout": ("90560007", "Gout (disorder)"),
    "crohn": ("34000006", "Crohn's disease (disorder)"),
    "all": ("91857003", "Acute lymphoid leukemia (disorder)"),
    "erectile-dysfunction": ("397803000", "Impotence (disorder)"),
    "angina": ("194828000", "Angina (disorder)"),
    "cad": ("53741008", "Coronary arteriosclerosis (disorder)"),
    "migraine": ("37796009", "Migraine (disorder)"),
    "ms": ("24700007", "Multiple sclerosis (disorder)"),
    "uti": ("68566005", "Urinary tract infectious disease (disorder)"),
    "pneumonia": ("233604007", "Pneumonia (disorder)"),
    "dvt": ("128053003", "Deep venous thrombosis (disorder)"),
    "colon-cancer": ("363406005", "Malignant neoplasm of colon (disorder)"),
    "adhd": ("406506008", "Attention deficit hyperactivity disorder (disorder)"),
    "ckd-3": ("433144002", "Chronic kidney disease stage 3 (disorder)"),
    "ckd-4": ("431857002", "Chronic kidney disease stage 4 (disorder)"),
    "drug-overdose": ("55680006", "Drug overdose (disorder)"),
    "opioid-overdose": ("1149222004", "Overdose of opioid (disorder)"),
    "diabetic-neuropathy": ("368581000119106", "Neuropathy due to type 2 diabetes mellitus (disorder)"),
    "otitis-media": ("65363002", "Otitis media (disorder)"),
    "pregnancy": ("72892002", "Normal pregnancy (finding)"),
    "insomnia": ("193462001", "Insomnia (disorder)"),
    "postherpetic-neuralgia": ("2177002", "Postherpetic neuralgia (disorder)"),
    "rosacea": ("398909004", "Rosacea (disorder)"),
    "bv": ("419760006", "Bacterial vaginosis (disorder)"),
    "hypothyroidism": ("40930008", "Hypothyroidism (disorder)"),
    "allergic-rhinitis": ("61582004", "Allergic rhinitis (disorder)"),
    "gastroenteritis": ("25374005", "Gastroenteritis (disorder)"),
    "sinusitis": ("36971009", "Sinusitis (disorder)"),
}
UNSURE_PROBLEMS = {"erectile-dysfunction", "opioid-overdose", "rosacea", "bv"}

SOURCES = {
    "qt": "CredibleMeds QTdrugs list (Known Risk of TdP category); Drew BJ et al., AHA/ACCF Scientific "
    "Statement on Prevention of Torsade de Pointes in Hospital Settings, Circulation 2010 (electrolyte "
    "correction: K >= 4.0 mmol/L, Mg >= 2.0 mg/dL)",
    "opioid-benzo": "FDA Drug Safety Communication, 31 Aug 2016 (boxed warning: opioids with "
    "benzodiazepines); CDC Clinical Practice Guideline for Prescribing Opioids for Pain, 2022, "
    "Recommendation 11",
    "naloxone": "CDC Clinical Practice Guideline for Prescribing Opioids for Pain, 2022, Recommendation 8 "
    "(offer naloxone at >= 50 MME/day, history of overdose, concurrent benzodiazepine); CDC 2022 Table "
    "(MME conversion factors: oxycodone 1.5, hydrocodone 1, tramadol 0.2)",
    "opioid-dup": "CDC Clinical Practice Guideline for Prescribing Opioids for Pain, 2022, Recommendations "
    "4 and 5 (one immediate-release opioid at the lowest effective dose; total MME)",
    "gabapentinoid": "FDA Drug Safety Communication, 19 Dec 2019 (serious breathing difficulties with "
    "gabapentin or pregabalin and CNS depressants such as opioids); AGS Beers Criteria 2023, Table 5",
    "serotonin": "FDA Drug Safety Communication, 22 Mar 2016 (opioids and serotonin syndrome); tramadol "
    "FDA prescribing information, Warnings and Precautions (Serotonin Syndrome Risk)",
    "amio-warfarin": "Amiodarone FDA prescribing information (Pacerone/Cordarone), Drug Interactions: "
    "warfarin - reduce warfarin dose by one-third to one-half and monitor prothrombin time closely",
    "amio-digoxin": "Amiodarone FDA prescribing information, Drug Interactions: digoxin - reduce digoxin "
    "dose by about half and monitor serum digoxin; Lanoxin FDA prescribing information, section 7",
    "simva-cap": "Simvastatin (Zocor) FDA prescribing information, sections 2 and 7 (do not exceed 20 mg "
    "daily with amiodarone or amlodipine); FDA Drug Safety Communication, 8 Jun 2011 (simvastatin 80 mg)",
    "statin-3a4": "Simvastatin (Zocor) and lovastatin FDA prescribing information, Contraindications "
    "(strong CYP3A4 inhibitors: itraconazole, ketoconazole, clarithromycin, HIV protease inhibitors); "
    "atorvastatin (Lipitor) FDA prescribing information, section 7 (clarithromycin: caution above 20 mg)",
    "warfarin-smx": "Coumadin (warfarin) FDA prescribing information, section 7; Holbrook AM et al., "
    "Systematic overview of warfarin and its drug and food interactions, Arch Intern Med 2005",
    "warfarin-metro": "Coumadin (warfarin) FDA prescribing information, section 7 (metronidazole "
    "potentiates warfarin); Flagyl FDA prescribing information, Drug Interactions",
    "apixaban": "Eliquis (apixaban) FDA prescribing information, section 2.2 (AF: 2.5 mg twice daily with "
    "any two of age >= 80 years, weight <= 60 kg, serum creatinine >= 1.5 mg/dL)",
    "rivaroxaban": "Xarelto (rivaroxaban) FDA prescribing information, section 2.3 (AF: 15 mg daily when "
    "CrCl <= 50 mL/min by Cockcroft-Gault)",
    "dabigatran": "Pradaxa (dabigatran) FDA prescribing information, section 2.3 (AF: 75 mg twice daily "
    "for CrCl 15-30 mL/min)",
    "enoxaparin": "Lovenox (enoxaparin) FDA prescribing information, section 2.3 (CrCl < 30 mL/min: "
    "1 mg/kg once daily for treatment)",
    "gabapentin": "Neurontin (gabapentin) FDA prescribing information, section 2.4, Table (CrCl 15-29: "
    "200-700 mg/day; 30-59: 400-1400 mg/day)",
    "pregabalin": "Lyrica (pregabalin) FDA prescribing information, section 2.5, Table (CrCl 30-60: "
    "75-300 mg/day)",
    "nitrofurantoin": "AGS Beers Criteria 2023, Table 6 (nitrofurantoin: avoid when CrCl < 30 mL/min)",
    "smx-renal": "Bactrim (sulfamethoxazole/trimethoprim) FDA prescribing information, Dosage (CrCl "
    "15-30 mL/min: half the usual regimen)",
    "levofloxacin": "Levaquin (levofloxacin) FDA prescribing information, section 2.3 (CrCl 20-49: 750 mg "
    "every 48 hours)",
    "oxaliplatin": "Eloxatin (oxaliplatin) FDA prescribing information, section 2.2 (CrCl < 30 mL/min: "
    "reduce to 65 mg/m2)",
    "metformin-renal": "FDA Drug Safety Communication, 8 Apr 2016 (metformin by eGFR: contraindicated "
    "< 30, not to be started 30-45); KDIGO 2022 Clinical Practice Guideline for Diabetes Management in "
    "CKD, chapter 4; Inker LA et al., N Engl J Med 2021 (CKD-EPI 2021 creatinine equation)",
    "aki": "KDIGO Clinical Practice Guideline for Acute Kidney Injury 2012, section 2.1 (AKI: creatinine "
    "rise >= 0.3 mg/dL within 48 h or >= 1.5 x baseline within 7 days) and section 3 (stop nephrotoxins)",
    "k-mra": "Aldactone (spironolactone) FDA prescribing information 2018, section 2 (not recommended "
    "when serum potassium > 5.0 mEq/L at initiation); 2022 AHA/ACC/HFSA Heart Failure Guideline, section "
    "7.3.3 (MRA only with potassium < 5.0 mEq/L)",
    "k-supplement": "Potassium chloride extended-release FDA prescribing information, Contraindications "
    "(hyperkalaemia)",
    "k-amiloride": "Amiloride (Midamor) FDA prescribing information, boxed warning (hyperkalaemia; not "
    "to be used when serum potassium > 5.5 mEq/L)",
    "mtx-weekly": "ISMP Targeted Medication Safety Best Practices for Hospitals, Best Practice 2 (weekly "
    "oral methotrexate); methotrexate FDA prescribing information, boxed warning (fatal daily dosing "
    "errors)",
    "mtx-monitoring": "Singh JA et al., 2012 Update of the 2008 ACR Recommendations for the Use of DMARDs "
    "in RA, Arthritis Care Res 2012 (CBC, creatinine and ALT every 8-12 weeks after 6 months)",
    "mtx-folate": "Visser K et al., Multinational evidence-based recommendations for the use of "
    "methotrexate in rheumatic disorders (3E Initiative), Ann Rheum Dis 2009, recommendation 5 "
    "(at least 5 mg folic acid per week)",
    "hypo": "ADA Standards of Care in Diabetes-2024, section 6 (level 1 hypoglycaemia < 70 mg/dL) and "
    "section 13 (older adults: deintensify insulin or sulfonylurea when A1C is below an individualised "
    "goal)",
    "epinephrine": "EpiPen / EpiPen Jr FDA prescribing information, section 2 (0.15 mg for 15-30 kg, "
    "0.3 mg for >= 30 kg); Sicherer SH, Simons FER, AAP Clinical Report: Epinephrine for First-aid "
    "Management of Anaphylaxis, Pediatrics 2017",
    "amoxicillin-paed": "AAP Clinical Practice Guideline: The Diagnosis and Management of Acute Otitis "
    "Media, Pediatrics 2013 (amoxicillin 80-90 mg/kg/day in 2 divided doses); amoxicillin FDA "
    "prescribing information, section 2",
    "phansalkar": "Phansalkar S et al., High-priority drug-drug interactions for use in electronic health "
    "records, J Am Med Inform Assoc 2012",
    "digoxin-monitoring": "Lanoxin (digoxin) FDA prescribing information, sections 2.4 and 5 (monitor "
    "serum digoxin, potassium and renal function); 2022 AHA/ACC/HFSA Heart Failure Guideline, section "
    "7.3.6",
    "asthma-bb": "GINA Global Strategy for Asthma Management and Prevention 2024 (beta-blockers: "
    "non-selective agents avoided); propranolol FDA prescribing information, Contraindications "
    "(bronchial asthma)",
    "laba": "Salmeterol (Serevent) FDA prescribing information, Contraindications (asthma without a "
    "long-term asthma-control medication); FDA Drug Safety Communication, 20 Dec 2017; GINA 2024",
    "nsaid-pregnancy": "FDA Drug Safety Communication, 15 Oct 2020 (avoid NSAIDs at 20 weeks of pregnancy "
    "or later: fetal renal dysfunction and oligohydramnios; low-dose aspirin exempt)",
    "beers-cns": "AGS Beers Criteria 2023, Table 5 (any combination of >= 3 CNS-active drugs: "
    "antiepileptics, antidepressants, antipsychotics, benzodiazepines, Z-drugs, opioids, skeletal muscle "
    "relaxants)",
    "bp": "NCQA HEDIS Controlling High Blood Pressure (CBP) measure (< 140/90 mm Hg); 2017 ACC/AHA "
    "Guideline for High Blood Pressure in Adults, section 8.1.5",
    "aspirin-ibuprofen": "FDA Information for Healthcare Professionals: Concomitant Use of Ibuprofen and "
    "Aspirin, Sep 2006 (ibuprofen can block low-dose aspirin's antiplatelet effect)",
    "unresolved": "The Joint Commission National Patient Safety Goal NPSG.03.06.01 (maintain and "
    "communicate accurate patient medication information)",
    "allergy": "Khan DA et al., Drug allergy: A 2022 practice parameter update, J Allergy Clin Immunol "
    "2022 (penicillin, sulfonamide antibiotic and aspirin/NSAID hypersensitivity)",
    "sulfa-nonantibiotic": "Strom BL et al., Absence of cross-reactivity between sulfonamide antibiotics "
    "and sulfonamide nonantibiotics, N Engl J Med 2003",
    "venom": "Golden DBK et al., Stinging insect hypersensitivity: a practice parameter update 2016, Ann "
    "Allergy Asthma Immunol 2017 (prescribe epinephrine auto-injectors after systemic sting reactions)",
    "stale-egfr": "Metformin FDA prescribing information, section 5.1 (assess eGFR at least annually); "
    "ADA Standards of Care in Diabetes-2024, section 11",
    "flu": "CDC/ACIP, Prevention and Control of Seasonal Influenza with Vaccines, MMWR Recomm Rep 2024 "
    "(routine annual vaccination of everyone >= 6 months)",
}


def _instant(day: date, hour: int = 9) -> str:
    return datetime.combine(day, time(hour, 0)).isoformat() + "Z"


@dataclass
class Case:
    """One chart under construction: resources, drafts and expected findings."""

    id: str
    hook: str
    note: str
    age: int
    sex: str
    as_of: date = SUMMER
    resources: list[JsonDict] = field(default_factory=list)
    drafts: list[JsonDict] = field(default_factory=list)
    findings: list[JsonDict] = field(default_factory=list)
    negative_for: list[str] = field(default_factory=list)
    _counter: int = 0

    def __post_init__(self) -> None:
        # A birthday a month before as_of, so the age is exact and unambiguous on the day.
        birth = date(self.as_of.year - self.age, self.as_of.month, self.as_of.day) - timedelta(days=30)
        self.resources.append(
            {"resourceType": "Patient", "id": self.id, "gender": self.sex, "birthDate": birth.isoformat()}
        )

    def _id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}-{self._counter}"

    def day(self, days_ago: int) -> date:
        return self.as_of - timedelta(days=days_ago)

    def _subject(self) -> JsonDict:
        return {"reference": f"Patient/{self.id}"}

    def _med(
        self,
        resource_type: str,
        key: str,
        status: str,
        dose: float | None,
        unit: str,
        per: int | None,
        period: float,
        period_unit: str,
        prn: bool,
        days_ago: int,
        coding: JsonDict | None = None,
    ) -> JsonDict:
        if coding is None:
            drug = DRUGS[key]
            concept: JsonDict = {
                "coding": [{"system": RXNORM, "code": drug.code, "display": drug.display}],
                "text": drug.display,
            }
        else:
            concept = coding
        resource: JsonDict = {
            "resourceType": resource_type,
            "id": self._id("draft" if status == "draft" else resource_type.lower()),
            "status": status,
            "subject": self._subject(),
            "medicationCodeableConcept": concept,
        }
        instruction: JsonDict = {}
        if per is not None:
            instruction["timing"] = {
                "repeat": {"frequency": per, "period": period, "periodUnit": period_unit}
            }
        if dose is not None:
            instruction["doseAndRate"] = [{"doseQuantity": {"value": dose, "unit": unit}}]
        if prn:
            instruction["asNeededBoolean"] = True
        if resource_type == "MedicationRequest":
            resource["intent"] = "order"
            resource["authoredOn"] = (self.as_of if status == "draft" else self.day(days_ago)).isoformat()
            if instruction:
                resource["dosageInstruction"] = [instruction]
        else:
            resource["effectiveDateTime"] = self.day(days_ago).isoformat()
            resource["dateAsserted"] = self.day(days_ago).isoformat()
            if instruction:
                resource["dosage"] = [instruction]
        return resource

    def rx(
        self,
        key: str,
        dose: float | None = 1,
        unit: str = "tablet",
        per: int | None = 1,
        period: float = 1,
        period_unit: str = "d",
        prn: bool = False,
        days_ago: int = 120,
    ) -> None:
        self.resources.append(
            self._med("MedicationRequest", key, "active", dose, unit, per, period, period_unit, prn, days_ago)
        )

    def stopped_rx(self, key: str, days_ago: int = 60) -> None:
        """A prescription stopped since: the chart fetch (status=active) never returns it."""
        self.resources.append(
            self._med("MedicationRequest", key, "stopped", 1, "tablet", 4, 1, "d", False, days_ago)
        )

    def statement(self, key: str, dose: float | None = 1, per: int | None = 1, prn: bool = False) -> None:
        self.resources.append(
            self._med("MedicationStatement", key, "active", dose, "tablet", per, 1, "d", prn, 200)
        )

    def draft(
        self,
        key: str,
        dose: float | None = 1,
        unit: str = "tablet",
        per: int | None = 1,
        period: float = 1,
        period_unit: str = "d",
        prn: bool = False,
    ) -> None:
        self.drafts.append(
            self._med("MedicationRequest", key, "draft", dose, unit, per, period, period_unit, prn, 0)
        )

    def local_med(self, code: str, display: str) -> None:
        concept = {"coding": [{"system": LOCAL_FORMULARY, "code": code, "display": display}], "text": display}
        self.resources.append(
            self._med("MedicationRequest", "", "active", 1, "tablet", 1, 1, "d", False, 60, concept)
        )

    def text_med(self, text: str) -> None:
        self.resources.append(
            self._med("MedicationRequest", "", "active", 1, "tablet", 1, 1, "d", False, 60, {"text": text})
        )

    def lab(self, kind: str, value: float, days_ago: int = 3, hour: int = 9) -> JsonDict:
        loinc, display, unit, category = LABS[kind]
        when = self.day(days_ago)
        self.resources.append(
            {
                "resourceType": "Observation",
                "id": self._id(kind),
                "status": "final",
                "category": [{"coding": [{"system": OBS_CATEGORY, "code": category}]}],
                "code": {"coding": [{"system": LOINC, "code": loinc, "display": display}], "text": display},
                "subject": self._subject(),
                "effectiveDateTime": _instant(when, hour),
                "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
            }
        )
        return {
            "name": LAB_NAMES[kind],
            "loinc": loinc,
            "value": value,
            "unit": unit,
            "date": when.isoformat(),
        }

    def bp(self, systolic: float, diastolic: float, days_ago: int = 0) -> list[JsonDict]:
        when = self.day(days_ago)

        def component(code: str, display: str, value: float) -> JsonDict:
            return {
                "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
                "valueQuantity": {"value": value, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"},
            }

        self.resources.append(
            {
                "resourceType": "Observation",
                "id": self._id("bp"),
                "status": "final",
                "category": [{"coding": [{"system": OBS_CATEGORY, "code": "vital-signs"}]}],
                "code": {
                    "coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}],
                    "text": "Blood pressure",
                },
                "subject": self._subject(),
                "effectiveDateTime": _instant(when, 10),
                "component": [
                    component("8480-6", "Systolic blood pressure", systolic),
                    component("8462-4", "Diastolic blood pressure", diastolic),
                ],
            }
        )
        return [
            {
                "name": "systolic bp",
                "loinc": "8480-6",
                "value": systolic,
                "unit": "mm[Hg]",
                "date": str(when),
            },
            {
                "name": "diastolic bp",
                "loinc": "8462-4",
                "value": diastolic,
                "unit": "mm[Hg]",
                "date": str(when),
            },
        ]

    def weight(self, kg: float, days_ago: int = 1) -> JsonDict:
        return self.lab("weight", kg, days_ago)

    def cond(self, kind: str, onset_days_ago: int = 700) -> None:
        code, display = PROBLEMS[kind]
        self.resources.append(
            {
                "resourceType": "Condition",
                "id": self._id("condition"),
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                            "code": "active",
                        }
                    ]
                },
                "verificationStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                            "code": "confirmed",
                        }
                    ]
                },
                "code": {"coding": [{"system": SNOMED, "code": code, "display": display}], "text": display},
                "subject": self._subject(),
                "onsetDateTime": self.day(onset_days_ago).isoformat(),
            }
        )

    def pregnant(self, weeks: int) -> None:
        """Pregnancy dated, as obstetric charts are, from the last menstrual period: onset = LMP."""
        self.cond("pregnancy", onset_days_ago=weeks * 7)

    def allergy(
        self,
        text: str | None = None,
        coding: tuple[str, str, str] | None = None,
        category: str = "medication",
        reaction: str | None = None,
        criticality: str = "high",
    ) -> None:
        concept: JsonDict = {}
        if coding is not None:
            concept["coding"] = [{"system": coding[0], "code": coding[1], "display": coding[2]}]
        if text is not None:
            concept["text"] = text
        resource: JsonDict = {
            "resourceType": "AllergyIntolerance",
            "id": self._id("allergy"),
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                        "code": "active",
                    }
                ]
            },
            "verificationStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                        "code": "confirmed",
                    }
                ]
            },
            "type": "allergy",
            "category": [category],
            "criticality": criticality,
            "code": concept,
            "patient": self._subject(),
            "recordedDate": self.day(900).isoformat(),
        }
        if reaction is not None:
            resource["reaction"] = [{"manifestation": [{"text": reaction}]}]
        self.resources.append(resource)

    def vaccine(self, cvx: str, display: str, on: date) -> None:
        self.resources.append(
            {
                "resourceType": "Immunization",
                "id": self._id("immunization"),
                "status": "completed",
                "vaccineCode": {
                    "coding": [{"system": CVX, "code": cvx, "display": display}],
                    "text": display,
                },
                "patient": self._subject(),
                "occurrenceDateTime": _instant(on, 10),
                "primarySource": True,
            }
        )

    def find(
        self,
        check: str,
        family: str,
        severity: str,
        summary: str,
        rationale: str,
        source: str,
        drugs: tuple[str, ...] = (),
        labs: tuple[JsonDict, ...] = (),
        conditions: tuple[str, ...] = (),
        ingredients: tuple[JsonDict, ...] = (),
        suffix: str = "",
    ) -> None:
        basis_ingredients: list[JsonDict] = list(ingredients)
        for entry in drugs:
            key, _, only = entry.partition(":")  # "hydrocodone-apap:hydrocodone" keeps one ingredient
            drug = DRUGS[key]
            for name, rxcui in drug.ingredients:
                if not only or name == only:
                    basis_ingredients.append({"name": name, "rxnorm": rxcui, "product_rxnorm": drug.code})
        self.findings.append(
            {
                "id": f"{self.id}-{check}{suffix}",
                "check": check,
                "family": family,
                "severity": severity,
                "summary": summary,
                "basis": {
                    "ingredients": basis_ingredients,
                    "labs": list(labs),
                    "conditions": [{"snomed": PROBLEMS[c][0], "display": PROBLEMS[c][1]} for c in conditions],
                },
                "rationale": rationale,
                "source": SOURCES.get(source, source),
            }
        )

    def done(self) -> JsonDict:
        return {
            "id": self.id,
            "hook": self.hook,
            "as_of": self.as_of.isoformat(),
            "note": self.note,
            "negative_for": self.negative_for,
            "resources": self.resources,
            "draft_orders": self.drafts,
            "findings": self.findings,
        }


CASES: list[Case] = []


def case(
    case_id: str,
    hook: str,
    note: str,
    age: int,
    sex: str,
    as_of: date = SUMMER,
    negative_for: tuple[str, ...] = (),
) -> Case:
    built = Case(case_id, hook, note, age, sex, as_of, negative_for=list(negative_for))
    CASES.append(built)
    return built


PV, OS = "patient-view", "order-select"


# --- QT prolongation --------------------------------------------------------------------------------------
QT_RATIONALE = (
    "Both drugs are on the CredibleMeds known-risk list; together their QT effects add and the risk of "
    "torsade de pointes rises. Check a baseline ECG and keep potassium and magnesium replete."
)
c = case("qt-01", PV, "Citalopram with scheduled ondansetron, electrolytes normal", 58, "female")
c.cond("depression")
c.cond("gastroenteritis", 5)
c.rx("citalopram")
c.rx("ondansetron", per=3, days_ago=4)
k, mg = c.lab("potassium", 4.2), c.lab("magnesium", 2.0)
c.find(
    "qt-combination",
    "interaction",
    "warning",
    "Citalopram with ondansetron: additive QT prolongation",
    QT_RATIONALE,
    "qt",
    drugs=("citalopram", "ondansetron"),
)
for case_id, potassium, severity, note in (
    ("qt-02", 3.4, "critical", "Azithromycin ordered on citalopram with potassium 3.4 (just below 3.5)"),
    ("qt-03", 3.5, "warning", "Azithromycin ordered on citalopram with potassium exactly 3.5 (not low)"),
    ("qt-04", 3.6, "warning", "Azithromycin ordered on citalopram with potassium 3.6"),
):
    c = case(case_id, OS, note, 63, "female")
    c.cond("depression")
    c.cond("pneumonia", 2)
    c.rx("citalopram")
    k = c.lab("potassium", potassium, days_ago=1)
    c.lab("magnesium", 2.1, days_ago=1)
    c.draft("azithromycin", dose=2, per=1)
    low = potassium < 3.5
    c.find(
        "qt-combination",
        "interaction",
        severity,
        "Azithromycin with citalopram: additive QT prolongation" + (", potassium low" if low else ""),
        QT_RATIONALE
        + (
            " Potassium below 3.5 mmol/L makes torsade more likely: correct it first "
            "or choose a non-QT antibiotic (e.g. doxycycline)."
            if low
            else ""
        ),
        "qt",
        drugs=("azithromycin", "citalopram"),
        labs=(k,) if low else (),
    )
for case_id, magnesium, severity, note in (
    ("qt-05", 1.7, "critical", "Levofloxacin ordered on amiodarone with magnesium 1.7 (just below 1.8)"),
    ("qt-06", 1.8, "warning", "Levofloxacin ordered on amiodarone with magnesium exactly 1.8"),
):
    c = case(case_id, OS, note, 71, "male")
    c.cond("af")
    c.cond("pneumonia", 1)
    c.rx("amiodarone")
    c.lab("potassium", 4.1, days_ago=1)
    m = c.lab("magnesium", magnesium, days_ago=1)
    c.lab("creatinine", 0.9, days_ago=1)
    c.weight(80)
    c.draft("levofloxacin", per=1)
    low = magnesium < 1.8
    c.find(
        "qt-combination",
        "interaction",
        severity,
        "Levofloxacin with amiodarone: additive QT prolongation" + (", magnesium low" if low else ""),
        QT_RATIONALE + (" Magnesium below 1.8 mg/dL: replace it before the first dose." if low else ""),
        "qt",
        drugs=("levofloxacin", "amiodarone"),
        labs=(m,) if low else (),
    )
c = case(
    "qt-07",
    OS,
    "Azithromycin alone (no other QT drug), electrolytes normal",
    45,
    "male",
    negative_for=("qt-combination",),
)
c.cond("pneumonia", 1)
c.lab("potassium", 4.0, 1)
c.draft("azithromycin", dose=2, per=1)
c = case(
    "qt-08", OS, "Amoxicillin on citalopram: only one QT drug", 50, "female", negative_for=("qt-combination",)
)
c.cond("depression")
c.cond("sinusitis", 2)
c.rx("citalopram")
c.draft("amoxicillin", per=3)

# --- opioids -------------------------------------------------------------------------------------------------
c = case("opioid-01", PV, "Oxycodone with alprazolam (naloxone on hand)", 54, "male")
c.cond("back-pain")
c.cond("anxiety")
c.rx("oxycodone", per=4)
c.rx("alprazolam", per=3)
c.rx("naloxone", per=None, prn=True)
c.find(
    "opioid-benzodiazepine",
    "interaction",
    "critical",
    "Oxycodone with alprazolam: respiratory depression",
    "Concurrent opioid and benzodiazepine use carries a boxed warning for profound sedation, respiratory "
    "depression, coma and death; taper one where possible.",
    "opioid-benzo",
    drugs=("oxycodone", "alprazolam"),
)
c = case(
    "opioid-02", OS, "Lorazepam ordered for a patient on hydrocodone/acetaminophen, no naloxone", 47, "female"
)
c.cond("chronic-pain")
c.cond("anxiety")
c.rx("hydrocodone-apap-7.5", per=4)
c.draft("lorazepam", per=2)
c.find(
    "opioid-benzodiazepine",
    "interaction",
    "critical",
    "Lorazepam ordered with hydrocodone: respiratory depression",
    "Starting a benzodiazepine on top of an opioid carries the boxed-warning risk of fatal respiratory "
    "depression; prefer a non-sedating anxiety treatment (e.g. an SSRI).",
    "opioid-benzo",
    drugs=("lorazepam", "hydrocodone-apap-7.5:hydrocodone"),
)
c.find(
    "opioid-naloxone",
    "care-gap",
    "warning",
    "Opioid plus benzodiazepine without naloxone",
    "CDC 2022 recommends offering naloxone when an opioid is combined with a benzodiazepine, whatever "
    "the MME.",
    "naloxone",
    drugs=("hydrocodone-apap-7.5:hydrocodone", "lorazepam"),
)
c = case(
    "opioid-03",
    PV,
    "Lorazepam alone (opioid stopped last month: status stopped, not fetched)",
    40,
    "female",
    negative_for=("opioid-benzodiazepine",),
)
c.cond("anxiety")
c.rx("lorazepam", prn=True)
c.stopped_rx("oxycodone", days_ago=60)

NALOXONE_RATIONALE = (
    "CDC 2022 recommends offering naloxone to patients at increased risk of overdose: at 50 MME/day or "
    "more, after an overdose, or with a benzodiazepine."
)
c = case(
    "naloxone-01", PV, "Hydrocodone 10 mg five times daily = 50 MME/day exactly, no naloxone", 59, "male"
)
c.cond("chronic-pain")
c.rx("hydrocodone-apap", per=5)
c.find(
    "opioid-naloxone",
    "care-gap",
    "warning",
    "50 MME/day without naloxone",
    NALOXONE_RATIONALE,
    "naloxone",
    drugs=("hydrocodone-apap:hydrocodone",),
)
c = case(
    "naloxone-02",
    PV,
    "Oxycodone 5 mg six times daily = 45 MME/day (just below 50), no naloxone",
    59,
    "female",
    negative_for=("opioid-naloxone",),
)
c.cond("chronic-pain")
c.rx("oxycodone", per=6)
c = case("naloxone-03", PV, "Oxycodone 10 mg four times daily = 60 MME/day, no naloxone", 62, "male")
c.cond("back-pain")
c.rx("oxycodone", dose=2, per=4)
c.find(
    "opioid-naloxone",
    "care-gap",
    "warning",
    "60 MME/day without naloxone",
    NALOXONE_RATIONALE,
    "naloxone",
    drugs=("oxycodone",),
)
c = case("naloxone-04", PV, "Tramadol 40 MME/day after a drug overdose, no naloxone", 38, "female")
c.cond("chronic-pain")
c.cond("drug-overdose", 300)
c.rx("tramadol", per=4)
c.find(
    "opioid-naloxone",
    "care-gap",
    "warning",
    "Opioid after an overdose without naloxone",
    NALOXONE_RATIONALE,
    "naloxone",
    drugs=("tramadol",),
    conditions=("drug-overdose",),
)
c = case(
    "naloxone-05",
    PV,
    "Opioid overdose history on low-dose oxycodone, naloxone prescribed",
    44,
    "male",
    negative_for=("opioid-naloxone",),
)
c.cond("chronic-pain")
c.cond("opioid-overdose", 400)
c.rx("oxycodone", per=3)
c.rx("naloxone", per=None, prn=True)
c = case(
    "naloxone-06", PV, "60 MME/day with naloxone prescribed", 66, "female", negative_for=("opioid-naloxone",)
)
c.cond("oa-knee")
c.rx("oxycodone", dose=2, per=4)
c.rx("naloxone", per=None, prn=True)

DUP_RATIONALE = (
    "Two opioids taken together add respiratory depression and make the total dose hard to track; one "
    "immediate-release opioid should be used."
)
c = case("opioid-dup-01", PV, "Oxycodone IR with hydrocodone/acetaminophen (naloxone on hand)", 57, "male")
c.cond("back-pain")
c.rx("oxycodone", per=4)
c.rx("hydrocodone-apap", per=4)
c.rx("naloxone", per=None, prn=True)
c.find(
    "opioid-duplicate",
    "duplicate",
    "warning",
    "Two opioids: oxycodone and hydrocodone",
    DUP_RATIONALE,
    "opioid-dup",
    drugs=("oxycodone", "hydrocodone-apap:hydrocodone"),
)
c = case("opioid-dup-02", PV, "Oxycodone/acetaminophen with tramadol (naloxone on hand)", 61, "female")
c.cond("oa-knee")
c.rx("oxycodone-apap", per=4)
c.rx("tramadol", per=4)
c.rx("naloxone", per=None, prn=True)
c.find(
    "opioid-duplicate",
    "duplicate",
    "warning",
    "Two opioids: oxycodone and tramadol",
    DUP_RATIONALE,
    "opioid-dup",
    drugs=("oxycodone-apap:oxycodone", "tramadol"),
)
c = case(
    "opioid-dup-03",
    OS,
    "Oxycodone ordered for a patient on hydrocodone/acetaminophen (naloxone on hand)",
    52,
    "male",
)
c.cond("chronic-pain")
c.rx("hydrocodone-apap-7.5", per=4)
c.rx("naloxone", per=None, prn=True)
c.draft("oxycodone", per=4)
c.find(
    "opioid-duplicate",
    "duplicate",
    "warning",
    "Oxycodone ordered on top of hydrocodone",
    DUP_RATIONALE,
    "opioid-dup",
    drugs=("oxycodone", "hydrocodone-apap-7.5:hydrocodone"),
)
c = case(
    "opioid-dup-04",
    PV,
    "One combination product (hydrocodone/acetaminophen) is one opioid, 30 MME",
    50,
    "female",
    negative_for=("opioid-duplicate", "opioid-naloxone"),
)
c.cond("chronic-pain")
c.rx("hydrocodone-apap-7.5", per=4)

GABA_RATIONALE = (
    "Gabapentinoids with opioids increase the risk of respiratory depression and opioid-related death; "
    "use the lowest doses and counsel on sedation."
)
c = case("gaba-01", PV, "Oxycodone with gabapentin", 60, "male")
c.cond("back-pain")
c.cond("diabetic-neuropathy")
c.rx("oxycodone", per=4)
c.rx("gabapentin", per=3)
c.rx("metformin", per=2)
c.rx("atorvastatin")
c.cond("diabetes")
c.lab("egfr", 85, 60)
c.lab("hba1c", 7.0, 60)
c.find(
    "opioid-gabapentinoid",
    "interaction",
    "warning",
    "Oxycodone with gabapentin: respiratory depression",
    GABA_RATIONALE,
    "gabapentinoid",
    drugs=("oxycodone", "gabapentin"),
)
c = case("gaba-02", OS, "Pregabalin ordered for a patient on tramadol", 55, "female")
c.cond("postherpetic-neuralgia", 60)
c.rx("tramadol", per=3)
c.lab("creatinine", 0.8, 30)
c.weight(68)
c.draft("pregabalin", per=2)
c.find(
    "opioid-gabapentinoid",
    "interaction",
    "warning",
    "Pregabalin ordered with tramadol",
    GABA_RATIONALE,
    "gabapentinoid",
    drugs=("pregabalin", "tramadol"),
)
c = case(
    "gaba-03", PV, "Gabapentin with acetaminophen only", 48, "female", negative_for=("opioid-gabapentinoid",)
)
c.cond("postherpetic-neuralgia", 200)
c.rx("gabapentin", per=3)
c.rx("acetaminophen", dose=2, per=3)
c.lab("egfr", 96, 90)

SERO_RATIONALE = (
    "Serotonergic opioids (tramadol, methadone, fentanyl, meperidine) with an SSRI or SNRI can cause "
    "serotonin syndrome; tramadol also lowers the seizure threshold."
)
c = case("sero-01", PV, "Tramadol with sertraline", 49, "female")
c.cond("depression")
c.cond("oa-knee")
c.rx("sertraline")
c.rx("tramadol", per=4)
c.find(
    "serotonergic-opioid-ssri",
    "interaction",
    "warning",
    "Tramadol with sertraline: serotonin syndrome",
    SERO_RATIONALE,
    "serotonin",
    drugs=("tramadol", "sertraline"),
)
c = case("sero-02", PV, "Methadone with escitalopram (naloxone on hand): serotonin and QT", 42, "male")
c.cond("depression")
c.cond("chronic-pain")
c.rx("methadone", per=2)
c.rx("escitalopram")
c.rx("naloxone", per=None, prn=True)
c.lab("potassium", 4.3, 30)
c.lab("magnesium", 2.0, 30)
c.find(
    "serotonergic-opioid-ssri",
    "interaction",
    "warning",
    "Methadone with escitalopram: serotonin syndrome",
    SERO_RATIONALE,
    "serotonin",
    drugs=("methadone", "escitalopram"),
)
c.find(
    "qt-combination",
    "interaction",
    "warning",
    "Methadone with escitalopram: additive QT prolongation",
    QT_RATIONALE,
    "qt",
    drugs=("methadone", "escitalopram"),
)
c = case("sero-03", PV, "Fentanyl patch with duloxetine (naloxone on hand)", 68, "female")
c.cond("chronic-pain")
c.cond("depression")
c.rx("fentanyl", per=1, period=3)
c.rx("duloxetine")
c.rx("naloxone", per=None, prn=True)
c.find(
    "serotonergic-opioid-ssri",
    "interaction",
    "warning",
    "Fentanyl with duloxetine: serotonin syndrome",
    SERO_RATIONALE,
    "serotonin",
    drugs=("fentanyl", "duloxetine"),
)
c = case("sero-04", OS, "Tramadol ordered for a patient on duloxetine", 56, "male")
c.cond("depression")
c.cond("back-pain", 10)
c.rx("duloxetine")
c.draft("tramadol", per=4, prn=True)
c.find(
    "serotonergic-opioid-ssri",
    "interaction",
    "warning",
    "Tramadol ordered with duloxetine",
    SERO_RATIONALE,
    "serotonin",
    drugs=("tramadol", "duloxetine"),
)
c = case(
    "sero-05",
    PV,
    "Oxycodone with sertraline: oxycodone is not a serotonergic opioid of concern",
    51,
    "female",
    negative_for=("serotonergic-opioid-ssri",),
)
c.cond("depression")
c.cond("back-pain")
c.rx("sertraline")
c.rx("oxycodone", per=3)
c = case(
    "sero-06",
    PV,
    "Tramadol prescribed; sertraline recorded only as a MedicationStatement (outside "
    "prescriber). CHART_PREFETCH asks for MedicationRequest only, so this tests what the chart fetch "
    "can see",
    46,
    "female",
)
c.cond("depression")
c.cond("oa-knee")
c.rx("tramadol", per=3)
c.statement("sertraline")
c.find(
    "serotonergic-opioid-ssri",
    "interaction",
    "warning",
    "Tramadol with sertraline (patient-reported): serotonin syndrome",
    SERO_RATIONALE,
    "serotonin",
    drugs=("tramadol", "sertraline"),
)

# --- amiodarone, statins, warfarin -------------------------------------------------------------------------
c = case("amio-warf-01", OS, "Amiodarone ordered for a patient on warfarin", 74, "male")
c.cond("af")
c.rx("warfarin")
c.lab("inr", 2.4, 7)
c.draft("amiodarone", dose=2, per=2)
c.find(
    "amiodarone-warfarin",
    "interaction",
    "warning",
    "Amiodarone raises warfarin effect",
    "Amiodarone inhibits warfarin metabolism (CYP2C9/3A4) over weeks; reduce warfarin by a third to a "
    "half and check INR weekly.",
    "amio-warfarin",
    drugs=("amiodarone", "warfarin"),
)
c = case("amio-warf-02", PV, "Warfarin with amiodarone, INR 3.8", 77, "female")
c.cond("af")
c.rx("warfarin")
c.rx("amiodarone", days_ago=40)
inr = c.lab("inr", 3.8, 2)
c.find(
    "amiodarone-warfarin",
    "interaction",
    "warning",
    "Warfarin with amiodarone, INR above range",
    "Amiodarone potentiates warfarin; INR 3.8 is above the 2-3 range: reduce warfarin and recheck.",
    "amio-warfarin",
    drugs=("amiodarone", "warfarin"),
    labs=(inr,),
)
c = case(
    "amio-warf-03",
    PV,
    "Warfarin with metoprolol, INR in range",
    70,
    "male",
    negative_for=("amiodarone-warfarin", "warfarin-tmp-smx", "warfarin-metronidazole"),
)
c.cond("af")
c.rx("warfarin")
c.rx("metoprolol")
c.lab("inr", 2.4, 10)
c = case("amio-dig-01", OS, "Amiodarone ordered for a patient on digoxin", 79, "female")
c.cond("af")
c.cond("heart-failure")
c.rx("digoxin")
c.rx("furosemide")
c.lab("digoxin", 0.8, 40)
c.lab("potassium", 4.3, 40)
c.lab("creatinine", 1.0, 40)
c.draft("amiodarone", dose=2, per=2)
c.find(
    "amiodarone-digoxin",
    "interaction",
    "warning",
    "Amiodarone raises digoxin levels",
    "Amiodarone inhibits P-gp and roughly doubles digoxin concentrations: halve digoxin and recheck the "
    "level in a week.",
    "amio-digoxin",
    drugs=("amiodarone", "digoxin"),
)
c = case(
    "amio-dig-02",
    PV,
    "Digoxin with metoprolol, monitoring up to date",
    72,
    "male",
    negative_for=("amiodarone-digoxin", "digoxin-monitoring"),
)
c.cond("af")
c.rx("digoxin")
c.rx("metoprolol")
c.lab("digoxin", 0.9, 150)
c.lab("potassium", 4.4, 60)
c.lab("creatinine", 1.0, 60)
c.lab("egfr", 74, 60)
c = case("amio-simva-01", PV, "Simvastatin 40 mg with amiodarone", 75, "male")
c.cond("af")
c.cond("hyperlipidaemia")
c.rx("amiodarone")
c.rx("simvastatin-40")
c.find(
    "amiodarone-simvastatin",
    "interaction",
    "warning",
    "Simvastatin 40 mg with amiodarone (max 20 mg)",
    "Amiodarone raises simvastatin exposure and myopathy/rhabdomyolysis risk; the label caps simvastatin "
    "at 20 mg daily with amiodarone: reduce or switch to a statin not cleared by CYP3A4.",
    "simva-cap",
    drugs=("simvastatin-40", "amiodarone"),
)
c = case(
    "amio-simva-02",
    PV,
    "Simvastatin 20 mg with amiodarone: within the label cap",
    73,
    "female",
    negative_for=("amiodarone-simvastatin", "simvastatin-dose-cap"),
)
c.cond("af")
c.cond("hyperlipidaemia")
c.rx("amiodarone")
c.rx("simvastatin-20")

CAP_RATIONALE = (
    "Amlodipine raises simvastatin exposure; the label caps simvastatin at 20 mg daily with amlodipine: "
    "reduce the dose or switch to atorvastatin/rosuvastatin."
)
c = case("simva-cap-01", PV, "Simvastatin 40 mg with amlodipine", 66, "male")
c.cond("hypertension")
c.cond("hyperlipidaemia")
c.rx("simvastatin-40")
c.rx("amlodipine")
c.bp(128, 78, 20)
c.find(
    "simvastatin-dose-cap",
    "interaction",
    "warning",
    "Simvastatin 40 mg with amlodipine (max 20 mg)",
    CAP_RATIONALE,
    "simva-cap",
    drugs=("simvastatin-40", "amlodipine"),
)
c = case(
    "simva-cap-02",
    PV,
    "Simvastatin 20 mg with amlodipine 10 mg (tall-man display): within cap",
    64,
    "female",
    negative_for=("simvastatin-dose-cap",),
)
c.cond("hypertension")
c.cond("hyperlipidaemia")
c.rx("simvastatin-20")
c.rx("amlodipine-10")
c.bp(126, 76, 20)
c = case("simva-cap-03", OS, "Amlodipine ordered for a patient on simvastatin 40 mg", 61, "male")
c.cond("hypertension", 10)
c.cond("hyperlipidaemia")
c.rx("simvastatin-40")
c.bp(148, 92, 0)
c.draft("amlodipine")
c.find(
    "simvastatin-dose-cap",
    "interaction",
    "warning",
    "Amlodipine ordered with simvastatin 40 mg",
    CAP_RATIONALE,
    "simva-cap",
    drugs=("amlodipine", "simvastatin-40"),
)
c = case("simva-cap-04", OS, "Simvastatin 80 mg started new", 58, "male")
c.cond("hyperlipidaemia", 30)
c.draft("simvastatin-80")
c.find(
    "simvastatin-dose-cap",
    "other",
    "warning",
    "Simvastatin 80 mg should not be started new",
    "Since 2011 simvastatin 80 mg is restricted to patients who have taken it for 12 months or more "
    "without myopathy; start atorvastatin or rosuvastatin for high-intensity therapy instead.",
    "simva-cap",
    drugs=("simvastatin-80",),
)
c = case(
    "simva-cap-05",
    PV,
    "Simvastatin 80 mg taken for four years without myopathy",
    67,
    "male",
    negative_for=("simvastatin-dose-cap",),
)
c.cond("hyperlipidaemia", 2000)
c.rx("simvastatin-80", days_ago=1460)

CYP_RATIONALE = (
    "A strong CYP3A4 inhibitor raises simvastatin/lovastatin exposure many-fold (rhabdomyolysis); the "
    "combination is contraindicated: hold the statin for the course or choose another antimicrobial."
)
c = case("statin-01", OS, "Clarithromycin ordered for a patient on simvastatin", 62, "female")
c.cond("hyperlipidaemia")
c.cond("pneumonia", 1)
c.rx("simvastatin-20")
c.draft("clarithromycin", per=2)
c.find(
    "statin-cyp3a4",
    "interaction",
    "critical",
    "Clarithromycin with simvastatin: contraindicated",
    CYP_RATIONALE,
    "statin-3a4",
    drugs=("clarithromycin", "simvastatin-20"),
)
c = case("statin-02", OS, "Ketoconazole ordered for a patient on lovastatin", 59, "male")
c.cond("hyperlipidaemia")
c.rx("lovastatin")
c.draft("ketoconazole")
c.find(
    "statin-cyp3a4",
    "interaction",
    "critical",
    "Ketoconazole with lovastatin: contraindicated",
    CYP_RATIONALE,
    "statin-3a4",
    drugs=("ketoconazole", "lovastatin"),
)
c = case("statin-03", PV, "Simvastatin 40 mg with itraconazole", 55, "male")
c.cond("hyperlipidaemia")
c.rx("simvastatin-40")
c.rx("itraconazole", dose=2, days_ago=10)
c.find(
    "statin-cyp3a4",
    "interaction",
    "critical",
    "Itraconazole with simvastatin: contraindicated",
    CYP_RATIONALE,
    "statin-3a4",
    drugs=("itraconazole", "simvastatin-40"),
)
c = case(
    "statin-04", OS, "Clarithromycin ordered on atorvastatin 40 mg (above the 20 mg caution)", 60, "male"
)
c.cond("hyperlipidaemia")
c.cond("pneumonia", 1)
c.rx("atorvastatin-40")
c.draft("clarithromycin", per=2)
c.find(
    "statin-cyp3a4",
    "interaction",
    "warning",
    "Clarithromycin with atorvastatin 40 mg",
    "Clarithromycin raises atorvastatin exposure; the label advises caution above 20 mg: hold or reduce "
    "atorvastatin for the course.",
    "statin-3a4",
    drugs=("clarithromycin", "atorvastatin-40"),
)
c = case("statin-05", PV, "Lovastatin with ritonavir", 48, "male")
c.cond("hyperlipidaemia")
c.rx("lovastatin")
c.rx("ritonavir")
c.find(
    "statin-cyp3a4",
    "interaction",
    "critical",
    "Ritonavir with lovastatin: contraindicated",
    CYP_RATIONALE,
    "statin-3a4",
    drugs=("ritonavir", "lovastatin"),
)
c = case(
    "statin-06",
    OS,
    "Clarithromycin on atorvastatin 20 mg: within the label limit",
    57,
    "female",
    negative_for=("statin-cyp3a4",),
)
c.cond("hyperlipidaemia")
c.cond("pneumonia", 1)
c.rx("atorvastatin")
c.draft("clarithromycin", per=2)
c = case(
    "statin-07",
    OS,
    "Clarithromycin on pravastatin 40 mg (not CYP3A4-cleared)",
    63,
    "male",
    negative_for=("statin-cyp3a4",),
)
c.cond("hyperlipidaemia")
c.cond("pneumonia", 1)
c.rx("pravastatin")
c.draft("clarithromycin", per=2)
c = case(
    "statin-08",
    OS,
    "Azithromycin on simvastatin (azithromycin is not a CYP3A4 inhibitor)",
    52,
    "female",
    negative_for=("statin-cyp3a4",),
)
c.cond("hyperlipidaemia")
c.cond("sinusitis", 2)
c.rx("simvastatin-20")
c.draft("azithromycin", per=1)

c = case("warf-abx-01", OS, "Co-trimoxazole ordered for a patient on warfarin", 68, "female")
c.cond("af")
c.cond("uti", 1)
c.rx("warfarin")
c.lab("inr", 2.5, 10)
c.lab("creatinine", 0.8, 30)
c.weight(70)
c.draft("co-trimoxazole", per=2)
c.find(
    "warfarin-tmp-smx",
    "interaction",
    "warning",
    "Co-trimoxazole with warfarin: INR rise and bleeding",
    "Sulfamethoxazole inhibits CYP2C9 and displaces warfarin; INR commonly doubles. Prefer another "
    "antibiotic (e.g. nitrofurantoin for cystitis) or reduce warfarin and check INR in 3-5 days.",
    "warfarin-smx",
    drugs=("co-trimoxazole:sulfamethoxazole", "warfarin"),
)
c = case(
    "warf-abx-02",
    OS,
    "Nitrofurantoin ordered for a patient on warfarin (normal renal function)",
    66,
    "female",
    negative_for=("warfarin-tmp-smx", "renal-dose-crcl"),
)
c.cond("af")
c.cond("uti", 1)
c.rx("warfarin")
c.lab("inr", 2.3, 10)
c.lab("creatinine", 0.7, 30)
c.weight(72)
c.draft("nitrofurantoin", dose=20, unit="mL", per=4)
c = case("warf-abx-03", OS, "Metronidazole ordered for a patient on warfarin", 45, "female")
c.cond("dvt", 200)
c.cond("bv", 1)
c.rx("warfarin")
c.lab("inr", 2.6, 14)
c.draft("metronidazole", per=2)
c.find(
    "warfarin-metronidazole",
    "interaction",
    "warning",
    "Metronidazole with warfarin: INR rise",
    "Metronidazole inhibits S-warfarin metabolism and raises INR markedly; use intravaginal therapy or "
    "reduce warfarin and check INR within a week.",
    "warfarin-metro",
    drugs=("metronidazole", "warfarin"),
)
c = case(
    "warf-abx-04",
    PV,
    "Topical metronidazole gel for rosacea on warfarin (negligible absorption)",
    71,
    "male",
    negative_for=("warfarin-metronidazole",),
)
c.cond("af")
c.cond("rosacea")
c.rx("warfarin")
c.rx("metronidazole-gel", dose=None)
c.lab("inr", 2.5, 14)


# --- renal dosing (Cockcroft-Gault: (140 - age) x kg / (72 x SCr), x 0.85 female) ------------------------
def renal(
    case_id: str,
    hook: str,
    note: str,
    age: int,
    sex: str,
    kg: float,
    scr: float,
    negative: bool = False,
    height: float | None = None,
) -> tuple[Case, JsonDict, JsonDict]:
    built = case(case_id, hook, note, age, sex, negative_for=("renal-dose-crcl",) if negative else ())
    creatinine = built.lab("creatinine", scr, 2)
    weight = built.weight(kg, 2)
    if height is not None:
        built.lab("height", height, 2)
    return built, creatinine, weight


c, cr, wt = renal(
    "renal-01", PV, "Apixaban 5 mg bid at 82 y, 58 kg, SCr 1.6 (all three criteria)", 82, "female", 58, 1.6
)
c.cond("af")
c.rx("apixaban", per=2)
c.find(
    "renal-dose-crcl",
    "renal",
    "warning",
    "Apixaban 5 mg bid: 2.5 mg bid is indicated",
    "In AF, two of age >= 80, weight <= 60 kg and creatinine >= 1.5 mg/dL call for 2.5 mg twice daily; "
    "all three apply.",
    "apixaban",
    drugs=("apixaban",),
    labs=(cr, wt),
)
c, cr, wt = renal(
    "renal-02",
    PV,
    "Apixaban 5 mg bid at 80 y, 60 kg, SCr 1.5: criteria met exactly at their thresholds",
    80,
    "male",
    60,
    1.5,
)
c.cond("af")
c.rx("apixaban", per=2)
c.find(
    "renal-dose-crcl",
    "renal",
    "warning",
    "Apixaban 5 mg bid: 2.5 mg bid is indicated",
    "Age 80, weight 60 kg and creatinine 1.5 mg/dL each meet the label criterion (>= 80, <= 60, >= 1.5).",
    "apixaban",
    drugs=("apixaban",),
    labs=(cr, wt),
)
c, cr, wt = renal(
    "renal-03",
    PV,
    "Apixaban 5 mg bid at 79 y, 61 kg, SCr 1.4: no criterion met",
    79,
    "male",
    61,
    1.4,
    negative=True,
)
c.cond("af")
c.rx("apixaban", per=2)
c, cr, wt = renal(
    "renal-04",
    PV,
    "Apixaban already reduced to 2.5 mg bid in a patient who meets the criteria",
    84,
    "female",
    55,
    1.7,
    negative=True,
)
c.cond("af")
c.rx("apixaban-2.5", per=2)
c, cr, wt = renal(
    "renal-05", PV, "Rivaroxaban 20 mg with CrCl 41 (F 75 y, 70 kg, SCr 1.3)", 75, "female", 70, 1.3
)
c.cond("af")
c.rx("rivaroxaban")
c.find(
    "renal-dose-crcl",
    "renal",
    "warning",
    "Rivaroxaban 20 mg with CrCl about 41 mL/min: use 15 mg",
    "Cockcroft-Gault CrCl = (140-75) x 70 / (72 x 1.3) x 0.85 = 41 mL/min; AF dosing is 15 mg daily at "
    "CrCl <= 50.",
    "rivaroxaban",
    drugs=("rivaroxaban",),
    labs=(cr, wt),
)
c, cr, wt = renal(
    "renal-06",
    PV,
    "Rivaroxaban 20 mg at CrCl exactly 50 (M 68 y, 75 kg, 180 cm, SCr 1.5)",
    68,
    "male",
    75,
    1.5,
    height=180.3,
)
c.cond("af")
c.rx("rivaroxaban")
c.find(
    "renal-dose-crcl",
    "renal",
    "warning",
    "Rivaroxaban 20 mg with CrCl 50 mL/min: use 15 mg",
    "CrCl = 72 x 75 / (72 x 1.5) = 50 mL/min (weight below ideal body weight, so actual weight is used); "
    "the label's 15 mg applies at CrCl <= 50.",
    "rivaroxaban",
    drugs=("rivaroxaban",),
    labs=(cr, wt),
)
c, cr, wt = renal(
    "renal-07",
    PV,
    "Rivaroxaban 20 mg at CrCl 51.7 (SCr 1.45): full dose correct",
    68,
    "male",
    75,
    1.45,
    negative=True,
    height=180.3,
)
c.cond("af")
c.rx("rivaroxaban")
c, cr, wt = renal(
    "renal-08", PV, "Dabigatran 150 mg bid with CrCl 28 (F 80 y, 55 kg, SCr 1.4)", 80, "female", 55, 1.4
)
c.cond("af")
c.rx("dabigatran", per=2)
c.find(
    "renal-dose-crcl",
    "renal",
    "critical",
    "Dabigatran 150 mg bid with CrCl about 28 mL/min",
    "CrCl = 60 x 55 / (72 x 1.4) x 0.85 = 28 mL/min; US labelling gives 75 mg twice daily at CrCl 15-30 "
    "(bleeding risk at full dose); consider apixaban.",
    "dabigatran",
    drugs=("dabigatran",),
    labs=(cr, wt),
)
for case_id, scr, crcl, positive in (
    ("renal-09", 2.60, "28.8", True),
    ("renal-10", 2.50, "30.0", False),
    ("renal-11", 2.42, "31.0", False),
):
    note = f"Enoxaparin 80 mg q12h ordered, CrCl {crcl} (M 68 y, 75 kg, 180 cm, SCr {scr})"
    c, cr, wt = renal(case_id, OS, note, 68, "male", 75, scr, negative=not positive, height=180.3)
    c.cond("dvt", 1)
    c.draft("enoxaparin", dose=80, unit="mg", per=2)
    if positive:
        c.find(
            "renal-dose-crcl",
            "renal",
            "warning",
            "Enoxaparin twice daily with CrCl below 30 mL/min",
            f"CrCl = 72 x 75 / (72 x {scr}) = {crcl} mL/min; below 30 the treatment dose is 1 mg/kg once "
            "daily (enoxaparin accumulates).",
            "enoxaparin",
            drugs=("enoxaparin",),
            labs=(cr, wt),
        )
c, cr, wt = renal(
    "renal-12", PV, "Gabapentin 1800 mg/day with CrCl 27 (M 76 y, 70 kg, SCr 2.3)", 76, "male", 70, 2.3
)
c.cond("postherpetic-neuralgia")
c.rx("gabapentin", dose=2, per=3)
c.find(
    "renal-dose-crcl",
    "renal",
    "warning",
    "Gabapentin 1800 mg/day above the 700 mg/day renal maximum",
    "CrCl = 64 x 70 / (72 x 2.3) = 27 mL/min; the label range at CrCl 15-29 is 200-700 mg/day (sedation, "
    "falls, respiratory depression from accumulation).",
    "gabapentin",
    drugs=("gabapentin",),
    labs=(cr, wt),
)
c, cr, wt = renal(
    "renal-13",
    PV,
    "Gabapentin 900 mg/day with CrCl 45: within 400-1400 mg/day",
    70,
    "female",
    65,
    1.2,
    negative=True,
)
c.cond("postherpetic-neuralgia")
c.rx("gabapentin", per=3)
c, cr, wt = renal(
    "renal-14", PV, "Pregabalin 600 mg/day with CrCl 45 (F 70 y, 65 kg, SCr 1.2)", 70, "female", 65, 1.2
)
c.cond("diabetic-neuropathy")
c.cond("diabetes")
c.rx("pregabalin", dose=2, per=2)
c.rx("metformin", per=2)
c.rx("atorvastatin")
c.lab("hba1c", 7.2, 40)
c.lab("egfr", 46, 2)
c.find(
    "renal-dose-crcl",
    "renal",
    "warning",
    "Pregabalin 600 mg/day above the 300 mg/day renal maximum",
    "CrCl = 70 x 65 / (72 x 1.2) x 0.85 = 45 mL/min; at CrCl 30-60 the maximum is 300 mg/day.",
    "pregabalin",
    drugs=("pregabalin",),
    labs=(cr, wt),
)
c, cr, wt = renal(
    "renal-15", OS, "Nitrofurantoin ordered with CrCl 23 (F 84 y, 52 kg, SCr 1.5)", 84, "female", 52, 1.5
)
c.cond("uti", 1)
c.draft("nitrofurantoin", dose=20, unit="mL", per=4)
c.find(
    "renal-dose-crcl",
    "renal",
    "warning",
    "Nitrofurantoin with CrCl about 23 mL/min",
    "CrCl = 56 x 52 / (72 x 1.5) x 0.85 = 23 mL/min; below 30 nitrofurantoin is ineffective in urine and "
    "toxic (neuropathy, pulmonary): choose another agent.",
    "nitrofurantoin",
    drugs=("nitrofurantoin",),
    labs=(cr, wt),
)
c, cr, wt = renal(
    "renal-16", OS, "Co-trimoxazole DS bid ordered with CrCl 23 (M 78 y, 68 kg, SCr 2.5)", 78, "male", 68, 2.5
)
c.cond("uti", 1)
c.draft("co-trimoxazole", per=2)
c.find(
    "renal-dose-crcl",
    "renal",
    "warning",
    "Co-trimoxazole full dose with CrCl about 23 mL/min",
    "CrCl = 62 x 68 / (72 x 2.5) = 23 mL/min; at 15-30 the label halves the regimen (hyperkalaemia and "
    "further creatinine rise with trimethoprim).",
    "smx-renal",
    drugs=("co-trimoxazole:sulfamethoxazole", "co-trimoxazole:trimethoprim"),
    labs=(cr, wt),
)
c, cr, wt = renal(
    "renal-17",
    OS,
    "Levofloxacin 750 mg daily ordered with CrCl 32 (F 72 y, 60 kg, SCr 1.5)",
    72,
    "female",
    60,
    1.5,
)
c.cond("pneumonia", 1)
c.draft("levofloxacin")
c.find(
    "renal-dose-crcl",
    "renal",
    "warning",
    "Levofloxacin 750 mg every 24 h with CrCl about 32 mL/min",
    "CrCl = 68 x 60 / (72 x 1.5) x 0.85 = 32 mL/min; at 20-49 the label gives 750 mg every 48 hours.",
    "levofloxacin",
    drugs=("levofloxacin",),
    labs=(cr, wt),
)
c, cr, wt = renal(
    "renal-18",
    OS,
    "Oxaliplatin 150 mg (85 mg/m2) ordered with CrCl 28 (M 66 y, 70 kg, SCr 2.6)",
    66,
    "male",
    70,
    2.6,
    height=175,
)
c.cond("colon-cancer", 60)
c.draft("oxaliplatin", dose=150, unit="mg", per=1, period=2, period_unit="wk")
c.find(
    "renal-dose-crcl",
    "renal",
    "warning",
    "Oxaliplatin at 85 mg/m2 with CrCl about 28 mL/min",
    "CrCl = 74 x 70 / (72 x 2.6) = 28 mL/min; the label reduces the dose to 65 mg/m2 below 30 mL/min.",
    "oxaliplatin",
    drugs=("oxaliplatin",),
    labs=(cr, wt),
)
c, cr, wt = renal(
    "renal-19",
    OS,
    "Nitrofurantoin ordered with normal renal function (F 35 y)",
    35,
    "female",
    65,
    0.7,
    negative=True,
)
c.cond("uti", 1)
c.draft("nitrofurantoin", dose=20, unit="mL", per=4)
# Only creatinine is on record: the reviewer computes CKD-EPI 2021 eGFR for metformin.
c = case(
    "renal-20",
    PV,
    "Metformin 2 g/day with only a creatinine on record: CKD-EPI 2021 eGFR 34 (F 72 y, SCr 1.6)",
    72,
    "female",
)
c.cond("diabetes")
c.rx("metformin-1000", per=2)
c.rx("atorvastatin")
c.lab("hba1c", 7.1, 30)
cr = c.lab("creatinine", 1.6, 5)
c.find(
    "renal-dose-crcl",
    "renal",
    "warning",
    "Metformin 2 g/day with eGFR about 34",
    "CKD-EPI 2021 (female, 72 y, SCr 1.6) gives eGFR 34 mL/min/1.73m2; at 30-45 metformin should not be "
    "started and continuing patients are limited to about 1000 mg/day with eGFR checked every 3-6 months.",
    "metformin-renal",
    drugs=("metformin-1000",),
    labs=(cr,),
)
c = case(
    "renal-21",
    PV,
    "Metformin with only a creatinine on record: CKD-EPI 2021 eGFR 25 (M 80 y, SCr 2.5)",
    80,
    "male",
)
c.cond("diabetes")
c.rx("metformin", per=2)
c.rx("atorvastatin")
c.lab("hba1c", 7.4, 30)
cr = c.lab("creatinine", 2.5, 5)
c.find(
    "renal-dose-crcl",
    "renal",
    "critical",
    "Metformin with eGFR about 25: contraindicated",
    "CKD-EPI 2021 (male, 80 y, SCr 2.5) gives eGFR 25 mL/min/1.73m2; metformin is contraindicated below "
    "30 (lactic acidosis): stop it.",
    "metformin-renal",
    drugs=("metformin",),
    labs=(cr,),
)
c = case(
    "renal-22",
    PV,
    "Metformin with only a creatinine on record: CKD-EPI 2021 eGFR 86 (M 60 y, SCr 1.0)",
    60,
    "male",
    negative_for=("renal-dose-crcl",),
)
c.cond("diabetes")
c.rx("metformin", per=2)
c.rx("atorvastatin")
c.lab("hba1c", 7.0, 30)
c.lab("creatinine", 1.0, 5)

# --- acute kidney injury with nephrotoxins ------------------------------------------------------------------
AKI_RATIONALE = (
    "KDIGO defines AKI as a creatinine rise of >= 0.3 mg/dL within 48 hours or >= 1.5 x baseline within 7 "
    "days; NSAIDs, ACE inhibitors/ARBs, diuretics and aminoglycosides should be held or re-dosed."
)


def aki(
    case_id: str,
    note: str,
    before: float,
    after: float,
    hours: int,
    drugs: tuple[str, ...],
    positive: bool,
    severity: str = "warning",
) -> None:
    built = case(case_id, PV, note, 67, "male", negative_for=() if positive else ("aki-nephrotoxin",))
    built.cond("hypertension")
    for key in drugs:
        built.rx(key, per=3 if key == "ibuprofen" else 1, days_ago=30)
    # The latest creatinine is taken at 08:00 on as_of; the first `hours` earlier.
    first_day, first_hour = divmod(8 - hours, 24)
    first = built.lab("creatinine", before, days_ago=-first_day, hour=first_hour)
    last = built.lab("creatinine", after, days_ago=0, hour=8)
    built.bp(124, 76, 0)
    if positive:
        built.find(
            "aki-nephrotoxin",
            "renal",
            severity,
            f"Creatinine {before} -> {after} mg/dL in {hours} h on nephrotoxic drugs",
            AKI_RATIONALE,
            "aki",
            drugs=drugs,
            labs=(first, last),
        )


aki(
    "aki-01",
    "Creatinine 1.00 -> 1.35 in 47 h on lisinopril + ibuprofen",
    1.0,
    1.35,
    47,
    ("lisinopril", "ibuprofen"),
    True,
)
aki(
    "aki-02",
    "Creatinine 1.00 -> 1.30 in 47 h (rise exactly 0.3) on losartan + furosemide",
    1.0,
    1.3,
    47,
    ("losartan", "furosemide"),
    True,
)
aki(
    "aki-03",
    "Creatinine 1.00 -> 1.29 in 47 h (rise 0.29, just below) on lisinopril + ibuprofen",
    1.0,
    1.29,
    47,
    ("lisinopril", "ibuprofen"),
    False,
)
aki(
    "aki-04",
    "Creatinine 0.80 -> 1.20 (1.5 x) over 6 days on gentamicin",
    0.8,
    1.2,
    144,
    ("gentamicin", "lisinopril"),
    True,
    "critical",
)
aki(
    "aki-05",
    "Creatinine 0.80 -> 1.19 (1.49 x) over 6 days, no 48 h rise, on lisinopril + furosemide",
    0.8,
    1.19,
    144,
    ("lisinopril", "furosemide"),
    False,
)
aki(
    "aki-06",
    "Creatinine 1.00 -> 1.40 over 10 days (beyond the 7-day window, 1.4 x)",
    1.0,
    1.4,
    240,
    ("lisinopril", "ibuprofen"),
    False,
)

# --- potassium before potassium-raising drugs (order-select) ------------------------------------------------
POTASSIUM_CASES: tuple[tuple[str, float, str, str | None, str], ...] = (
    ("potassium-01", 5.2, "spironolactone", "warning", "k-mra"),
    ("potassium-02", 5.0, "spironolactone", "warning", "k-mra"),
    ("potassium-03", 4.9, "spironolactone", None, "k-mra"),
    ("potassium-04", 5.3, "potassium-chloride", "critical", "k-supplement"),
    ("potassium-05", 5.6, "amiloride", "critical", "k-amiloride"),
    ("potassium-06", 4.2, "potassium-chloride", None, "k-supplement"),
)
for case_id, potassium, drug, k_severity, source in POTASSIUM_CASES:
    negative = ("potassium-before-k-raising",) if k_severity is None else ()
    c = case(
        case_id, OS, f"{drug} ordered with potassium {potassium} mmol/L", 69, "male", negative_for=negative
    )
    c.cond("heart-failure")
    c.rx("furosemide", dose=2)
    c.rx("metoprolol")
    k = c.lab("potassium", potassium, 1)
    c.lab("creatinine", 1.1, 1)
    c.lab("egfr", 68, 1)
    c.draft(drug)
    if k_severity is not None:
        c.find(
            "potassium-before-k-raising",
            "monitoring",
            k_severity,
            f"{drug.replace('-', ' ').capitalize()} ordered with potassium {potassium} mmol/L",
            "Potassium-raising therapy should not be started with potassium at or above 5.0 mmol/L; "
            "recheck and treat the potassium first.",
            source,
            drugs=(drug,),
            labs=(k,),
        )


# --- methotrexate -------------------------------------------------------------------------------------------
def ra_patient(case_id: str, hook: str, note: str, negative: tuple[str, ...] = ()) -> Case:
    built = case(case_id, hook, note, 56, "female", negative_for=negative)
    built.cond("ra", 900)
    return built


def cbc_liver_renal(built: Case, days_ago: int, alt: bool = True) -> list[JsonDict]:
    labs = [
        built.lab("hemoglobin", 12.8, days_ago),
        built.lab("platelets", 240, days_ago),
        built.lab("wbc", 6.1, days_ago),
        built.lab("creatinine", 0.8, days_ago),
    ]
    if alt:
        labs.append(built.lab("alt", 24, days_ago))
    return labs


c = ra_patient("mtx-01", OS, "Methotrexate 10 mg ordered once DAILY")
c.rx("folic-acid")
cbc_liver_renal(c, 30)
c.draft("methotrexate", dose=4, per=1, period=1, period_unit="d")
c.find(
    "methotrexate-weekly-dose",
    "other",
    "critical",
    "Methotrexate ordered daily: it is dosed weekly",
    "Daily oral methotrexate for RA is a recurrent fatal error (mucositis, marrow failure); the order "
    "must be once weekly on a named day.",
    "mtx-weekly",
    drugs=("methotrexate",),
)
c = ra_patient(
    "mtx-02",
    OS,
    "Methotrexate 15 mg once weekly ordered, folic acid and labs in place",
    ("methotrexate-weekly-dose", "methotrexate-monitoring", "methotrexate-folic-acid"),
)
c.rx("folic-acid")
cbc_liver_renal(c, 30)
c.draft("methotrexate", dose=6, per=1, period=1, period_unit="wk")
c = ra_patient("mtx-03", PV, "Weekly methotrexate, last blood count/creatinine/ALT 150 days ago")
c.rx("methotrexate", dose=6, per=1, period_unit="wk", days_ago=700)
c.rx("folic-acid", days_ago=700)
labs = cbc_liver_renal(c, 150)
c.find(
    "methotrexate-monitoring",
    "monitoring",
    "warning",
    "Methotrexate without monitoring for 5 months",
    "Blood count, creatinine and ALT are due every 8-12 weeks on established methotrexate; the last set "
    "is 150 days old.",
    "mtx-monitoring",
    drugs=("methotrexate",),
    labs=tuple(labs),
)
c = ra_patient("mtx-04", PV, "Weekly methotrexate, blood count recent but no ALT ever recorded")
c.rx("methotrexate", dose=6, per=1, period_unit="wk", days_ago=400)
c.rx("folic-acid", days_ago=400)
cbc_liver_renal(c, 40, alt=False)
c.find(
    "methotrexate-monitoring",
    "monitoring",
    "warning",
    "Methotrexate without liver monitoring",
    "No ALT is on record; methotrexate hepatotoxicity is monitored with ALT every 8-12 weeks.",
    "mtx-monitoring",
    drugs=("methotrexate",),
    labs=(
        {
            "name": "alt",
            "loinc": "1742-6",
            "value": None,
            "unit": None,
            "date": None,
            "note": "no ALT on record",
        },
    ),
)
c = ra_patient(
    "mtx-05", PV, "Weekly methotrexate without folic acid, monitoring current", ("methotrexate-monitoring",)
)
c.rx("methotrexate", dose=6, per=1, period_unit="wk", days_ago=300)
cbc_liver_renal(c, 40)
c.find(
    "methotrexate-folic-acid",
    "care-gap",
    "warning",
    "Methotrexate without folic acid",
    "Folic acid (at least 5 mg a week) reduces methotrexate mucositis, GI and liver toxicity.",
    "mtx-folate",
    drugs=("methotrexate",),
)
c = ra_patient(
    "mtx-06",
    PV,
    "Weekly methotrexate with folic acid and monitoring 40 days ago",
    ("methotrexate-monitoring", "methotrexate-folic-acid", "methotrexate-weekly-dose"),
)
c.rx("methotrexate", dose=6, per=1, period_unit="wk", days_ago=500)
c.rx("folic-acid", days_ago=500)
cbc_liver_renal(c, 40)


# --- hypoglycaemia ---------------------------------------------------------------------------------------------
def diabetic(case_id: str, note: str, age: int, drug: str, negative: bool) -> Case:
    built = case(case_id, PV, note, age, "female", negative_for=("hypoglycaemia-risk",) if negative else ())
    built.cond("diabetes", 3000)
    built.rx("atorvastatin")
    built.lab("egfr", 72, 60)
    if drug == "insulin-70-30":
        built.rx(drug, dose=20, unit="[IU]", per=2)
    else:
        built.rx(drug, per=2)
    return built


for case_id, glucose, drug, positive in (
    ("hypo-01", 62, "glipizide", True),
    ("hypo-02", 69, "insulin-70-30", True),
    ("hypo-03", 70, "insulin-70-30", False),
):
    c = diabetic(case_id, f"Glucose {glucose} mg/dL on {drug}", 70, drug, not positive)
    g = c.lab("glucose", glucose, 1)
    c.lab("hba1c", 6.8, 60)
    if positive:
        c.find(
            "hypoglycaemia-risk",
            "other",
            "warning",
            f"Glucose {glucose} mg/dL on {drug.split('-')[0]}",
            "A glucose below 70 mg/dL is level 1 hypoglycaemia; on insulin or a sulfonylurea review the "
            "dose and the patient's hypoglycaemia history.",
            "hypo",
            drugs=(drug,),
            labs=(g,),
        )
for case_id, age, a1c, drug, positive in (
    ("hypo-04", 78, 5.8, "insulin-70-30", True),
    ("hypo-05", 78, 6.0, "glipizide", False),
    ("hypo-06", 70, 5.9, "glipizide", True),
    ("hypo-07", 64, 5.8, "glipizide", False),
    ("hypo-08", 75, 5.7, "metformin", False),
):
    c = diabetic(case_id, f"HbA1c {a1c}% at {age} y on {drug}", age, drug, not positive)
    h = c.lab("hba1c", a1c, 20)
    c.lab("glucose", 98, 20)
    if positive:
        c.find(
            "hypoglycaemia-risk",
            "older-adult",
            "warning",
            f"HbA1c {a1c}% on {drug.split('-')[0]} at {age}: overtreatment",
            "In older adults an A1C below about 6-7% on insulin or a sulfonylurea signals overtreatment and "
            "hypoglycaemia risk; ADA advises deintensifying.",
            "hypo",
            drugs=(drug,),
            labs=(h,),
        )

# --- paediatric weight-based doses (order-select) --------------------------------------------------------------
for case_id, age, kg, drug, positive in (
    ("paed-01", 6, 20, "epinephrine-0.3", True),
    ("paed-02", 9, 30, "epinephrine-0.3", False),
    ("paed-03", 6, 20, "epinephrine-0.15", False),
):
    c = case(
        case_id,
        OS,
        f"{drug} auto-injector for a {kg} kg child",
        age,
        "male",
        negative_for=() if positive else ("paediatric-weight-dose",),
    )
    c.allergy(coding=(SNOMED, "762952008", "Peanut (substance)"), category="food", reaction="Anaphylaxis")
    w = c.weight(kg, 10)
    c.draft(drug, dose=1, unit="injection", per=None, prn=True)
    if positive:
        c.find(
            "paediatric-weight-dose",
            "paediatric",
            "warning",
            "Epinephrine 0.3 mg auto-injector for 20 kg",
            "The 0.3 mg auto-injector is labelled for 30 kg and over; 15-30 kg takes 0.15 mg.",
            "epinephrine",
            drugs=(drug,),
            labs=(w,),
        )
for case_id, age, kg, drug, dose, per, summary in (
    ("paed-04", 1, 10, "amoxicillin-susp", 500, 3, "Amoxicillin 150 mg/kg/day for 10 kg: overdose"),
    ("paed-05", 1, 10, "amoxicillin-susp", 400, 2, ""),
    ("paed-06", 9, 30, "amoxicillin-250", 250, 3, "Amoxicillin 25 mg/kg/day for otitis media: underdose"),
):
    c = case(
        case_id,
        OS,
        f"Amoxicillin {dose} mg x {per}/day for a {kg} kg child with otitis media",
        age,
        "female",
        negative_for=() if summary else ("paediatric-weight-dose",),
    )
    c.cond("otitis-media", 1)
    w = c.weight(kg, 1)
    c.draft(drug, dose=dose, unit="mg", per=per)
    if summary:
        c.find(
            "paediatric-weight-dose",
            "paediatric",
            "warning",
            summary,
            f"{dose * per} mg/day for {kg} kg is {dose * per // kg} mg/kg/day; acute otitis media takes "
            "80-90 mg/kg/day in two doses.",
            "amoxicillin-paed",
            drugs=(drug,),
            labs=(w,),
        )

# --- Phansalkar high-priority contraindicated pairs ----------------------------------------------------------
for case_id, hook, note, age, sex, conditions, active, draft, summary, rationale in (
    (
        "phansalkar-01",
        OS,
        "Sildenafil ordered on isosorbide mononitrate",
        66,
        "male",
        ("angina", "erectile-dysfunction"),
        "isosorbide-mononitrate",
        "sildenafil",
        "Sildenafil with a nitrate: contraindicated",
        "PDE5 inhibitors with nitrates cause profound, potentially fatal hypotension.",
    ),
    (
        "phansalkar-02",
        OS,
        "Nitroglycerin spray ordered for a patient on tadalafil",
        62,
        "male",
        ("cad", "erectile-dysfunction"),
        "tadalafil",
        "nitroglycerin",
        "Nitroglycerin with tadalafil: contraindicated",
        "Nitrates are contraindicated within 48 h of tadalafil (severe hypotension).",
    ),
    (
        "phansalkar-03",
        OS,
        "Allopurinol ordered for a patient on azathioprine",
        44,
        "male",
        ("crohn", "gout"),
        "azathioprine",
        "allopurinol",
        "Allopurinol with azathioprine: marrow toxicity",
        "Allopurinol blocks xanthine oxidase, the route that inactivates azathioprine; full-dose azathioprine "
        "then causes life-threatening myelosuppression.",
    ),
    (
        "phansalkar-04",
        PV,
        "Mercaptopurine with febuxostat",
        24,
        "male",
        ("all", "gout"),
        "mercaptopurine",
        "febuxostat",
        "Febuxostat with mercaptopurine: contraindicated",
        "Febuxostat is contraindicated with mercaptopurine/azathioprine (xanthine oxidase inhibition, "
        "myelosuppression).",
    ),
    (
        "phansalkar-05",
        OS,
        "Methylphenidate ordered for a patient on phenelzine",
        35,
        "female",
        ("adhd", "depression"),
        "phenelzine",
        "methylphenidate",
        "Methylphenidate with an MAOI: hypertensive crisis",
        "Stimulants are contraindicated with MAOIs and within 14 days of stopping one.",
    ),
    (
        "phansalkar-06",
        OS,
        "Clarithromycin ordered for a patient on ergotamine",
        39,
        "female",
        ("migraine", "sinusitis"),
        "ergotamine",
        "clarithromycin",
        "Clarithromycin with ergotamine: ergotism",
        "Strong CYP3A4 inhibitors raise ergotamine levels: vasospasm and limb or cerebral ischaemia.",
    ),
    (
        "phansalkar-07",
        OS,
        "Ciprofloxacin ordered for a patient on tizanidine",
        50,
        "female",
        ("ms", "uti"),
        "tizanidine",
        "ciprofloxacin",
        "Ciprofloxacin with tizanidine: contraindicated",
        "Ciprofloxacin inhibits CYP1A2 and raises tizanidine exposure about tenfold (hypotension, sedation).",
    ),
    (
        "phansalkar-08",
        PV,
        "Tizanidine with fluvoxamine",
        47,
        "female",
        ("ms", "depression"),
        "tizanidine",
        "fluvoxamine",
        "Fluvoxamine with tizanidine: contraindicated",
        "Fluvoxamine, a strong CYP1A2 inhibitor, raises tizanidine exposure about 33-fold.",
    ),
    (
        "phansalkar-09",
        OS,
        "Sacubitril/valsartan ordered while lisinopril is active",
        64,
        "male",
        ("heart-failure",),
        "lisinopril",
        "sacubitril-valsartan",
        "Sacubitril/valsartan with an ACE inhibitor: contraindicated",
        "Neprilysin inhibition with an ACE inhibitor causes angioedema; stop the ACE inhibitor 36 hours "
        "before the first dose.",
    ),
):
    c = case(case_id, hook, note, age, sex)
    for kind in conditions:
        c.cond(kind)
    c.rx(active)
    if hook == OS:
        c.draft(draft, per=None if draft == "nitroglycerin" else 1, prn=draft == "nitroglycerin")
    else:
        c.rx(draft)
    c.find(
        "phansalkar-contraindicated",
        "interaction",
        "critical",
        summary,
        rationale,
        f"{SOURCES['phansalkar']}; {draft} and {active} FDA prescribing information, Contraindications",
        drugs=(draft, active),
    )
c = case(
    "phansalkar-10",
    PV,
    "Sildenafil with amlodipine (no nitrate)",
    60,
    "male",
    negative_for=("phansalkar-contraindicated",),
)
c.cond("hypertension")
c.cond("erectile-dysfunction")
c.rx("amlodipine")
c.rx("sildenafil", prn=True)
c.bp(126, 78, 30)
c = case(
    "phansalkar-11",
    PV,
    "Sacubitril/valsartan after the ACE inhibitor was stopped",
    66,
    "male",
    negative_for=("phansalkar-contraindicated",),
)
c.cond("heart-failure")
c.rx("sacubitril-valsartan", per=2)
c.rx("metoprolol")
c.lab("potassium", 4.5, 30)
c.lab("egfr", 64, 30)
c.bp(118, 72, 30)
c = case(
    "phansalkar-12",
    OS,
    "Amoxicillin ordered for a patient on tizanidine",
    45,
    "female",
    negative_for=("phansalkar-contraindicated",),
)
c.cond("ms")
c.cond("sinusitis", 2)
c.rx("tizanidine", per=3)
c.draft("amoxicillin", per=3)
c = case(
    "phansalkar-13",
    PV,
    "Allopurinol for gout, no thiopurine",
    58,
    "male",
    negative_for=("phansalkar-contraindicated",),
)
c.cond("gout")
c.rx("allopurinol")
c.lab("egfr", 78, 60)

# --- digoxin monitoring ------------------------------------------------------------------------------------------
c = case(
    "digoxin-01", PV, "Digoxin with potassium and creatinine 18 months old and no digoxin level", 81, "female"
)
c.cond("af")
c.rx("digoxin", days_ago=900)
c.rx("metoprolol", days_ago=900)
k, cr = c.lab("potassium", 4.2, 540), c.lab("creatinine", 1.1, 540)
c.find(
    "digoxin-monitoring",
    "monitoring",
    "warning",
    "Digoxin without recent level, potassium or renal function",
    "Digoxin toxicity follows renal decline and hypokalaemia; at 81 both should be checked at least yearly "
    "and a level drawn when renal function changes.",
    "digoxin-monitoring",
    drugs=("digoxin",),
    labs=(k, cr),
)

# --- asthma ------------------------------------------------------------------------------------------------------
c = case("asthma-01", PV, "Asthma with propranolol for migraine prophylaxis", 34, "female")
c.cond("asthma")
c.cond("migraine")
c.rx("fluticasone", dose=2, per=2)
c.rx("albuterol", per=None, prn=True)
c.rx("propranolol", per=2)
c.find(
    "asthma-nonselective-beta-blocker",
    "other",
    "warning",
    "Propranolol in asthma",
    "Non-selective beta-blockers can precipitate severe bronchospasm and blunt rescue albuterol; use "
    "another migraine preventive (e.g. topiramate, amitriptyline).",
    "asthma-bb",
    drugs=("propranolol",),
    conditions=("asthma",),
)
c = case(
    "asthma-02",
    PV,
    "Asthma with cardioselective metoprolol for hypertension",
    52,
    "male",
    negative_for=("asthma-nonselective-beta-blocker", "asthma-laba-without-ics"),
)
c.cond("asthma")
c.cond("hypertension")
c.rx("metoprolol")
c.rx("fluticasone", dose=2, per=2)
c.rx("albuterol", per=None, prn=True)
c.bp(128, 80, 20)
c = case("asthma-03", PV, "Asthma on salmeterol alone (no inhaled corticosteroid)", 29, "male")
c.cond("asthma")
c.rx("salmeterol", per=2)
c.rx("albuterol", per=None, prn=True)
c.find(
    "asthma-laba-without-ics",
    "other",
    "critical",
    "Salmeterol without an inhaled corticosteroid in asthma",
    "LABA monotherapy in asthma increases asthma-related death; it is contraindicated without an ICS. "
    "Switch to an ICS/LABA inhaler.",
    "laba",
    drugs=("salmeterol",),
    conditions=("asthma",),
)
c = case("asthma-04", OS, "Salmeterol ordered for asthma with no ICS", 41, "female")
c.cond("asthma")
c.rx("albuterol", per=None, prn=True)
c.draft("salmeterol", per=2)
c.find(
    "asthma-laba-without-ics",
    "other",
    "critical",
    "Salmeterol ordered without an inhaled corticosteroid",
    "LABA monotherapy is contraindicated in asthma; order an ICS/LABA combination.",
    "laba",
    drugs=("salmeterol",),
    conditions=("asthma",),
)
c = case(
    "asthma-05",
    PV,
    "Asthma on fluticasone/salmeterol combination",
    38,
    "female",
    negative_for=("asthma-laba-without-ics",),
)
c.cond("asthma")
c.rx("fluticasone-salmeterol", per=2)
c.rx("albuterol", per=None, prn=True)
c = case(
    "asthma-06",
    PV,
    "COPD on salmeterol alone (LABA monotherapy is appropriate in COPD)",
    69,
    "male",
    negative_for=("asthma-laba-without-ics",),
)
c.cond("copd")
c.rx("salmeterol", per=2)
c.rx("albuterol", per=None, prn=True)

# --- NSAIDs in pregnancy ------------------------------------------------------------------------------------
for case_id, hook, weeks, drug, positive in (
    ("pregnancy-01", OS, 24, "ibuprofen", True),
    ("pregnancy-02", OS, 20, "naproxen", True),
    ("pregnancy-03", OS, 19, "ibuprofen", False),
    ("pregnancy-04", PV, 30, "aspirin", False),
    ("pregnancy-05", PV, 26, "ibuprofen", True),
):
    c = case(
        case_id,
        hook,
        f"{drug} at {weeks} weeks of pregnancy (dated from LMP)",
        31,
        "female",
        negative_for=() if positive else ("nsaid-pregnancy-20-weeks",),
    )
    c.pregnant(weeks)
    if hook == OS:
        c.draft(drug, per=3 if drug == "ibuprofen" else 2, prn=True)
    else:
        c.rx(drug, per=3 if drug == "ibuprofen" else 1, days_ago=10)
    if positive:
        c.find(
            "nsaid-pregnancy-20-weeks",
            "pregnancy",
            "critical",
            f"{drug.capitalize()} at {weeks} weeks",
            "NSAIDs from 20 weeks can cause fetal renal dysfunction and oligohydramnios (and ductus closure "
            "from 30 weeks); use acetaminophen.",
            "nsaid-pregnancy",
            drugs=(drug,),
            conditions=("pregnancy",),
        )

# --- older adults: CNS burden ---------------------------------------------------------------------------------
for case_id, age, drugs, positive in (
    ("beers-01", 72, ("sertraline", "gabapentin", "lamotrigine"), True),
    ("beers-02", 65, ("sertraline", "gabapentin", "lamotrigine"), True),
    ("beers-03", 64, ("sertraline", "gabapentin", "lamotrigine"), False),
    ("beers-04", 70, ("sertraline", "gabapentin"), False),
):
    c = case(
        case_id,
        PV,
        f"{len(drugs)} CNS-active drugs at {age} y",
        age,
        "female",
        negative_for=() if positive else ("beers-cns-burden",),
    )
    c.cond("depression")
    c.cond("diabetic-neuropathy")
    c.cond("diabetes")
    c.cond("epilepsy")
    c.rx("metformin", per=2)
    c.rx("atorvastatin")
    c.lab("hba1c", 7.2, 40)
    c.lab("egfr", 78, 40)
    for key in drugs:
        c.rx(key, per=3 if key == "gabapentin" else 2 if key == "lamotrigine" else 1)
    if positive:
        c.find(
            "beers-cns-burden",
            "older-adult",
            "warning",
            f"Three CNS-active drugs at {age}",
            "Three or more CNS-active drugs in an adult 65 or over raise the risk of falls and fractures; "
            "review whether each is still needed.",
            "beers-cns",
            drugs=drugs,
        )

# --- blood pressure control ----------------------------------------------------------------------------------
for case_id, readings, positive in (
    ("bp-01", ((152, 94, 0), (150, 92, 60)), True),
    ("bp-02", ((140, 90, 0),), True),
    ("bp-03", ((139, 89, 0),), False),
    ("bp-04", ((134, 92, 0),), True),
    ("bp-05", ((128, 78, 0), (150, 95, 30)), False),
):
    latest = readings[0]
    c = case(
        case_id,
        PV,
        f"Latest BP {latest[0]}/{latest[1]} on lisinopril + amlodipine",
        58,
        "male",
        negative_for=() if positive else ("bp-uncontrolled",),
    )
    c.cond("hypertension", 1500)
    c.rx("lisinopril")
    c.rx("amlodipine")
    c.lab("potassium", 4.4, 90)
    c.lab("creatinine", 0.9, 90)
    c.lab("egfr", 92, 90)
    bp_labs: list[JsonDict] = []
    for systolic, diastolic, days in readings:
        bp_labs += c.bp(systolic, diastolic, days)
    if positive:
        c.find(
            "bp-uncontrolled",
            "care-gap",
            "warning",
            f"BP {latest[0]}/{latest[1]} on two antihypertensives",
            "Blood pressure at or above 140/90 on treatment is uncontrolled: check adherence and intensify "
            "(e.g. raise lisinopril or add a thiazide).",
            "bp",
            drugs=("lisinopril", "amlodipine"),
            labs=tuple(bp_labs[:2]),
            conditions=("hypertension",),
        )

# --- low-dose aspirin is not an NSAID duplicate -----------------------------------------------------------------
c = case(
    "aspirin-01",
    PV,
    "Aspirin 81 mg with regular ibuprofen: an interaction, NOT an NSAID duplication",
    64,
    "male",
)
c.cond("cad")
c.cond("oa-knee")
c.rx("aspirin")
c.rx("ibuprofen", per=3)
c.rx("atorvastatin")
c.find(
    "low-dose-aspirin-not-nsaid",
    "interaction",
    "warning",
    "Ibuprofen can block low-dose aspirin's cardioprotection",
    "Regular ibuprofen competes for COX-1 and blunts aspirin's antiplatelet effect (take aspirin at least "
    "30 min before, or use acetaminophen); both add GI bleeding risk. It is not NSAID duplication.",
    "aspirin-ibuprofen",
    drugs=("aspirin", "ibuprofen"),
)
c = case(
    "aspirin-02",
    PV,
    "Aspirin 81 mg with acetaminophen for osteoarthritis",
    66,
    "female",
    negative_for=("low-dose-aspirin-not-nsaid",),
)
c.cond("cad")
c.cond("oa-knee")
c.rx("aspirin")
c.rx("acetaminophen", dose=2, per=3)
c.rx("atorvastatin")

# --- unresolved medications --------------------------------------------------------------------------------------
c = case(
    "unresolved-01", PV, "A local formulary code 'Study drug XR-17' that no terminology resolves", 57, "male"
)
c.cond("hypertension")
c.rx("lisinopril")
c.bp(124, 78, 10)
c.local_med("XR-17", "Study drug XR-17")
c.find(
    "medication-unresolved",
    "other",
    "info",
    "Unknown medication: Study drug XR-17",
    "The drug could not be identified, so interaction, renal and allergy checks are incomplete for it; "
    "confirm the agent with the study team.",
    "unresolved",
    ingredients=({"name": "study drug xr-17", "rxnorm": None, "product_rxnorm": None},),
)
c = case(
    "unresolved-02",
    PV,
    "Lisinopril recorded as text only (no coding): resolvable by name",
    55,
    "female",
    negative_for=("medication-unresolved",),
)
c.cond("hypertension")
c.text_med("Lisinopril 10 MG Oral Tablet")
c.bp(122, 76, 10)

# --- allergies -----------------------------------------------------------------------------------------------------
for case_id, text, reaction, drug, positive, summary, source in (
    (
        "allergy-01",
        "PCN",
        "Hives",
        "amoxicillin",
        True,
        "Amoxicillin ordered with a penicillin ('PCN') allergy",
        "allergy",
    ),
    (
        "allergy-02",
        "sulfa",
        "Rash",
        "co-trimoxazole",
        True,
        "Sulfamethoxazole ordered with a sulfonamide ('sulfa') allergy",
        "allergy",
    ),
    (
        "allergy-03",
        "ASA",
        "Angioedema",
        "aspirin",
        True,
        "Aspirin ordered with an aspirin ('ASA') allergy",
        "allergy",
    ),
    ("allergy-04", "sulfa", "Rash", "furosemide", False, "", "sulfa-nonantibiotic"),
    ("allergy-05", "PCN", "Hives", "azithromycin", False, "", "allergy"),
):
    c = case(
        case_id,
        OS,
        f"Allergy recorded as free text '{text}' ({reaction}); {drug} ordered",
        48,
        "female",
        negative_for=() if positive else ("allergy-abbreviation",),
    )
    c.allergy(text=text, reaction=reaction)
    c.cond(
        {
            "amoxicillin": "sinusitis",
            "co-trimoxazole": "uti",
            "aspirin": "cad",
            "furosemide": "heart-failure",
            "azithromycin": "sinusitis",
        }[drug],
        2,
    )
    c.draft(drug, per={"amoxicillin": 3, "co-trimoxazole": 2}.get(drug, 1))
    if positive:
        c.find(
            "allergy-abbreviation",
            "allergy",
            "critical",
            summary,
            f"'{text}' is the common abbreviation for this drug class; the order re-exposes the patient to "
            f"an allergen that caused {reaction.lower()}.",
            source,
            drugs=("co-trimoxazole:sulfamethoxazole",) if drug == "co-trimoxazole" else (drug,),
        )
c = case(
    "environment-01",
    PV,
    "Grass pollen allergy with loratadine: nothing drug-related",
    27,
    "female",
    negative_for=("environmental-allergy-not-food",),
)
c.allergy(
    coding=(SNOMED, "256277009", "Grass pollen (substance)"),
    category="environment",
    reaction="Allergic rhinitis",
    criticality="low",
)
c.cond("allergic-rhinitis")
c.rx("loratadine")
c = case(
    "environment-02",
    OS,
    "Grass pollen allergy with amoxicillin ordered",
    33,
    "male",
    negative_for=("environmental-allergy-not-food", "allergy-abbreviation"),
)
c.allergy(
    coding=(SNOMED, "256277009", "Grass pollen (substance)"),
    category="environment",
    reaction="Allergic rhinitis",
    criticality="low",
)
c.cond("sinusitis", 2)
c.draft("amoxicillin", per=3)
c = case("environment-03", PV, "Bee venom anaphylaxis with no epinephrine auto-injector", 44, "male")
c.allergy(
    coding=(SNOMED, "288328004", "Bee venom (substance)"), category="environment", reaction="Anaphylaxis"
)
c.find(
    "environmental-allergy-not-food",
    "care-gap",
    "warning",
    "Venom anaphylaxis without epinephrine",
    "A systemic reaction to a sting calls for an epinephrine auto-injector and allergist referral for "
    "venom immunotherapy; the allergy is environmental, not a drug or food allergy.",
    "venom",
)

# --- stale monitoring labs ---------------------------------------------------------------------------------------
for case_id, days, positive in (("stale-01", 1095, True), ("stale-02", 395, True), ("stale-03", 335, False)):
    c = case(
        case_id,
        PV,
        f"Metformin with last eGFR {days} days ago (value 82)",
        55,
        "male",
        negative_for=() if positive else ("stale-lab-recheck",),
    )
    c.cond("diabetes", 3000)
    c.rx("metformin", per=2, days_ago=2000)
    c.rx("atorvastatin")
    e = c.lab("egfr", 82, days)
    c.lab("creatinine", 1.0, days)
    c.lab("hba1c", 7.0, 60)
    if positive:
        c.find(
            "stale-lab-recheck",
            "monitoring",
            "info",
            "Renal function not checked for over a year on metformin",
            "The last eGFR was normal; metformin needs eGFR at least annually, so this is a recheck, not a "
            "renal dosing problem.",
            "stale-egfr",
            drugs=("metformin",),
            labs=(e,),
        )

# --- influenza season ----------------------------------------------------------------------------------------------
for case_id, as_of, last, positive in (
    ("flu-01", WINTER, date(2024, 10, 10), True),
    ("flu-02", WINTER, date(2025, 10, 1), False),
    ("flu-03", WINTER, date(2025, 8, 1), False),
    ("flu-04", WINTER, date(2025, 7, 31), True),
    ("flu-05", SUMMER, date(2025, 10, 1), False),
    ("flu-06", date(2026, 10, 1), date(2025, 10, 5), True),
):
    c = case(
        case_id,
        PV,
        f"As of {as_of}, last influenza vaccine {last}",
        45,
        "female",
        as_of=as_of,
        negative_for=() if positive else ("influenza-season",),
    )
    c.vaccine("140", "Influenza, seasonal, injectable, preservative free", last)
    if positive:
        c.find(
            "influenza-season",
            "care-gap",
            "info",
            "No influenza vaccine this season",
            "Annual influenza vaccination is recommended for everyone 6 months and older; none is recorded "
            "since the current season's vaccine became available (1 August).",
            "flu",
        )

# --- nothing to say ---------------------------------------------------------------------------------------------------
c = case("quiet-01", PV, "Hypothyroidism on levothyroxine", 35, "female")
c.cond("hypothyroidism")
c.rx("levothyroxine")
c = case("quiet-02", PV, "Hypertension controlled on lisinopril with normal labs", 45, "male")
c.cond("hypertension")
c.rx("lisinopril")
c.bp(126, 78, 10)
c.lab("potassium", 4.4, 60)
c.lab("creatinine", 0.9, 60)
c.lab("egfr", 98, 60)
c = case(
    "quiet-03",
    PV,
    "Allergic rhinitis on cetirizine, acetaminophen taken as needed (MedicationStatement)",
    28,
    "female",
)
c.cond("allergic-rhinitis")
c.rx("cetirizine")
c.statement("acetaminophen", per=None, prn=True)
c = case("quiet-04", PV, "Hyperlipidaemia on atorvastatin 20 mg", 52, "male")
c.cond("hyperlipidaemia")
c.rx("atorvastatin")
c = case("quiet-05", PV, "Mild asthma on fluticasone with albuterol as needed", 40, "female")
c.cond("asthma")
c.rx("fluticasone", dose=2, per=2)
c.rx("albuterol", per=None, prn=True)
c = case("quiet-06", OS, "Amoxicillin ordered for sinusitis in a healthy adult", 30, "male")
c.cond("sinusitis", 3)
c.draft("amoxicillin", per=3)
c.statement("loratadine")

CHECKS: dict[str, str] = {
    "qt-combination": "two QT-prolonging drugs; worse (critical) with potassium < 3.5 mmol/L or Mg < 1.8 mg/dL",
    "opioid-benzodiazepine": "an opioid with a benzodiazepine",
    "opioid-naloxone": "no naloxone at >= 50 MME/day, after an overdose, or with a benzodiazepine",
    "opioid-duplicate": "two opioids at once (a combination product counts once)",
    "opioid-gabapentinoid": "an opioid with gabapentin or pregabalin",
    "serotonergic-opioid-ssri": "tramadol, methadone, fentanyl or meperidine with an SSRI/SNRI",
    "amiodarone-warfarin": "amiodarone with warfarin",
    "amiodarone-digoxin": "amiodarone with digoxin",
    "amiodarone-simvastatin": "simvastatin above 20 mg/day with amiodarone",
    "warfarin-tmp-smx": "warfarin with sulfamethoxazole/trimethoprim",
    "warfarin-metronidazole": "warfarin with systemic metronidazole",
    "statin-cyp3a4": "a CYP3A4-cleared statin with a strong CYP3A4 inhibitor (atorvastatin above 20 mg)",
    "simvastatin-dose-cap": "simvastatin above 20 mg with amlodipine, or 80 mg started new",
    "renal-dose-crcl": "dose or drug against CrCl (Cockcroft-Gault) or eGFR (CKD-EPI 2021 when only "
    "creatinine is recorded)",
    "aki-nephrotoxin": "KDIGO AKI (creatinine +0.3 mg/dL in 48 h or 1.5 x in 7 days) on a nephrotoxin",
    "potassium-before-k-raising": "an MRA, potassium supplement or K-sparing diuretic ordered with K >= 5.0",
    "methotrexate-weekly-dose": "methotrexate ordered with a daily frequency",
    "methotrexate-monitoring": "methotrexate without CBC, creatinine and ALT in about 3 months",
    "methotrexate-folic-acid": "methotrexate without folic acid",
    "hypoglycaemia-risk": "insulin/sulfonylurea with glucose < 70 mg/dL, or HbA1c < 6.0% at 65 or over",
    "paediatric-weight-dose": "a child's dose outside the weight-based range",
    "phansalkar-contraindicated": "a contraindicated pair from Phansalkar et al. 2012",
    "digoxin-monitoring": "digoxin without a recent potassium, renal function or level",
    "asthma-nonselective-beta-blocker": "a non-selective beta-blocker in asthma",
    "asthma-laba-without-ics": "a LABA without an inhaled corticosteroid in asthma",
    "nsaid-pregnancy-20-weeks": "an NSAID (not low-dose aspirin) at 20 weeks of pregnancy or later",
    "beers-cns-burden": "three or more CNS-active drugs at 65 or over",
    "bp-uncontrolled": "latest blood pressure >= 140/90 on antihypertensive treatment",
    "low-dose-aspirin-not-nsaid": "low-dose aspirin with ibuprofen is an antiplatelet interaction, never an "
    "NSAID duplication",
    "medication-unresolved": "a medication whose code and text resolve to no known drug",
    "allergy-abbreviation": "a free-text allergy abbreviation (PCN, sulfa, ASA) against an order",
    "environmental-allergy-not-food": "environmental allergies raise no drug or food alert; only what they "
    "themselves warrant (e.g. epinephrine after venom anaphylaxis)",
    "stale-lab-recheck": "a monitoring lab over a year old: recheck, not a dosing card",
    "influenza-season": "no influenza vaccine since 1 August during October-March",
}

METHOD = (
    "Constructed charts written as a clinical pharmacist's teaching cases, each set up around one check "
    "(or its near miss or threshold boundary), before and independently of the product's rules: the author "
    "did not read the rule catalogue, knowledge entries or rule tests, and names no rule id (check_rules.json "
    "maps checks to rules afterwards). Findings are what the pharmacist would say about the chart at as_of; "
    "severities are the pharmacist's. Charts are focused: a finding outside the set-up is recorded where the "
    "pharmacist would raise it (e.g. naloxone with a benzodiazepine), and out-of-season immunisations are not "
    "reviewed. Patient-view cases are dated 2026-06-15 (outside influenza season) unless the case is about "
    "the season. Pregnancy conditions are dated from the last menstrual period. CrCl is Cockcroft-Gault with "
    "actual body weight (no case's weight exceeds its ideal body weight where a height is given); eGFR is "
    "CKD-EPI 2021. MedicationStatements are patient-reported medicines; CHART_PREFETCH does not ask for them."
)


def code_review() -> list[JsonDict]:
    rows = [
        {
            "system": "rxnorm",
            "code": d.code,
            "display": d.display,
            "note": "SCD code from memory; verify in RxNav",
        }
        for d in DRUGS.values()
        if d.unsure
    ]
    rows += [
        {
            "system": "snomed",
            "code": PROBLEMS[k][0],
            "display": PROBLEMS[k][1],
            "note": "concept id from memory",
        }
        for k in sorted(UNSURE_PROBLEMS)
    ]
    rows.append(
        {
            "system": "rxnorm",
            "code": "856980",
            "display": DRUGS["hydrocodone-apap"].display,
            "note": "the brief names 856980 as hydrocodone/acetaminophen; the 10 MG strength is the author's "
            "recollection, and the 50 MME boundary case (naloxone-01) depends on it",
        }
    )
    rows.append(
        {
            "system": "rxnorm",
            "code": "5856/253182",
            "display": "insulin isophane, human / insulin regular, human",
            "note": "ingredient codes of Humulin 70/30 from memory",
        }
    )
    return rows


def document() -> JsonDict:
    return {
        "version": 1,
        "written": "2026-12-07",
        "method": METHOD,
        "families": {
            "interaction": "drug-drug interaction",
            "renal": "dose or drug choice against renal function",
            "monitoring": "a drug's monitoring lab missing or stale",
            "allergy": "drug against a recorded allergy",
            "duplicate": "therapeutic duplication",
            "pregnancy": "pregnancy-specific drug issue",
            "paediatric": "dose or product unsuitable for a child's age/weight",
            "older-adult": "Beers-type issue in an adult 65 or over",
            "care-gap": "missing preventive or indicated therapy, vaccine, test or control",
            "other": "any other drug-disease or drug-choice issue",
        },
        "severities": {
            "critical": "act before the next dose",
            "warning": "review soon",
            "info": "worth knowing",
        },
        "checks": CHECKS,
        "cases": [c.done() for c in CASES],
        "code_review": code_review(),
    }


def main() -> int:
    payload = orjson.dumps(document(), option=orjson.OPT_INDENT_2) + b"\n"
    ConstructedSet.model_validate_json(payload)  # never write a file the loader would reject
    Path(CONSTRUCTED_PATH).write_bytes(payload)
    print(f"wrote {len(CASES)} cases to {CONSTRUCTED_PATH.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
