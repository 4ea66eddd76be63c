"""A large generated tenant for benchmarks: N users, most licensed as the policy says, the rest drifted.

    state, expected = generate_tenant(100_000, drift_fraction=0.10)
    expected["reclaim"]  # ids of disabled users still holding EMS directly

The SKUs are the shipped fixture's (EMS, EMSPREMIUM, INTUNE_EDU, INTUNE_A_D, with their real ids and
plans) with seats for everyone; the fixture's users are not included. Users are ``user000042@...``
with uuid5 ids, so a seed always builds the same tenant. They are judged against the repo's
``licensing-policy.json`` (first matching rule wins)::

    executives   department Executive                          EMSPREMIUM, INTUNE_A disabled
    teachers     department Teachers, company "Contoso School"  INTUNE_EDU (+ companion INTUNE_A_D)
    contractors  employeeType Contractor                       EMS, INTUNE_A and RMS_S_PREMIUM disabled
    everyone     all                                           EMS, INTUNE_A disabled

About ``1 - drift_fraction`` of the users are "ok" (exactly their rule's licenses, held directly, with a
usageLocation); the others are split evenly over DRIFT_KINDS, as far as enough users fit a kind (a kind
about teachers needs teachers). ``expected`` maps every kind to its user ids (ok users are not listed).
"""

from __future__ import annotations

import hashlib
import itertools
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from licensing.dev.tenant.model import Assignment, Sku, User, iso
from licensing.dev.tenant.seed import read_seed, sku_from_json
from licensing.dev.tenant.state import TenantState
from licensing.dev.tenant.strict import Strictness

DRIFT_KINDS = (
    "missing-license",  # no license at all, usageLocation set
    "wrong-disabled-plans",  # the rule's SKU, but another disabled set ([] where the rule disables plans)
    "usage-location-missing",  # no license and no usageLocation
    "reclaim",  # accountEnabled false, still holding its EMS directly
    "group-assigned",  # EMS only through a group (assignedByGroup): to report, not to change
    "companion-missing",  # a teacher with INTUNE_EDU directly but no INTUNE_A_D
    "extra-license",  # an "everyone" user with its EMS right and EMSPREMIUM directly besides
    "provisioning-error",  # the right licenses, one enabled plan pinned to provisioningStatus Error
)
_V = TypeVar("_V")
_DNS = uuid.NAMESPACE_DNS.bytes
DOMAIN = "contoso.onmicrosoft.com"
GROUP_ID = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"ems-all-users.groups.{DOMAIN}"))  # the group of group-assigned
EMS, EMSPREMIUM = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e", "b05e124f-c7cc-45a0-a6aa-8cf78c946968"
INTUNE_EDU, INTUNE_A_D = "d9d89b70-a645-4c24-b041-8d3cb1884ec7", "2b317a4a-77a6-4188-9437-b68a77b4e2c6"
INTUNE_A_PLAN, RMS_S_PREMIUM_PLAN = "c1ec4a95-1f05-45b3-a911-aa3fa01094f5", "6c57d4b6-3b23-47a5-9bc9-69f17b4947b3"
WINDOWS_STORE_PLAN = "a420f25f-a7b3-4ff5-a9d0-5d58f73b537d"

# (value, weight): weights are percentages of the population
_DEPARTMENTS = (
    ("Sales", 18.0),
    ("Engineering", 22.0),
    ("Finance", 8.0),
    ("Marketing", 9.0),
    ("IT", 7.0),
    ("HR", 4.0),
    ("Operations", 12.0),
    ("Support", 12.5),
    ("Legal", 3.0),
    ("Executive", 1.5),
    ("Teachers", 3.0),
)
_EMPLOYEE_TYPES = (("Employee", 86.0), ("Contractor", 12.0), ("Intern", 2.0))
_COUNTRIES = (
    (("United States", "US"), 45.0),
    (("United Kingdom", "GB"), 10.0),
    (("Germany", "DE"), 8.0),
    (("France", "FR"), 6.0),
    (("India", "IN"), 5.0),
    (("Ireland", "IE"), 4.0),
    (("Spain", "ES"), 4.0),
    (("Japan", "JP"), 4.0),
    (("Italy", "IT"), 3.0),
    (("Netherlands", "NL"), 3.0),
    (("Singapore", "SG"), 3.0),
    (("Canada", "CA"), 3.0),
    (("Denmark", "DK"), 2.0),
)
_TITLES = {
    "Sales": ("Account Executive", "Sales Development Representative", "Regional Sales Manager"),
    "Engineering": ("Software Engineer", "Senior Software Engineer", "Engineering Manager", "SRE"),
    "Finance": ("Accountant", "Financial Analyst", "Controller"),
    "Marketing": ("Marketing Specialist", "Content Strategist", "Brand Manager"),
    "IT": ("Service Desk Analyst", "Systems Administrator", "Identity Engineer"),
    "HR": ("HR Business Partner", "Recruiter"),
    "Operations": ("Operations Analyst", "Logistics Coordinator", "Facilities Manager"),
    "Support": ("Support Engineer", "Customer Success Manager"),
    "Legal": ("Counsel", "Paralegal"),
    "Executive": ("Chief Executive Officer", "Chief Financial Officer", "Vice President", "Chief of Staff"),
    "Teachers": ("Teacher", "Head of Year", "Teaching Assistant"),
}
_GIVEN = """Aisha Liam Sofia Noah Mia Lucas Emma Oliver Ava Elijah Amara Mateo Yuki Hiro Priya Arjun Chloe Jack
    Ingrid Lars Fatima Omar Zoe Leo Nina Tom Grace Samuel Rachel Kevin Elena Marco Hannah Felix Ines Diego Mei
    Chen Anya Tariq""".split()  # noqa: SIM905  # a block of names reads better than a list of literals
_SURNAMES = """Khan OBrien Rossi Becker Petrova Garcia Smith Jones Tanaka Sato Patel Sharma Martin Dubois Muller
    Schmidt Nielsen Larsen Hayes Vance Green Okafor Murphy Silva Costa Novak Kowalski Ivanova Chen Wang Kim
    Park Lopez Moreau Fischer Weber Berg Hansen Walsh Byrne""".split()  # noqa: SIM905


@dataclass(frozen=True, slots=True)
class _Rule:
    """One policy rule as the generator needs it: which SKUs, which plans disabled, which plan may error."""

    name: str
    licenses: tuple[tuple[str, list[str]], ...]  # (skuId, disabledPlans) - the lists are shared, never mutated
    error_plan: str  # an enabled plan of the rule's first SKU, for provisioning-error


_RULES = {
    "executives": _Rule("executives", ((EMSPREMIUM, [INTUNE_A_PLAN]),), "RMS_S_PREMIUM"),
    "teachers": _Rule("teachers", ((INTUNE_EDU, []), (INTUNE_A_D, [])), "INTUNE_EDU"),
    "contractors": _Rule("contractors", ((EMS, [INTUNE_A_PLAN, RMS_S_PREMIUM_PLAN]),), "AAD_PREMIUM"),
    "everyone": _Rule("everyone", ((EMS, [INTUNE_A_PLAN]),), "RMS_S_PREMIUM"),
}
# Which rules' users can show each kind; the scarce kinds are handed out first.
_ELIGIBLE = {
    "companion-missing": frozenset({"teachers"}),
    "extra-license": frozenset({"everyone"}),
    "reclaim": frozenset({"everyone", "contractors"}),
    "group-assigned": frozenset({"everyone", "contractors"}),
}
_NO_DISABLED: list[str] = []
_WRONG_FOR_ENABLED_ALL = [WINDOWS_STORE_PLAN]  # "a different set" where the rule disables nothing


def rule_name(department: str | None, company: str | None, employee_type: str | None) -> str:
    """The licensing-policy.json rule a user falls under (first match wins, case-insensitive)."""
    dept, comp, kind = (department or "").casefold(), (company or "").casefold(), (employee_type or "").casefold()
    if dept == "executive":
        return "executives"
    if dept == "teachers" and comp == "contoso school":
        return "teachers"
    if kind == "contractor":
        return "contractors"
    return "everyone"


def generate_tenant(
    n: int,
    *,
    seed: int = 7,
    drift_fraction: float = 0.10,
    clock: Callable[[], float] = time.time,
    provisioning_delay: float = 0.0,
    strictness: Strictness | None = None,
) -> tuple[TenantState, dict[str, list[str]]]:
    """A tenant of ``n`` generated users and ``expected``: drift kind -> ids (see the module docstring).

    Builds 100,000 users in a few seconds: records are built directly (no per-user validation), and the
    disabledPlans lists are shared between users with the same licenses (writes replace them, never mutate).
    """
    if n < 0 or not 0.0 <= drift_fraction <= 1.0:
        raise ValueError("n must be >= 0 and drift_fraction between 0 and 1")
    rng = random.Random(seed)  # noqa: S311  # test data, not cryptography
    departments = _draw(rng, _DEPARTMENTS, n)
    employee_types = _draw(rng, _EMPLOYEE_TYPES, n)
    countries = _draw(rng, _COUNTRIES, n)
    given = rng.choices(_GIVEN, k=n)
    surnames = rng.choices(_SURNAMES, k=n)
    title_picks = rng.choices(range(12), k=n)  # 12: a multiple of every department's number of titles
    companies = ["Contoso School" if d == "Teachers" else "Contoso Ltd" for d in departments]
    rules = [rule_name(d, c, t) for d, c, t in zip(departments, companies, employee_types, strict=True)]
    kinds = _assign_kinds(rng, rules, round(n * drift_fraction))

    now = clock()
    state = TenantState(clock=clock, provisioning_delay=provisioning_delay, strictness=strictness)
    for sku in _skus(n, rules, kinds):
        state.add_sku(sku)
    assigned_at = now - 30 * 86400
    first_day = (now - 400 * 86400) // 86400 * 86400
    days = [iso(first_day + d * 86400)[:10] for d in range(n // 250 + 1)]  # 250 hires a day
    expected: dict[str, list[str]] = {kind: [] for kind in DRIFT_KINDS}
    users: list[User] = []
    for i in range(n):
        upn = f"user{i:06d}@{DOMAIN}"
        department, kind, rule = departments[i], kinds[i], _RULES[rules[i]]
        country, location = countries[i] if department != "Teachers" else ("United States", "US")
        titles = _TITLES[department]
        user = User(
            id=_uuid5(upn),
            user_principal_name=upn,
            display_name=f"{given[i]} {surnames[i]}",
            given_name=given[i],
            surname=surnames[i],
            mail=upn,
            usage_location=None if kind == "usage-location-missing" else location,
            account_enabled=kind != "reclaim",
            department=department,
            job_title=titles[title_picks[i] % len(titles)],
            company_name=companies[i],
            employee_type=employee_types[i],
            country=country,
            created_date_time=f"{days[i // 250]}T{8 + i % 9:02d}:{i % 60:02d}:00Z",
            assignments=_assignments(rule, kind, assigned_at),
        )
        if kind == "provisioning-error":
            state.status_overrides[(user.id, rule.error_plan)] = "Error"
        if kind is not None:
            expected[kind].append(user.id)
        users.append(user)
    state.load_users(users)
    state.expected = expected
    return state, expected


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(uuid.NAMESPACE_DNS, name))``, three times faster."""
    digest = bytearray(hashlib.sha1(_DNS + name.encode(), usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _draw(rng: random.Random, weighted: Sequence[tuple[_V, float]], k: int) -> list[_V]:
    values = [v for v, _ in weighted]
    return rng.choices(values, cum_weights=list(itertools.accumulate(w for _, w in weighted)), k=k)


def _assign_kinds(rng: random.Random, rules: Sequence[str], drifted: int) -> list[str | None]:
    """Each user's drift kind (None: ok): ``drifted`` users spread evenly over the kinds, scarce kinds first."""
    base, extra = divmod(drifted, len(DRIFT_KINDS))
    quota = {kind: base + (1 if i < extra else 0) for i, kind in enumerate(DRIFT_KINDS)}
    order = list(range(len(rules)))
    rng.shuffle(order)
    kinds: list[str | None] = [None] * len(rules)
    every_rule = frozenset(_RULES)
    for kind in sorted(DRIFT_KINDS, key=lambda k: k not in _ELIGIBLE):  # the restricted kinds first
        eligible, wanted = _ELIGIBLE.get(kind, every_rule), quota[kind]
        for i in order:
            if wanted == 0:
                break
            if kinds[i] is None and rules[i] in eligible:
                kinds[i] = kind
                wanted -= 1
    return kinds


def _assignments(rule: _Rule, kind: str | None, at: float) -> list[Assignment]:
    """What a user of this rule holds when drifted this way (or when ok)."""
    if kind in {"missing-license", "usage-location-missing"}:
        return []
    if kind == "group-assigned":
        return [Assignment(EMS, rule.licenses[0][1], GROUP_ID, assigned_at=at, updated_at=at)]
    if kind == "companion-missing":
        return [Assignment(INTUNE_EDU, _NO_DISABLED, None, assigned_at=at, updated_at=at)]
    held = [Assignment(sku, disabled, None, assigned_at=at, updated_at=at) for sku, disabled in rule.licenses]
    if kind == "wrong-disabled-plans":
        held[0].disabled_plans = _NO_DISABLED if held[0].disabled_plans else _WRONG_FOR_ENABLED_ALL
    elif kind == "extra-license":
        held.append(Assignment(EMSPREMIUM, _NO_DISABLED, None, assigned_at=at, updated_at=at))
    return held


def _skus(n: int, rules: Sequence[str], kinds: Sequence[str | None]) -> list[Sku]:
    """The fixture's SKUs with seats for everyone: EMS n + 1000, the others 5% of n (more if needed)."""
    wanted = {EMSPREMIUM: 0, INTUNE_EDU: 0, INTUNE_A_D: 0}
    for rule, kind in zip(rules, kinds, strict=True):
        for sku_id, _ in _RULES[rule].licenses:
            if sku_id in wanted:
                wanted[sku_id] += 1
        if kind == "extra-license":
            wanted[EMSPREMIUM] += 1
    skus = [sku_from_json(item) for item in read_seed(None).get("subscribedSkus") or []]
    for sku in skus:
        sku.enabled = n + 1000 if sku.id == EMS else max(n // 20, wanted.get(sku.id, 0) + 10)
    return skus
