"""The licensing policy: ordered rules naming SKUs by part number and disabled plans by name."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import PurePath
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from licensing.core.errors import PolicyError

MATCH_ATTRIBUTES = ("department", "jobTitle", "companyName", "employeeType", "country")
UsageLocation = Annotated[str, Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, e.g. US")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LicenseSpec(_Model):
    """One SKU to assign, with the service plans to keep disabled (the whole desired set)."""

    sku: str = Field(min_length=1, description="SKU part number, e.g. EMS")
    disabled_plans: tuple[str, ...] = Field(default=(), alias="disabledPlans")


class Rule(_Model):
    """First matching rule wins. ``match`` is "all" or attribute -> value(s), all of which must hold.

    ``assignDirectlyWhenGroupFails`` (default false): when a SKU of the rule reaches the user only through a group
    whose assignment Graph holds in error (licenseAssignmentStates state Error/ActiveWithError, e.g.
    CountViolation), assign it directly instead of recording it for an admin. Off by default: a direct copy
    takes a seat of its own and stays after the group is fixed.
    """

    name: str = Field(min_length=1)
    match: Literal["all"] | dict[str, str | list[str]]
    licenses: tuple[LicenseSpec, ...] = Field(min_length=1)
    usage_location: UsageLocation | None = Field(default=None, alias="usageLocation")
    assign_directly_when_group_fails: bool = Field(default=False, alias="assignDirectlyWhenGroupFails", strict=True)

    @field_validator("match")
    @classmethod
    def _known_attributes(cls, value: Literal["all"] | dict[str, str | list[str]]) -> object:
        if isinstance(value, dict):
            if not value:
                raise ValueError('an empty match would match everyone; write "all" to say so')
            unknown = sorted(set(value) - set(MATCH_ATTRIBUTES))
            if unknown:
                raise ValueError(f"unknown attribute(s) {', '.join(unknown)}; match on {', '.join(MATCH_ATTRIBUTES)}")
        return value

    def matches(self, attributes: Mapping[str, str]) -> bool:
        """True when every condition holds (case-insensitive equality, any of a list)."""
        if self.match == "all":
            return True
        for key, wanted in self.match.items():
            have = (attributes.get(key) or "").casefold()
            options = [wanted] if isinstance(wanted, str) else wanted
            if have not in {o.casefold() for o in options}:
                return False
        return True


class Companion(_Model):
    """A SKU that only works with others (Intune for Education needs Intune A Direct): both or neither."""

    sku: str = Field(min_length=1)
    requires: tuple[LicenseSpec, ...] = Field(min_length=1)

    @field_validator("requires", mode="before")
    @classmethod
    def _names_are_specs(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return [{"sku": v} if isinstance(v, str) else v for v in value]
        return value


class Policy(_Model):
    """The whole policy file."""

    default_usage_location: UsageLocation | None = Field(default=None, alias="defaultUsageLocation")
    rules: tuple[Rule, ...] = Field(min_length=1)
    companions: tuple[Companion, ...] = ()
    # Per SKU, every plan an admin has looked at (enabled or not). A plan Microsoft adds later is enabled for
    # everyone the SKU is assigned to; `licensing policy check --against-tenant` names such unreviewed plans.
    reviewed_plans: dict[str, tuple[str, ...]] = Field(default_factory=dict, alias="reviewedPlans")

    def rule_for(self, attributes: Mapping[str, str]) -> Rule | None:
        """The first rule matching these attributes, or None."""
        return next((r for r in self.rules if r.matches(attributes)), None)

    def companions_of(self, part_number: str) -> tuple[LicenseSpec, ...]:
        """SKUs that must be assigned together with this one."""
        wanted = part_number.casefold()
        return tuple(spec for c in self.companions if c.sku.casefold() == wanted for spec in c.requires)


def parse_policy(data: Mapping[str, object], *, source: str = "policy") -> Policy:
    """Validate policy data; raise PolicyError listing every problem with its location."""
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()
        )
        raise PolicyError(f"{source} is invalid: {problems}") from None


def policy_from_text(text: str, *, filename: str) -> Policy:
    """Parse and validate a policy file's text: TOML when ``filename`` ends in .toml, else JSON."""
    is_toml = filename.lower().endswith(".toml")
    try:
        data = tomllib.loads(text) if is_toml else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"policy file {filename} is not valid {'TOML' if is_toml else 'JSON'}: {exc}") from None
    except RecursionError:
        raise PolicyError(f"policy file {filename} is nested too deeply to be a policy") from None
    if not isinstance(data, dict):
        raise PolicyError(f"policy file {filename} must hold an object with 'rules'")
    return parse_policy(data, source=f"policy file {PurePath(filename).name}")
