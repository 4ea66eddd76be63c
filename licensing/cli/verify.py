"""`licensing verify USER…`: every plan's provisioning status against the policy, like
(Get-MsolUser).Licenses.ServiceStatus. Exit 1 when anything is not as the policy says, 3 when a user could not be
checked at all."""

from __future__ import annotations

import argparse

from licensing.adapters.graph.gateway import GraphGateway
from licensing.adapters.policy_file import load_policy
from licensing.cli import verify_render
from licensing.cli.output import problem
from licensing.cli.users import for_each, users_of
from licensing.cli.users_file import UserRow
from licensing.core.admin_plans import against_assignment
from licensing.core.errors import LicensingError, PolicyError
from licensing.core.model import Catalog, ObservedLicense, UserFacts
from licensing.core.planning import DesiredLicense, desired_licenses
from licensing.core.verification import ExpectedLicense, group_failure_verdict, verify_license
from licensing.settings import Settings

EXIT_MISMATCH, EXIT_ERROR = 1, 3


async def verify(args: argparse.Namespace, settings: Settings, graph: GraphGateway) -> int:
    """Every plan's provisioning status against the policy: exit 1 when anything is not as expected."""
    rows = users_of(args)
    catalog = await graph.catalog()
    policy = load_policy(settings.policy_path)

    async def one(row: UserRow) -> verify_render.UserVerification:
        try:
            user = await graph.get_user(row.user)
            rule = policy.rule_for(user.attributes)
            if rule is None:
                raise PolicyError(f"no policy rule matches {user.user_principal_name}; nothing to verify against")
            # What the policy expects, whether or not it could be assigned (no seats is "not as expected").
            expected: dict[str, DesiredLicense] = {
                d.sku_id: d
                for d in desired_licenses(rule, policy, catalog)
                if not user.via_group(d.sku_id) or user.direct(d.sku_id)
            }
            observed = {o.sku_id: o for o in await graph.plan_states(user.id)}
        except LicensingError as exc:
            problem("verify", f"{row.user}: {exc.message}")
            return verify_render.UserVerification(row.user, "", "", (), (), error=exc.message)
        verdicts = tuple(_check(user, d, observed, catalog, rule=rule.name) for d in expected.values())
        others = tuple(o for sku_id, o in observed.items() if sku_id not in expected)
        grouped = frozenset(o.sku_id for o in others if user.via_group(o.sku_id))
        upn = user.user_principal_name
        return verify_render.UserVerification(upn, user.id, rule.name, verdicts, others, grouped=grouped)

    results = await for_each(rows, one, parallel=args.parallel, label="verify")
    verify_render.verifications(results, args.format)
    if any(r.error for r in results):
        return EXIT_ERROR
    return 0 if all(r.as_expected for r in results) else EXIT_MISMATCH


def _expected(desired: DesiredLicense) -> ExpectedLicense:
    return ExpectedLicense(desired.sku_id, desired.part_number, desired.disabled_plan_ids)


def _check(
    user: UserFacts, d: DesiredLicense, observed: dict[str, ObservedLicense], catalog: Catalog, *, rule: str
) -> verify_render.SkuCheck:
    """One expected SKU's verdict; a SKU the user does not hold at all is ``not-assigned`` (the core's "failed"
    is about an assignment that went wrong, and there is none)."""
    if not user.direct(d.sku_id) and (failure := user.group_failure(d.sku_id)):
        return verify_render.SkuCheck.of(group_failure_verdict(_expected(d), failure))
    seen = observed.get(d.sku_id)
    if seen is None and user.direct(d.sku_id) is None:
        disable = "".join(f" --disable {name}" for name in d.disabled_plan_names)
        fix = f"`licensing assign {user.user_principal_name} --sku {d.part_number}{disable}` assigns it"
        reason = f"{d.part_number} is not assigned; rule {rule} gives it ({fix})"
        return verify_render.SkuCheck(d.part_number, d.sku_id, "not-assigned", reason)
    verdict = verify_license(_expected(d), seen, user=user.user_principal_name)
    return verify_render.SkuCheck.of(against_assignment(verdict, d, user, catalog))
