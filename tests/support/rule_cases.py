"""Small FHIR charts for the rule tests, dated relative to the fixed NOW and coded as EHRs send them."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import orjson

from plugin.context.build import build_context
from plugin.context.model import BuiltContext
from plugin.knowledge import load_knowledge_base
from plugin.rules.model import Finding, RuleFacts, Severity
from tests.support.charts import (
    BASE_URL,
    LOINC,
    NOW,
    SNOMED,
    UCUM,
    JsonDict,
    copy_json,
    draft_orders,
    medication_request,
)
from tests.support.fixtures_paths import SHARED_FIXTURES, require_shared_fixtures

TODAY = NOW.date()
PATIENT_ID = "rule-case"
R4_EXAMPLES = SHARED_FIXTURES / "fhir-examples" / "r4-spec"
CVX = "http://hl7.org/fhir/sid/cvx"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"

# RxNorm clinical drugs (code, display) the way EHR prescriptions carry them.
DRUGS: dict[str, tuple[str, str]] = {
    "acetaminophen": ("313782", "Acetaminophen 325 MG Oral Tablet"),
    # The interaction table's pairs (knowledge/interaction_pairs.json); several resolve by their display.
    "tacrolimus": ("42316", "tacrolimus 1 MG Oral Capsule"),
    "rifampin": ("198202", "Rifampin 300 MG Oral Capsule"),
    "st-johns-wort": ("258326", "St. John's Wort 300 MG Oral Capsule"),
    "ritonavir": ("85762", "ritonavir 100 MG Oral Tablet"),
    "fluticasone-nasal": ("41126", "fluticasone propionate 0.05 MG/ACTUAT Nasal Spray"),
    "dolutegravir": ("1433868", "dolutegravir 50 MG Oral Tablet"),
    "sofosbuvir-velpatasvir": ("", "sofosbuvir 400 MG / velpatasvir 100 MG Oral Tablet (Epclusa)"),
    "pantoprazole": ("", "pantoprazole sodium 40 MG Delayed Release Oral Tablet"),
    "calcium-carbonate": ("1897", "calcium carbonate 500 MG Chewable Tablet"),
    "famotidine": ("4083", "famotidine 20 MG Oral Tablet"),
    "omeprazole": ("7646", "omeprazole 20 MG Delayed Release Oral Capsule"),
    "odefsey": (
        "",
        "Odefsey (emtricitabine 200 mg / rilpivirine 25 mg / tenofovir alafenamide 25 mg) oral tablet",
    ),
    "sitagliptin": ("593411", "sitagliptin 100 MG Oral Tablet"),
    "semaglutide": ("1991302", "semaglutide 1 MG/DOSE pen injector"),
    "clozapine": ("2626", "clozapine 100 MG Oral Tablet"),
    "isoniazid": ("6038", "isoniazid 300 MG Oral Tablet"),
    "methimazole": ("6835", "methimazole 10 MG Oral Tablet"),
    "torsemide": ("38413", "torsemide 20 MG Oral Tablet"),
    "lecanemab": ("", "Leqembi (lecanemab-irmb) 100 MG/ML Injection"),
    "aliskiren": ("325646", "aliskiren 150 MG Oral Tablet"),
    "tiotropium": ("69120", "tiotropium 18 MCG Inhalation Capsule"),
    "duoneb": ("", "DuoNeb (ipratropium bromide 0.5 MG / albuterol 3 MG per 3 ML) Inhalation Solution"),
    "estradiol-oral": ("4083", "estradiol 1 MG Oral Tablet"),
    "estradiol-vaginal-cream": ("4083", "estradiol 0.1 MG/GM Vaginal Cream"),
    "epclusa": ("", "Epclusa (sofosbuvir 400 mg / velpatasvir 100 mg) oral tablet"),
    "naltrexone": ("7243", "naltrexone hydrochloride 50 MG Oral Tablet"),
    "disulfiram": ("3554", "disulfiram 250 MG Oral Tablet"),
    "metronidazole": ("6922", "metronidazole 500 MG Oral Tablet"),
    "metronidazole-gel": ("6922", "metronidazole 0.75 % Topical Gel"),
    "tranexamic-acid": ("", "Lysteda (tranexamic acid 650 MG Oral Tablet)"),
    "pyridoxine": ("9173", "pyridoxine hydrochloride 50 MG Oral Tablet"),
    "carvedilol": ("20352", "carvedilol 25 MG Oral Tablet"),
    "metoprolol-tartrate": ("6918", "metoprolol tartrate 50 MG Oral Tablet"),
    "dapagliflozin": ("1488564", "dapagliflozin 10 MG Oral Tablet"),
    "nicotine-patch": ("7407", "nicotine 21 MG/24HR Transdermal System"),
    "lamotrigine": ("28439", "lamotrigine 100 MG Oral Tablet"),
    "levonorgestrel-ee": ("748879", "Levonorgestrel 0.15 MG / Ethinyl Estradiol 0.03 MG Oral Tablet"),
    "norethindrone": ("198042", "norethindrone 0.35 MG Oral Tablet"),
    "isotretinoin": ("6064", "isotretinoin 40 MG Oral Capsule"),
    "doxycycline": ("3640", "doxycycline hyclate 100 MG Oral Tablet"),
    "tamoxifen": ("10324", "tamoxifen 20 MG Oral Tablet"),
    "bupropion": ("42347", "bupropion hydrochloride 150 MG Extended Release Oral Tablet"),
    "venlafaxine": ("11124", "venlafaxine 75 MG Oral Tablet"),
    "theophylline": ("10438", "theophylline 300 MG Extended Release Oral Tablet"),
    "colchicine": ("2683", "colchicine 0.6 MG Oral Tablet"),
    "gemfibrozil": ("4719", "gemfibrozil 600 MG Oral Tablet"),
    "fenofibrate": ("8703", "fenofibrate 145 MG Oral Tablet"),
    "meropenem": ("29561", "meropenem 1000 MG Injection"),
    "valproate": ("40254", "valproic acid 250 MG Oral Capsule"),
    "ticagrelor": ("1116632", "ticagrelor 90 MG Oral Tablet"),
    "quetiapine": ("51272", "quetiapine 100 MG Oral Tablet"),
    "dofetilide": ("49247", "dofetilide 0.5 MG Oral Capsule"),
    "metoclopramide": ("6915", "metoclopramide 10 MG Oral Tablet"),
    "haloperidol": ("5093", "haloperidol 5 MG Oral Tablet"),
    "ondansetron": ("26225", "ondansetron 4 MG Oral Tablet"),
    "carbamazepine": ("2002", "carbamazepine 200 MG Oral Tablet"),
    "ketoconazole-cream": ("6135", "ketoconazole 2 % Topical Cream"),
    "albuterol": ("745679", "200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"),
    "amiodarone": ("833528", "amiodarone hydrochloride 200 MG Oral Tablet"),
    "amlodipine": ("197361", "Amlodipine 5 MG Oral Tablet"),
    "amlodipine-10": ("308135", "amLODIPine 10 MG Oral Tablet"),
    "amoxicillin": ("308191", "Amoxicillin 500 MG Oral Capsule"),
    "apixaban": ("1364445", "apixaban 5 MG Oral Tablet"),
    "atorvastatin": ("617310", "atorvastatin 20 MG Oral Tablet"),
    "atorvastatin-40": ("617311", "atorvastatin 40 MG Oral Tablet"),
    "aspirin": ("243670", "aspirin 81 MG Oral Tablet"),
    "azithromycin": ("308460", "Azithromycin 250 MG Oral Tablet"),
    "cefuroxime": ("309097", "Cefuroxime axetil 250 MG Oral Tablet"),
    "celecoxib": ("205323", "celecoxib 200 MG Oral Capsule"),
    "ciprofloxacin": ("197511", "Ciprofloxacin 500 MG Oral Tablet"),
    "clarithromycin": ("197517", "clarithromycin 500 MG Oral Tablet"),
    "clopidogrel": ("309362", "Clopidogrel 75 MG Oral Tablet"),
    "codeine": ("993781", "Acetaminophen 300 MG / Codeine Phosphate 30 MG Oral Tablet"),
    "co-trimoxazole": ("198335", "Sulfamethoxazole 800 MG / Trimethoprim 160 MG Oral Tablet"),
    "digoxin": ("197604", "Digoxin 0.125 MG Oral Tablet"),
    "enoxaparin": ("67108", "Enoxaparin"),  # ingredient-level codes: no strength to read
    "gabapentin": ("25480", "Gabapentin"),
    "epinephrine-0.15": ("727316", "0.3 ML EPINEPHrine 0.5 MG/ML Auto-Injector"),  # 0.15 mg (EpiPen Jr)
    # As Synthea codes it, application number first.
    "epinephrine-0.3": ("1870230", "NDA020800 0.3 ML Epinephrine 1 MG/ML Auto-Injector"),
    "diphenhydramine": ("1049630", "diphenhydrAMINE Hydrochloride 25 MG Oral Tablet"),
    "fluconazole": ("197698", "Fluconazole 150 MG Oral Tablet"),
    "fluticasone": ("895994", "120 ACTUAT Fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler"),
    "furosemide": ("310429", "Furosemide 20 MG Oral Tablet"),
    "furosemide-iv": ("1719286", "10 ML Furosemide 10 MG/ML Injection"),
    "hydrocortisone": ("197787", "Hydrocortisone 10 MG Oral Tablet"),
    "hydrocortisone-cream": ("106258", "Hydrocortisone 10 MG/ML Topical Cream"),
    "hydrochlorothiazide": ("310798", "Hydrochlorothiazide 25 MG Oral Tablet"),
    "ibuprofen": ("197806", "Ibuprofen 600 MG Oral Tablet"),
    "ketoconazole": ("197985", "Ketoconazole 200 MG Oral Tablet"),
    "linezolid": ("360206", "linezolid 600 MG Oral Tablet"),
    "lisinopril": ("314076", "lisinopril 10 MG Oral Tablet"),
    "loratadine": ("311372", "Loratadine 10 MG Oral Tablet"),
    "lovastatin": ("197904", "Lovastatin 20 MG Oral Tablet"),
    "lorazepam": ("197901", "Lorazepam 1 MG Oral Tablet"),
    "losartan": ("979485", "losartan potassium 50 MG Oral Tablet"),
    "metformin": ("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    "methotrexate": ("105585", "Methotrexate 2.5 MG Oral Tablet"),
    "naproxen": ("198014", "Naproxen 500 MG Oral Tablet"),
    "naproxen-sodium": ("849574", "Naproxen sodium 220 MG Oral Tablet"),
    "nitrofurantoin": ("311989", "Nitrofurantoin 5 MG/ML Oral Suspension"),
    "nystatin": ("312558", "Nystatin 100000 UNT/ML Oral Suspension"),
    "oxycodone": ("1049621", "Oxycodone Hydrochloride 5 MG Oral Tablet"),
    "oxycodone-apap": ("1049221", "Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG Oral Tablet"),
    "potassium-chloride": ("628958", "Potassium Chloride 20 MEQ Extended Release Oral Tablet"),
    "metoprolol": ("866414", "24 HR metoprolol succinate 100 MG Extended Release Oral Tablet [Toprol]"),
    "sertraline": ("312940", "sertraline 50 MG Oral Tablet"),
    "simvastatin": ("36567", "Simvastatin"),  # an ingredient-level code: no strength to read
    "simvastatin-10": ("316672", "Simvastatin 10 MG Oral Tablet"),
    "simvastatin-20": ("312961", "Simvastatin 20 MG Oral Tablet"),
    "simvastatin-40": ("198211", "Simvastatin 40 MG Oral Tablet"),
    "simvastatin-80": ("200345", "Simvastatin 80 MG Oral Tablet"),
    "spironolactone": ("313096", "spironolactone 25 MG Oral Tablet"),
    "terfenadine": ("141918", "Terfenadine 60 MG Oral Tablet"),
    "tramadol": ("835603", "tramadol hydrochloride 50 MG Oral Tablet"),
    "trazodone": ("856377", "trazodone hydrochloride 50 MG Oral Tablet"),
    "verapamil": ("897718", "Verapamil Hydrochloride 40 MG"),
    "warfarin": ("855332", "Warfarin Sodium 5 MG Oral Tablet"),
    # Monitoring, drug-disease and care-gap rules (plugin.rules.monitoring).
    "alprazolam": ("308047", "Alprazolam 0.25mg Oral Tablet"),  # as a Synthea chart spells it
    "contraceptive-patch": (
        "1534809",
        "168 HR Ethinyl Estradiol 0.00146 MG/HR / norelgestromin 0.00625 MG/HR Transdermal System",
    ),
    "cyclobenzaprine": ("828348", "cyclobenzaprine hydrochloride 10 MG Oral Tablet"),
    "fluticasone-salmeterol": (
        "896209",
        "60 ACTUAT Fluticasone propionate 0.25 MG/ACTUAT / salmeterol 0.05 MG/ACTUAT Dry Powder Inhaler",
    ),
    "folic-acid": ("310410", "folic acid 1 MG Oral Tablet"),
    "glipizide": ("310488", "glipiZIDE 5 MG Oral Tablet"),
    "insulin": (
        "106892",
        "insulin human, isophane 70 UNT/ML / Regular Insulin, Human 30 UNT/ML Injectable Suspension [Humulin]",
    ),
    "levothyroxine": ("966222", "Levothyroxine Sodium 0.075 MG Oral Tablet"),
    "propranolol": ("856519", "propranolol hydrochloride 40 MG Oral Tablet"),
    "salmeterol": ("36117", "Salmeterol"),  # an ingredient-level code
    # Specialty drugs of the held-out v14 charts, by name only (their RxNorm codes are not verified here).
    "dasatinib": ("", "Sprycel (dasatinib) 100 MG Oral Tablet"),
    "apomorphine": ("", "Apokyn (apomorphine hydrochloride 30 mg/3 mL) pen"),
    "trimethobenzamide": ("", "trimethobenzamide 300 MG Oral Capsule"),
    "ertapenem": ("", "ertapenem 1 GM Injection"),
    "ceftriaxone": ("", "ceftriaxone 1 GM Injection"),
    "cefoxitin": ("", "cefoxitin 2 GM Injection"),
    "daptomycin": ("", "daptomycin 500 MG Injection"),
    "rivaroxaban": ("", "rivaroxaban 20 MG Oral Tablet (Xarelto)"),
    "phenytoin": ("", "phenytoin sodium extended 100 MG Oral Capsule"),
    "levetiracetam": ("", "levetiracetam 500 MG Oral Tablet"),
    "methadone": ("", "methadone hydrochloride 10 MG Oral Tablet"),
    "buprenorphine-naloxone": ("", "buprenorphine 8 MG / naloxone 2 MG Sublingual Film"),
    "sodium-oxybate": ("", "sodium oxybate 500 MG/ML Oral Solution (Xyrem)"),
    "zolpidem": ("", "zolpidem tartrate 5 MG Oral Tablet"),
    "ramelteon": ("", "ramelteon 8 MG Oral Tablet"),
    "nafcillin": ("", "nafcillin 2 GM Injection"),
    "bictegravir": (
        "",
        "Biktarvy (bictegravir 50 MG / emtricitabine 200 MG / tenofovir alafenamide 25 MG) Oral Tablet",
    ),
    "glecaprevir-pibrentasvir": ("", "Mavyret (glecaprevir 100 mg / pibrentasvir 40 mg) tablet"),
    "rosuvastatin": ("", "rosuvastatin 10 MG Oral Tablet"),
    "divalproex": ("", "divalproex sodium 500 MG Delayed Release Oral Tablet"),
    "dimethyl-fumarate": ("", "Tecfidera (dimethyl fumarate) 240 mg delayed-release capsule"),
    "lenalidomide": ("", "Revlimid (lenalidomide) 25 MG Oral Capsule"),
    "dexamethasone": ("", "dexamethasone 4 MG Oral Tablet"),
    "prednisone": ("", "predniSONE 5 MG Oral Tablet"),
    "triumeq": ("", "Triumeq (abacavir 600 mg / dolutegravir 50 mg / lamivudine 300 mg) tablet"),
    "biktarvy": ("", "Biktarvy (bictegravir / emtricitabine / tenofovir alafenamide) tablet"),
    "rituximab": ("", "riTUXimab 10 MG/ML Injectable Solution"),
    "entecavir": ("", "entecavir 0.5 MG Oral Tablet (Baraclude)"),
    "allopurinol": ("", "allopurinol 100 MG Oral Tablet"),
    # Interaction-table pairs of 2026-12-09 and their near-misses, by name only (codes not verified here).
    "ivabradine": ("", "ivabradine 5 MG Oral Tablet"),
    "eplerenone": ("", "eplerenone 25 MG Oral Tablet"),
    "dronedarone": ("", "dronedarone 400 MG Oral Tablet"),
    "dabigatran": ("", "dabigatran etexilate 150 MG Oral Capsule (Pradaxa)"),
    "ranolazine": ("", "ranolazine 500 MG Extended Release Oral Tablet"),
    "lurasidone": ("", "lurasidone hydrochloride 40 MG Oral Tablet"),
    "alfuzosin": ("", "alfuzosin hydrochloride 10 MG Extended Release Oral Tablet"),
    "tamsulosin": ("", "tamsulosin hydrochloride 0.4 MG Oral Capsule"),
    "suvorexant": ("", "Belsomra (suvorexant) 10 MG Oral Tablet"),
    "triazolam": ("", "triazolam 0.25 MG Oral Tablet"),
    "morphine": ("", "morphine sulfate 15 MG Oral Tablet"),
    "paroxetine": ("", "paroxetine 20 MG Oral Tablet"),
    "efavirenz": ("", "efavirenz 600 MG Oral Tablet"),
    "rifabutin": ("", "rifabutin 150 MG Oral Capsule"),
    "pimozide": ("", "pimozide 2 MG Oral Tablet"),
    "thioridazine": ("", "thioridazine hydrochloride 25 MG Oral Tablet"),
    "voriconazole": ("", "voriconazole 200 MG Oral Tablet"),
    "tolvaptan": ("", "tolvaptan 15 MG Oral Tablet"),
    "sildenafil": ("", "sildenafil 50 MG Oral Tablet"),
    "diltiazem": ("", "diltiazem hydrochloride 120 MG Extended Release Oral Capsule"),
    "ibrutinib": ("", "ibrutinib 420 MG Oral Tablet"),
    "tmp-smx": ("", "sulfamethoxazole 800 MG / trimethoprim 160 MG Oral Tablet"),
    "lybalvi": ("", "olanzapine 10 MG / samidorphan 10 MG Oral Tablet"),
    "dextromethorphan-guaifenesin": (
        "",
        "dextromethorphan HBr 5 MG / guaifenesin 100 MG per 5 ML Oral Solution",
    ),
    "olanzapine": ("", "olanzapine 10 MG Oral Tablet"),
    "cabenuva": ("", "cabotegravir 600 MG / rilpivirine 900 MG Extended Release Injectable Suspension"),
    "oxcarbazepine": ("", "oxcarbazepine 300 MG Oral Tablet"),
    "eletriptan": ("", "eletriptan 40 MG Oral Tablet"),
    "sumatriptan": ("", "sumatriptan 50 MG Oral Tablet"),
    "naloxegol": ("", "naloxegol 25 MG Oral Tablet"),
    "adalimumab": ("", "adalimumab 40 MG/0.4ML Prefilled Syringe (Humira)"),
    "atomoxetine": ("", "atomoxetine 40 MG Oral Capsule (Strattera)"),
    "fluoxetine": ("", "fluoxetine 20 MG Oral Capsule"),
    "levonorgestrel-ethinyl-estradiol": (
        "",
        "levonorgestrel 0.15 MG / ethinyl estradiol 0.03 MG Oral Tablet",
    ),
}

# SNOMED CT problems (code, display) as Synthea and most EHR problem lists code them.
PROBLEMS: dict[str, tuple[str, str]] = {
    "asthma": ("195967001", "Asthma"),
    "ckd-3": ("433144002", "Chronic kidney disease stage 3 (disorder)"),
    "diabetes": ("44054006", "Diabetes mellitus type 2 (disorder)"),
    "diabetic-kidney-disease": ("127013003", "Diabetic renal disease (disorder)"),
    "heart-failure": ("88805009", "Chronic congestive heart failure (disorder)"),
    "hypertension": ("38341003", "Hypertension"),
    "pregnancy": ("72892002", "Normal pregnancy"),
    "migraine": ("37796009", "Migraine (disorder)"),
    "migraine-with-aura": ("4473006", "Migraine with aura (disorder)"),
    "migraine-without-aura": ("56097005", "Migraine without aura (disorder)"),
    "myocardial-infarction": ("22298006", "Myocardial infarction (disorder)"),
    "ischaemic-stroke": ("422504002", "Ischemic stroke (disorder)"),
    "stroke-untyped": ("230690007", "Cerebrovascular accident (disorder)"),
    "peripheral-arterial-disease": ("840580004", "Peripheral arterial disease (disorder)"),
    "cirrhosis": ("19943007", "Cirrhosis of liver (disorder)"),
    "sickle-cell-disease": ("127040003", "Sickle cell-hemoglobin SS disease (disorder)"),
    "gout": ("90560007", "Gout (disorder)"),
    "aortic-aneurysm": ("233985008", "Abdominal aortic aneurysm (disorder)"),
    "deep-vein-thrombosis": ("128053003", "Deep venous thrombosis (disorder)"),
    "bph": ("266569009", "Benign prostatic hyperplasia (disorder)"),
    "atrial-fibrillation": ("49436004", "Atrial fibrillation (disorder)"),
    "g6pd-deficiency": ("62403005", "Glucose-6-phosphate dehydrogenase deficiency anemia (disorder)"),
    "angle-closure-glaucoma": ("392291006", "Angle-closure glaucoma (disorder)"),
    "bipolar-i": ("371596008", "Bipolar I disorder (disorder)"),
    "pulmonary-embolism": ("59282003", "Pulmonary embolism (disorder)"),
    "asplenia": ("707147002", "Asplenia (disorder)"),
    "hiv": ("86406008", "Human immunodeficiency virus infection (disorder)"),
    "hfref": ("703272007", "Heart failure with reduced ejection fraction (disorder)"),
    "type-1-diabetes": ("46635009", "Diabetes mellitus type 1 (disorder)"),
    "crohns-disease": ("34000006", "Crohn's disease (disorder)"),
    "multiple-myeloma": ("109989006", "Multiple myeloma (disorder)"),
    "lewy-body-dementia": ("80098002", "Diffuse Lewy body disease (disorder)"),
    "lactation": ("413712001", "Breastfeeding (mother) (finding)"),
    "suicide-attempt": ("82313006", "Suicide attempt (event)"),
    "psoriasis": ("9014002", "Psoriasis (disorder)"),
    "medullary-thyroid-cancer": ("255032005", "Medullary carcinoma of thyroid (disorder)"),
    "pyelonephritis": ("36689008", "Acute pyelonephritis (disorder)"),
    "cystitis": ("38822007", "Cystitis (disorder)"),
    "postpartum-state": ("86569001", "Postpartum state (finding)"),
}

# LOINC lab codes (code, display, UCUM unit).
LABS: dict[str, tuple[str, str, str]] = {
    "egfr": (
        "33914-3",
        "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum or Plasma by Creatinine-based formula (MDRD)",
        "mL/min/{1.73_m2}",
    ),
    "potassium": ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L"),
    "sodium": ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L"),
    "magnesium": ("19123-9", "Magnesium [Mass/volume] in Serum or Plasma", "mg/dL"),
    "creatinine": ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL"),
    "inr": ("6301-6", "INR in Platelet poor plasma by Coagulation assay", "{INR}"),
    "hba1c": ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%"),
    "weight": ("29463-7", "Body Weight", "kg"),
    "glucose": ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL"),
    "lvef": ("10230-1", "Left ventricular Ejection fraction", "%"),
    "cd4": ("24467-3", "CD3+CD4+ (T4 helper) cells [#/volume] in Blood", "/uL"),
    "neutrophils": ("751-8", "Neutrophils [#/volume] in Blood by Automated count", "10*3/uL"),
    "lymphocytes": ("731-0", "Lymphocytes [#/volume] in Blood by Automated count", "10*3/uL"),
    "digoxin": ("10535-3", "Digoxin [Mass/volume] in Serum or Plasma", "ng/mL"),
    "tsh": ("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "m[IU]/L"),
    "hemoglobin": ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL"),
    "hematocrit": ("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "%"),
    "vitamin_b12": ("2132-9", "Cobalamin (Vitamin B12) [Mass/volume] in Serum or Plasma", "pg/mL"),
    "platelets": ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL"),
    "leukocytes": ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL"),
    "urate": ("3084-1", "Urate [Mass/volume] in Serum or Plasma", "mg/dL"),
    "alt": ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L"),
    "ldl": ("13457-7", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation", "mg/dL"),
    "uacr": ("9318-7", "Albumin/Creatinine [Mass Ratio] in Urine", "mg/g"),
    "systolic_bp": ("8480-6", "Systolic blood pressure", "mm[Hg]"),
    "diastolic_bp": ("8462-4", "Diastolic blood pressure", "mm[Hg]"),
}
VITALS = frozenset(
    {"weight", "systolic_bp", "diastolic_bp"}
)  # sent with the vital-signs category, as EHRs and Synthea do

VACCINES: dict[str, tuple[str, str]] = {
    "influenza": ("140", "Influenza, seasonal, injectable, preservative free"),
    "pneumococcal": ("133", "Pneumococcal conjugate PCV 13"),
    "zoster-recombinant": ("187", "zoster vaccine recombinant"),
    "zoster-live": ("121", "zoster live"),
    "td": ("113", "Td (adult) preservative free"),
    "tdap": ("115", "Tdap"),
    "rsv": ("305", "RSV vaccine, adjuvanted"),
    "menacwy": (
        "203",
        "meningococcal polysaccharide (groups A, C, Y, W-135) tetanus toxoid conjugate vaccine",
    ),
    "menb": ("163", "meningococcal B vaccine, recombinant, OMV, adjuvanted"),
    "hib": ("48", "Hib (PRP-T)"),
    "hepatitis-b": ("189", "Hepatitis B vaccine (recombinant), adjuvanted (Heplisav-B)"),
    "hepatitis-a": ("52", "Hepatitis A vaccine, adult dosage (Havrix)"),
    "ppsv23": ("33", "pneumococcal polysaccharide PPV23"),
    "mmr": ("03", "measles, mumps and rubella virus vaccine"),
    "varicella": ("21", "varicella virus vaccine"),
    "mmrv": ("94", "measles, mumps, rubella, and varicella virus vaccine"),
}

_PREFETCH_KEY = {
    "Condition": "conditions",
    "MedicationRequest": "medications",
    "MedicationStatement": "medications",
    "AllergyIntolerance": "allergies",
    "Observation": "labs",
    "Immunization": "immunizations",
}


def on(days_ago: int) -> str:
    """The ISO date `days_ago` days before the fixed NOW."""
    return (TODAY - timedelta(days=days_ago)).isoformat()


def born(age: int) -> str:
    """A birth date that makes the patient exactly `age` at NOW (birthday a month ago)."""
    return (date(TODAY.year - age, TODAY.month, TODAY.day) - timedelta(days=30)).isoformat()


def reference(resource: Mapping[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def patient(age: int = 50, gender: str = "female", deceased: bool = False) -> JsonDict:
    resource: JsonDict = {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "gender": gender,
        "birthDate": born(age),
    }
    if deceased:
        resource["deceasedDateTime"] = on(10)
    return resource


def med(drug: str, resource_id: str | None = None, status: str = "active", days_ago: int = 120) -> JsonDict:
    """A current prescription of one of DRUGS (id defaults to the drug key)."""
    rxnorm, display = DRUGS[drug]
    return _text_only_if_uncoded(
        medication_request(
            resource_id or drug, PATIENT_ID, rxnorm, display, status=status, authored=on(days_ago)
        )
    )


def _text_only_if_uncoded(request: JsonDict) -> JsonDict:
    """A DRUGS entry without an RxNorm code is a product the EHR records by its text alone (a brand name)."""
    if not request["medicationCodeableConcept"]["coding"][0]["code"]:
        del request["medicationCodeableConcept"]["coding"]
    return request


def draft(drug: str, resource_id: str | None = None) -> JsonDict:
    """A draft order of one of DRUGS (id defaults to `draft-<drug>`), as order-select/order-sign send it."""
    rxnorm, display = DRUGS[drug]
    return _text_only_if_uncoded(
        medication_request(resource_id or f"draft-{drug}", PATIENT_ID, rxnorm, display, status="draft")
    )


def problem(name: str, resource_id: str | None = None, onset_days_ago: int = 400) -> JsonDict:
    code, display = PROBLEMS[name]
    return {
        "resourceType": "Condition",
        "id": resource_id or name,
        "clinicalStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
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
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "onsetDateTime": on(onset_days_ago),
    }


def named_result(
    resource_id: str, name: str, *, text: str | None = None, quantity: float | None = None, days_ago: int = 10
) -> JsonDict:
    """An Observation known only by its name (a local code), answered in words or as a number."""
    result: JsonDict = {
        "resourceType": "Observation",
        "id": resource_id,
        "status": "final",
        "code": {"text": name},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": on(days_ago),
    }
    if text is not None:
        result["valueString"] = text
    if quantity is not None:
        result["valueQuantity"] = {"value": quantity, "unit": "m[IU]/mL"}
    return result


def lab(analyte: str, value: float, days_ago: int = 7, resource_id: str | None = None) -> JsonDict:
    loinc, display, unit = LABS[analyte]
    return {
        "resourceType": "Observation",
        "id": resource_id or analyte,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": OBSERVATION_CATEGORY,
                        "code": "vital-signs" if analyte in VITALS else "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": loinc, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": f"{on(days_ago)}T09:30:00Z",
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def qualitative(
    name: str, answer: str, days_ago: int = 30, resource_id: str | None = None, loinc: str | None = None
) -> JsonDict:
    """A qualitative lab answer (an HLA allele, hepatitis B serology) named as a lab reports it; `answer` is
    "positive", "negative" or free text, coded with SNOMED CT when it is one of the first two."""
    codes = {"positive": ("10828004", "Positive"), "negative": ("260385009", "Negative")}
    value: JsonDict = (
        {
            "coding": [{"system": SNOMED, "code": codes[answer][0], "display": codes[answer][1]}],
            "text": codes[answer][1],
        }
        if answer in codes
        else {"text": answer}
    )
    code: JsonDict = {"text": name}
    if loinc is not None:
        code["coding"] = [{"system": LOINC, "code": loinc, "display": name}]
    return {
        "resourceType": "Observation",
        "id": resource_id or re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64],
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "laboratory"}]}],
        "code": code,
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": f"{on(days_ago)}T09:30:00Z",
        "valueCodeableConcept": value,
    }


def vaccine(name: str, days_ago: int, resource_id: str | None = None) -> JsonDict:
    cvx, display = VACCINES[name]
    return {
        "resourceType": "Immunization",
        "id": resource_id or name,
        "status": "completed",
        "vaccineCode": {"coding": [{"system": CVX, "code": cvx, "display": display}], "text": display},
        "patient": {"reference": f"Patient/{PATIENT_ID}"},
        "occurrenceDateTime": f"{on(days_ago)}T10:00:00Z",
        "primarySource": True,
    }


@functools.cache
def _r4_example(name: str) -> bytes:
    require_shared_fixtures()
    return (R4_EXAMPLES / name).read_bytes()


def penicillin_allergy(resource_id: str = "penicillin", verification: str | None = None) -> JsonDict:
    """The R4 specification's medication allergy example (Penicillin G, hives), moved onto our patient."""
    allergy: JsonDict = orjson.loads(_r4_example("AllergyIntolerance-medication.json"))
    allergy["id"] = resource_id
    allergy["patient"] = {"reference": f"Patient/{PATIENT_ID}"}
    if verification is not None:
        allergy["verificationStatus"] = {"coding": [{"system": ALLERGY_VERIFICATION, "code": verification}]}
    return allergy


def drug_allergy(resource_id: str, rxnorm: str, display: str) -> JsonDict:
    """A medication AllergyIntolerance shaped like the R4 example, for another substance."""
    allergy = penicillin_allergy(resource_id)
    allergy["code"] = {
        "coding": [
            {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": rxnorm, "display": display}
        ]
    }
    return allergy


def r4_warfarin_request() -> JsonDict:
    """The R4 specification's warfarin prescription (MedicationRequest/medrx0331, contained Medication)."""
    request: JsonDict = orjson.loads(_r4_example("MedicationRequest-medrx0331.json"))
    request["subject"] = {"reference": f"Patient/{PATIENT_ID}"}
    return request


def searchset(resources: list[JsonDict]) -> JsonDict:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {"fullUrl": f"{BASE_URL}/{reference(r)}", "resource": r, "search": {"mode": "match"}}
            for r in resources
        ],
    }


@dataclass(frozen=True)
class Chart:
    """A patient, the chart's resources, and the draft orders of the hook call (if any)."""

    age: int = 50
    gender: str = "female"
    resources: tuple[JsonDict, ...] = ()
    drafts: tuple[JsonDict, ...] = ()
    deceased: bool = False

    def prefetch(self) -> JsonDict:
        grouped: dict[str, list[JsonDict]] = {key: [] for key in _PREFETCH_KEY.values()}
        for resource in self.resources:
            grouped[_PREFETCH_KEY[resource["resourceType"]]].append(copy_json(resource))
        prefetch: JsonDict = {"patient": patient(self.age, self.gender, self.deceased)}
        prefetch.update({key: searchset(items) for key, items in grouped.items()})
        return prefetch

    def draft_orders(self) -> JsonDict | None:
        return draft_orders(*self.drafts) if self.drafts else None

    def build(self) -> BuiltContext:
        return build_context(self.prefetch(), NOW, draft_orders=self.draft_orders())


# --- the case harness both rule tables use -----------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """A finding a case must produce: its rule, severity, evidence, the chart resources it cites and says."""

    rule_id: str
    severity: Severity
    evidence: tuple[str, ...]
    inputs: tuple[JsonDict, ...]  # the chart resources the finding must cite
    proposed: tuple[JsonDict, ...] = ()  # the draft orders it is about
    order_lab: str | None = None  # LOINC of the lab order the card offers
    mentions: tuple[str, ...] = ()  # what the summary must say


@dataclass(frozen=True)
class Case:
    id: str
    rule: Callable[[RuleFacts], Iterator[Finding]]
    chart: Chart
    expected: tuple[Expected, ...] = ()  # empty: a negative case


def references_of(built: BuiltContext, handles: Iterable[str]) -> set[str | None]:
    return {built.handles.resolve(h) for h in handles}


def check_finding(finding: Finding, expected: Expected, built: BuiltContext) -> None:
    """The finding is the expected one, cites exactly the expected resources, and reads as a card should."""
    knowledge = load_knowledge_base()
    assert (finding.rule_id, finding.severity) == (expected.rule_id, expected.severity)
    assert finding.evidence == expected.evidence
    assert all(kb in knowledge for kb in finding.evidence), finding.evidence
    assert references_of(built, finding.inputs) == {reference(r) for r in expected.inputs}
    assert references_of(built, finding.proposed) == {reference(r) for r in expected.proposed}
    assert set(finding.proposed) <= set(finding.inputs)
    assert (finding.order_lab.loinc if finding.order_lab else None) == expected.order_lab
    assert len(finding.summary) < 140 and "consider" in finding.summary.lower(), finding.summary
    assert all(word in finding.summary for word in expected.mentions), finding.summary
    assert finding.explanation.endswith(".") and finding.explanation.count(". ") == 0, finding.explanation
