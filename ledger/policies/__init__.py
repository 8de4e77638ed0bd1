"""The versioned appraisal rule sets and the registry that picks one by name.

An appraisal is judged by the policy named in its plan, so replaying an old appraisal never
applies newer rules. POL-1 decides which names a new plan may use.
"""

from __future__ import annotations

from datetime import date

from ledger.errors import RuleViolation
from ledger.policies.basic_2012 import BASIC_2012
from ledger.policies.common import Derivation, Policy
from ledger.policies.ses_2025 import SES_2025

__all__ = [
    "BASIC_2012",
    "POLICIES",
    "POL_1_SES_2025_FROM",
    "SES_2025",
    "Derivation",
    "Policy",
    "get_policy",
    "pol_1_check_policy",
]

POLICIES: dict[str, Policy] = {policy.name: policy for policy in (BASIC_2012, SES_2025)}
#: POL-1: periods starting on or after this day use `ses-2025`.
POL_1_SES_2025_FROM = date(2025, 10, 1)


def get_policy(name: str) -> Policy:
    """The policy called `name`; an unknown name breaks POL-1."""
    try:
        return POLICIES[name]
    except KeyError:
        raise RuleViolation(
            "POL-1", f"{name!r} is not a policy; choose one of {', '.join(POLICIES)}."
        ) from None


def pol_1_check_policy(name: str, period_start: date) -> Policy:
    """POL-1: a period starting on or after Oct 1 2025 uses ses-2025; earlier, either."""
    policy = get_policy(name)
    if period_start >= POL_1_SES_2025_FROM and policy is not SES_2025:
        raise RuleViolation(
            "POL-1",
            f"a period starting {period_start} (on or after {POL_1_SES_2025_FROM}) must use "
            f"{SES_2025.name}, not {name}.",
        )
    return policy
