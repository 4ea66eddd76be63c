"""Where the Graph token may go: the auth provider's allowed hosts, the links the app follows, the user ids it puts
into $batch URLs. No network: the credential is a fake that counts how often it is asked for a token."""

from __future__ import annotations

import pytest

from licensing.adapters.graph.bulk import user_path
from licensing.adapters.graph.client import ForeignLink, _auth_provider, require_graph_url
from licensing.settings import Settings
from tests.trap import FakeCredential, sign_in_with_fake_token

GRAPH = "https://graph.microsoft.com/v1.0"
OBJECT_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


async def test_the_auth_provider_offers_the_token_to_the_graph_host_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Allowed hosts are exactly LICENSING_GRAPH_URL's host: for another host the credential is not even asked."""
    sign_in_with_fake_token(monkeypatch)
    provider, credential = _auth_provider(Settings.from_env({"LICENSING_GRAPH_AUTH": "default"}))
    assert isinstance(credential, FakeCredential)
    tokens = provider.access_token_provider
    assert tokens.get_allowed_hosts_validator().get_allowed_hosts() == ["graph.microsoft.com"]
    assert await tokens.get_authorization_token("https://evil.example/v1.0/users") == ""
    assert await tokens.get_authorization_token("https://graph.microsoft.com.evil.example/v1.0/users") == ""
    assert credential.asked == 0
    assert await tokens.get_authorization_token(f"{GRAPH}/users") != ""
    assert credential.asked == 1


def test_the_allowed_host_follows_the_configured_graph_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """A national cloud's LICENSING_GRAPH_URL moves the allowed host with it."""
    sign_in_with_fake_token(monkeypatch)
    env = {"LICENSING_GRAPH_AUTH": "default", "LICENSING_GRAPH_URL": "https://microsoftgraph.chinacloudapi.cn/v1.0"}
    provider, _ = _auth_provider(Settings.from_env(env))
    hosts = provider.access_token_provider.get_allowed_hosts_validator().get_allowed_hosts()
    assert hosts == ["microsoftgraph.chinacloudapi.cn"]


@pytest.mark.parametrize(
    "link",
    [
        f"{GRAPH}/users?$skiptoken=abc",
        f"{GRAPH}/users/delta?$deltatoken=xyz",
        "https://GRAPH.microsoft.com:443/v1.0/users/delta?$deltatoken=xyz",
    ],
)
def test_links_below_the_graph_base_url_are_followed(link: str) -> None:
    """Graph's own links (any case of host, the default port spelled out) pass unchanged."""
    assert require_graph_url(link, GRAPH, what="a link") == link


@pytest.mark.parametrize(
    ("link", "host"),
    [
        ("https://evil.example/v1.0/users/delta?$deltatoken=x", "https://evil.example:"),
        ("https://graph.microsoft.com.evil.example/v1.0/users", "https://graph.microsoft.com.evil.example:"),
        ("http://graph.microsoft.com/v1.0/users", "http://graph.microsoft.com:"),  # plain http: the token in clear
        ("https://graph.microsoft.com:8443/v1.0/users", "https://graph.microsoft.com:8443:"),
        ("https://user:pw@graph.microsoft.com/v1.0/users", "https://graph.microsoft.com:"),
        ("https://graph.microsoft.com/beta/users", "https://graph.microsoft.com:"),
        ("https://graph.microsoft.com/v1.0/../beta/users", "https://graph.microsoft.com:"),
        ("/v1.0/users?$skiptoken=abc", "a URL without a host:"),
    ],
)
def test_links_anywhere_else_are_refused_naming_the_host(link: str, host: str) -> None:
    """Another host, scheme, port, credentials in the URL, or a path outside /v1.0: ForeignLink naming where it
    pointed (never the URL's userinfo or query) and the setting that says where Graph is."""
    with pytest.raises(ForeignLink) as refused:
        require_graph_url(link, GRAPH, what="the stored deltaLink")
    message = refused.value.message
    assert message.startswith(f"refused to follow the stored deltaLink to {host} only {GRAPH}/ is Microsoft Graph")
    assert "LICENSING_GRAPH_URL" in message
    assert "pw" not in message
    assert "token=" not in message


@pytest.mark.parametrize(
    ("key", "path"),
    [
        (OBJECT_ID, f"/users/{OBJECT_ID}"),
        (OBJECT_ID.upper(), f"/users/{OBJECT_ID}"),
        ("ada@contoso.com", "/users/ada@contoso.com"),
        ("ada_fabrikam.com#EXT#@contoso.onmicrosoft.com", "/users/ada_fabrikam.com%23EXT%23@contoso.onmicrosoft.com"),
        ("$adm@contoso.com", "/users('$adm@contoso.com')"),
    ],
)
def test_object_ids_and_upns_become_one_path_segment(key: str, path: str) -> None:
    """A GUID as is (lower case), a UPN URL-encoded (a guest's # as %23), a `$` UPN as an OData key."""
    assert user_path(key) == path


@pytest.mark.parametrize(
    "key",
    [
        "x/../../users?$filter=",
        "a#b",
        "c?d",
        "ada@contoso.com/licenseDetails",
        "ada@contoso.com?$select=id",
        "ada@contoso.com#x",
        "ada%2F@contoso.com",
        "ada @contoso.com",
        "",
        f"{OBJECT_ID}/../x",
        "0f8fad5b-d9cb-469f-a165-70867728950",  # one digit short
        "a" * 65 + "@contoso.com",
    ],
)
def test_anything_else_is_not_a_user_and_makes_no_path(key: str) -> None:
    """A slash, ?, %, space or trailing junk: no path at all, so no URL is ever built from it."""
    assert user_path(key) is None
