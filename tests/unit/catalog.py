"""A small tenant catalog with the real EMS / EMSPREMIUM / INTUNE_EDU identifiers, for pure tests."""

from licensing.core.model import Catalog, ServicePlan, Sku

EMS = "efccb6f7-5641-4e0e-bd10-b4976e1bf68e"
EMSPREMIUM = "b05e124f-c7cc-45a0-a6aa-8cf78c946968"
INTUNE_EDU = "d9d89b70-a645-4c24-b041-8d3cb1884ec7"
INTUNE_A_D = "2b317a4a-77a6-4188-9437-b68a77b4e2c6"
INTUNE_A = "c1ec4a95-1f05-45b3-a911-aa3fa01094f5"
RMS_S_PREMIUM = "6c57d4b6-3b23-47a5-9bc9-69f17b4947b3"
AAD_PREMIUM = "41781fb2-bc02-4b7c-bd55-b576c07bb09d"
EXCHANGE_S_FOUNDATION = "113feb6c-3fe4-4440-bddc-54d774bf0318"

EMS_PLANS = (
    ServicePlan(AAD_PREMIUM, "AAD_PREMIUM"),
    ServicePlan(RMS_S_PREMIUM, "RMS_S_PREMIUM"),
    ServicePlan("932ad362-64a8-4783-9106-97849a1a30b9", "ADALLOM_S_DISCOVERY"),
    ServicePlan(EXCHANGE_S_FOUNDATION, "EXCHANGE_S_FOUNDATION", "Company"),
    ServicePlan("bea4c11e-220a-4e6d-8eb8-8ea15d019f90", "RMS_S_ENTERPRISE"),
    ServicePlan("8a256a2b-b617-496d-b51b-e76466e88db0", "MFA_PREMIUM"),
    ServicePlan(INTUNE_A, "INTUNE_A"),
)


def catalog(*, ems_free: int = 10, premium_free: int = 0, edu_free: int = 5, device_free: int = 5) -> Catalog:
    """The four SKUs with the given free seats."""
    return Catalog(
        (
            Sku(EMS, "EMS", EMS_PLANS, enabled=100, consumed=100 - ems_free),
            Sku(EMSPREMIUM, "EMSPREMIUM", (*EMS_PLANS[:2], ServicePlan(INTUNE_A, "INTUNE_A")), 2, 2 - premium_free),
            Sku(
                INTUNE_EDU,
                "INTUNE_EDU",
                (ServicePlan("da24caf9-af8e-485c-b7c8-e73336da2693", "INTUNE_EDU"), ServicePlan(INTUNE_A, "INTUNE_A")),
                30,
                30 - edu_free,
            ),
            Sku(INTUNE_A_D, "INTUNE_A_D", (ServicePlan(INTUNE_A, "INTUNE_A"),), 30, 30 - device_free),
        )
    )
