"""The edge's check that a hook call's data is the context's patient's (issue 19; plugin.context.patient).

Prefetch the EHR sent for another patient, or a draft order for another patient, is the EHR's error: the call
is refused with 412 (CDS Hooks 2.0 lets a service answer 412 when its prefetch cannot be used). Data fetched
back from the FHIR server for another patient is refused the same way, saying so: a server that answers a
query for one patient with another's cannot be trusted for the rest of the call, and dropping what it sent
would leave the rules blind to it. Either way nothing of the call reaches a rule or the model, and the
handler's refusal path writes the call's audit record (http_status 412, outcome "error").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cds_hooks.errors import WrongPatient
from cds_hooks.prefetch import is_operation_outcome
from plugin.context import patient

__all__ = ["WrongPatient", "check_patient"]


def check_patient(
    context: Mapping[str, Any],
    provided: Mapping[str, Any] | None,
    resolved: Mapping[str, Mapping[str, Any] | None],
) -> None:
    """Raise WrongPatient when any resource the call would use names another patient than the context's."""
    patient_id = context.get("patientId")
    if not isinstance(patient_id, str):
        return
    provided = provided or {}
    sent = frozenset(
        key
        for key, value in provided.items()
        if isinstance(value, Mapping) and not is_operation_outcome(value)
    )
    drafts = context.get("draftOrders")
    values: dict[str, Mapping[str, Any] | None] = dict(resolved)
    if isinstance(drafts, Mapping):
        values["draftOrders"] = drafts
    by_url = patient.patients_by_url(values)
    foreign = patient.foreign_resources(values, patient_id, by_url=by_url)
    if not foreign:
        return
    from_ehr = tuple(f for f in foreign if f.source in sent or f.source == "draftOrders")
    fetched = tuple(f for f in foreign if f not in from_ehr)
    problems = []
    if from_ehr:
        problems.append(
            f"prefetch or draft orders for a patient other than context.patientId: {patient.describe(from_ehr)}"
        )
    if fetched:
        problems.append(
            "the FHIR server returned resources for a patient other than context.patientId, refused: "
            + patient.describe(fetched)
        )
    raise WrongPatient("; ".join(problems) + "; nothing of this call was used")
