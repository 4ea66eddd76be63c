"""The emulated tenant's records (SKUs, users, license assignments) and Graph's error type."""

from __future__ import annotations

import datetime as dt
import functools
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

# ISO 3166-1 alpha-2: Graph refuses a usageLocation outside this list.
ISO_COUNTRIES = frozenset(
    """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV
    BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET
    FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM
    IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD
    ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE
    PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST
    SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS
    YE YT ZA ZM ZW""".split()  # noqa: SIM905  # 249 codes read better as a block than as literals
)

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# Where assignedPlans[].service is not in the fixture, the service names real tenants show for these plans.
SERVICE_BY_PLAN = {
    "AAD_PREMIUM": "AADPremiumService",
    "AAD_PREMIUM_P2": "AADPremiumService",
    "MFA_PREMIUM": "MultiFactorService",
    "RMS_S_PREMIUM": "RMSOnline",
    "RMS_S_PREMIUM2": "RMSOnline",
    "RMS_S_ENTERPRISE": "RMSOnline",
    "ADALLOM_S_DISCOVERY": "Adallom",
    "ADALLOM_S_STANDALONE": "Adallom",
    "ATA": "AzureAdvancedThreatAnalytics",
    "EXCHANGE_S_FOUNDATION": "exchange",
    "INTUNE_A": "SCO",
    "INTUNE_EDU": "SCO",
}


# camelCase user property -> User field, for the scalar attributes a seed may carry and PATCH may change
USER_FIELDS = {
    "usageLocation": "usage_location",
    "accountEnabled": "account_enabled",
    "department": "department",
    "jobTitle": "job_title",
    "companyName": "company_name",
    "employeeType": "employee_type",
    "country": "country",
    "displayName": "display_name",
    "givenName": "given_name",
    "surname": "surname",
    "createdDateTime": "created_date_time",
    "mail": "mail",
}


class GraphError(Exception):
    """A refusal worded exactly as Graph words it: HTTP status, error code and message."""

    def __init__(self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})  # extra response headers (e.g. Location on a 410)


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """One service plan inside a SKU (servicePlanId / servicePlanName / appliesTo)."""

    id: str
    name: str
    applies_to: str = "User"
    service: str = ""

    @property
    def service_name(self) -> str:
        """The workload name Graph shows in assignedPlans[].service."""
        return self.service or SERVICE_BY_PLAN.get(self.name, self.name)


@dataclass(slots=True)
class Sku:
    """A subscribed SKU with its seats; mutable so tests can change seats at runtime."""

    id: str
    part_number: str
    plans: list[ServicePlan]
    enabled: int
    suspended: int = 0
    warning: int = 0
    locked_out: int = 0
    applies_to: str = "User"
    capability_status: str = "Enabled"

    def plan(self, plan_id: str) -> ServicePlan | None:
        """The plan with this id (case-insensitive), if the SKU has it."""
        wanted = plan_id.lower()
        return next((p for p in self.plans if p.id == wanted), None)


@dataclass(slots=True)
class Assignment:
    """One license on one user: direct (``assigned_by_group`` None) or inherited from a group.

    ``enabled_at`` holds, per plan, when it was last switched on by a re-assignment; a plan without an
    entry has been enabled since ``assigned_at``. Provisioning is timed from that moment.
    """

    sku_id: str
    disabled_plans: list[str]
    assigned_by_group: str | None
    assigned_at: float
    enabled_at: dict[str, float] = field(default_factory=dict)
    updated_at: float | None = None
    error: str = "None"
    state: str | None = None  # licenseAssignmentStates[].state when pinned (add_group_license), else derived

    def enabled_since(self, plan_id: str) -> float:
        """When this plan was (re-)enabled on this assignment."""
        return self.enabled_at.get(plan_id, self.assigned_at)


@dataclass(slots=True)
class User:
    """A directory user with the properties the licensing app reads or writes."""

    id: str
    user_principal_name: str
    display_name: str
    usage_location: str | None = None
    account_enabled: bool = True
    department: str | None = None
    job_title: str | None = None
    company_name: str | None = None
    employee_type: str | None = None
    country: str | None = None
    created_date_time: str | None = None
    given_name: str | None = None
    surname: str | None = None
    mail: str | None = None
    assignments: list[Assignment] = field(default_factory=list)
    # Group licenses in state "Error": listed in licenseAssignmentStates only - not assigned, no seat
    # (https://learn.microsoft.com/graph/api/resources/licenseassignmentstate).
    failed_assignments: list[Assignment] = field(default_factory=list)

    def holds(self, sku_id: str) -> list[Assignment]:
        """Every assignment (direct and group) of this SKU."""
        return [a for a in self.assignments if a.sku_id == sku_id]

    def direct(self, sku_id: str) -> Assignment | None:
        """The direct assignment of this SKU, if any."""
        return next((a for a in self.holds(sku_id) if a.assigned_by_group is None), None)


@dataclass(frozen=True, slots=True)
class Device:
    """One Intune managed device (https://learn.microsoft.com/graph/api/resources/intune-devices-manageddevice)."""

    id: str
    user_id: str
    user_principal_name: str
    device_name: str
    operating_system: str
    enrolled_at: float


def is_guid(value: object) -> bool:
    """True for a GUID in its 8-4-4-4-12 form."""
    return isinstance(value, str) and bool(_GUID.match(value))


def guid(value: object) -> str:
    """A GUID lower-cased, or Graph's refusal of a value that is not one."""
    if not is_guid(value):
        raise GraphError(
            400,
            "Request_BadRequest",
            "Cannot convert a primitive value to the expected type 'Edm.Guid'. "
            "See the inner exception for more details.",
        )
    return str(value).lower()


def new_id() -> str:
    """A fresh object id."""
    return str(uuid.uuid4())


@functools.lru_cache(maxsize=65536)  # a big tenant repeats the same few assignment times
def iso(timestamp: float) -> str:
    """Epoch seconds as Graph's UTC timestamp: ``2025-07-14T16:14:05Z``."""
    moment = dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> float:
    """Graph's UTC timestamp back to epoch seconds."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def select_names(raw: str | None, known: dict[str, str], *, entity: str, code: str) -> list[str] | None:
    """$select as canonical property names (Graph matches them case-insensitively, keyed by lower case in
    ``known``), None if absent; an unknown name is Graph's 400 naming it and the entity type."""
    if raw is None:
        return None
    names = []
    for part in raw.split(","):
        name = known.get(part.strip().lower())
        if name is None:
            raise GraphError(400, code, f"Could not find a property named '{part.strip()}' on type '{entity}'.")
        names.append(name)
    return list(dict.fromkeys(names))
