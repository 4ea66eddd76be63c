"""Typed settings from the environment."""

import json
from pathlib import Path

import pytest

from licensing.settings import SETTING_NAMES, Settings, SettingsError

BASE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def test_defaults_point_at_real_graph_with_auto_credentials() -> None:
    """With only storage set, the app targets Graph v1.0 signed in as auto: the managed identity in Azure, the admin's
    az login elsewhere (adapters/identity.py)."""
    settings = Settings.from_env(BASE)
    assert settings.graph_url == "https://graph.microsoft.com/v1.0"
    assert settings.graph_auth == "auto"
    assert Settings.from_env({**BASE, "LICENSING_GRAPH_AUTH": ""}).graph_auth == "auto"
    assert settings.policy_path.name == "licensing-policy.json"
    assert settings.set_usage_location is True


def test_auth_none_is_refused_for_a_non_loopback_graph_url() -> None:
    """Anonymous Graph access is only for a local emulator."""
    with pytest.raises(SettingsError, match="only allowed with a loopback"):
        Settings.from_env({**BASE, "LICENSING_GRAPH_AUTH": "none"})
    for url in ("http://127.0.0.1:8080/v1.0", "http://localhost:1/v1.0", "http://[::1]:5/v1.0"):
        assert (
            Settings.from_env({**BASE, "LICENSING_GRAPH_AUTH": "none", "LICENSING_GRAPH_URL": url}).graph_auth == "none"
        )


def test_bad_values_name_the_setting_and_the_fix() -> None:
    """Each invalid value names its setting."""
    cases = {
        "LICENSING_GRAPH_AUTH": ("password", "use one of auto, managed-identity, default, none"),
        "LICENSING_VERIFY_DELAY_SECONDS": ("soon", "LICENSING_VERIFY_DELAY_SECONDS='soon' is not a number"),
        "LICENSING_SET_USAGE_LOCATION": ("maybe", "use true or false"),
        "LICENSING_BLOCKED_RETRY_SECONDS": ("-1", "must not be negative"),
    }
    for name, (value, message) in cases.items():
        with pytest.raises(SettingsError, match=message):
            Settings.from_env({**BASE, name: value})


def test_missing_storage_explains_both_ways_to_connect() -> None:
    """No AzureWebJobsStorage: the error shows the connection-string and identity-based forms."""
    with pytest.raises(SettingsError, match="__queueServiceUri"):
        Settings.from_env({}).require_storage()


def test_identity_based_storage_is_read() -> None:
    """Managed-identity storage uses service URIs and an optional client id."""
    settings = Settings.from_env(
        {
            "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.windows.net",
            "AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net",
            "AzureWebJobsStorage__clientId": "abc",
        }
    )
    assert settings.require_storage().connection_string is None
    assert settings.require_storage().client_id == "abc"
    assert settings.require_storage().credential == "auto"  # no __credential: adapters/identity.py decides


def test_tunables_are_typed_from_their_defaults() -> None:
    """Integers stay integers, floats floats, flags booleans."""
    tuned = {"LICENSING_VERIFY_DELAY_SECONDS": "5", "LICENSING_GRAPH_TIMEOUT_SECONDS": "2.5"}
    settings = Settings.from_env({**BASE, **tuned, "LICENSING_SET_USAGE_LOCATION": "false"})
    assert settings.verify_delay_seconds == 5
    assert isinstance(settings.verify_delay_seconds, int)
    assert settings.graph_timeout_seconds == 2.5
    assert settings.set_usage_location is False


def test_sample_local_settings_list_every_setting_the_code_reads() -> None:
    """local.settings.sample.json documents exactly the settings Settings reads."""
    sample = json.loads((Path(__file__).resolve().parents[2] / "local.settings.sample.json").read_text())["Values"]
    assert set(SETTING_NAMES) <= set(sample)
    assert Settings.from_env(sample).graph_auth == "none"


def test_unresolved_key_vault_reference_is_not_used_as_a_secret() -> None:
    """App Service passes "@Microsoft.KeyVault(...)" literally when it cannot resolve it: treat as unset."""
    ref = "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/hr/)"
    secrets = {"HR_WEBHOOK_SECRET": ref, "HR_WEBHOOK_SECRET_PREVIOUS": "old", "GRAPH_NOTIFICATION_CLIENT_STATE": ref}
    settings = Settings.from_env({**BASE, **secrets})
    assert settings.hr_webhook_secrets == ("old",)
    assert settings.graph_client_state is None


def test_sweep_schedule_must_be_six_field_ncrontab_and_time_zone_iana() -> None:
    """A five-field Unix cron or an unknown zone is refused with the fix."""
    with pytest.raises(SettingsError, match="need six"):
        Settings.from_env({**BASE, "SWEEP_SCHEDULE": "0 2 * * *"})
    with pytest.raises(SettingsError, match="IANA"):
        Settings.from_env({**BASE, "HR_TIMEZONE": "Mars/Olympus"})
    assert Settings.from_env({**BASE, "HR_TIMEZONE": "Europe/Berlin"}).hr_timezone == "Europe/Berlin"


def test_repr_and_str_show_no_secret() -> None:
    """Storage keys, SAS signatures, function keys in URLs, HR secrets, clientState and App Insights keys stay out."""
    markers = ["acct-key-M1", "sas-sig-M2", "fn-key-M3", "fn-key-M4", "hr-M5", "hr-M6", "state-M7", "ikey-M8"]
    storage = (
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={markers[0]};"
        f"SharedAccessSignature=sv=2022&sig={markers[1]};EndpointSuffix=core.windows.net"
    )
    keyed = Settings.from_env(
        {
            "AzureWebJobsStorage": storage,
            "GRAPH_NOTIFICATION_URL": f"https://app.example/api/graph/notifications?code={markers[2]}",
            "GRAPH_LIFECYCLE_URL": f"https://app.example/api/graph/lifecycle?code={markers[3]}&clientId=x",
            "HR_WEBHOOK_SECRET": markers[4],
            "HR_WEBHOOK_SECRET_PREVIOUS": markers[5],
            "GRAPH_NOTIFICATION_CLIENT_STATE": markers[6],
            "APPLICATIONINSIGHTS_CONNECTION_STRING": f"InstrumentationKey={markers[7]};IngestionEndpoint=https://x/",
        }
    )
    identity = Settings.from_env(
        {
            "AzureWebJobsStorage__queueServiceUri": f"https://acct.queue.core.windows.net/?sv=1&sig={markers[1]}",
            "AzureWebJobsStorage__tableServiceUri": "https://acct.table.core.windows.net",
        }
    )
    for settings in (keyed, identity):
        for shown in (repr(settings), str(settings), repr(settings.storage), str(settings.storage)):
            assert not [m for m in markers if m in shown], shown
    assert "AccountName=acct" in repr(keyed)  # what is not secret still says which account
    assert "https://app.example/api/graph/notifications?" in repr(keyed)
    assert keyed.graph_notification_url == f"https://app.example/api/graph/notifications?code={markers[2]}"


def test_tenant_id_must_be_a_guid() -> None:
    """LICENSING_TENANT_ID is normalised to a lower-case GUID; anything else names the setting."""
    upper = "6A3F1C2E-8B4D-4E7A-9C15-2F0D8E6B7A91"
    assert Settings.from_env({**BASE, "LICENSING_TENANT_ID": upper}).tenant_id == upper.lower()
    assert Settings.from_env(BASE).tenant_id is None
    with pytest.raises(SettingsError, match=r"LICENSING_TENANT_ID='contoso\.onmicrosoft\.com' is not a tenant id"):
        Settings.from_env({**BASE, "LICENSING_TENANT_ID": "contoso.onmicrosoft.com"})
