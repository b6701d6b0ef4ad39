"""Pure input rules: tenant ids, room emails."""

from __future__ import annotations

import pytest

from shared.accounts import parse_tenant
from shared.errors import Invalid
from shared.identifiers import normalise_email


@pytest.mark.parametrize("value, expected", [
    ("6F1C2A4E-8B3D-4E5F-9A7B-0C1D2E3F4A5B", "6f1c2a4e-8b3d-4e5f-9a7b-0c1d2e3f4a5b"),
    ("  contoso.onmicrosoft.com ", "contoso.onmicrosoft.com"),
    ("Contoso.COM", "contoso.com"),
    ("xn--bcher-kva.example", "xn--bcher-kva.example"),
])
def test_tenant_ids_are_normalised(value: str, expected: str) -> None:
    assert parse_tenant(value) == expected


@pytest.mark.parametrize("value, fragment", [
    ("", "enter the tenant ID"),
    (None, "enter the tenant ID"),
    ("x" * 10_000, "characters long"),
    ("<script>alert(1)</script>", "must be a GUID"),
    ("cоntoso.onmicrosoft.com", "non-ASCII"),  # Cyrillic o
    ("common", "names no single tenant"),
    ("organizations", "names no single tenant"),
    ("6f1c2a4e-8b3d-4e5f-9a7b-0c1d2e3f4a5", "must be a GUID"),
    ("contoso", "must be a GUID"),
    ("-contoso.com", "must be a GUID"),
])
def test_malformed_tenant_ids_are_refused_with_the_reason(value: object, fragment: str) -> None:
    with pytest.raises(Invalid) as refused:
        parse_tenant(value)
    assert fragment in refused.value.message


@pytest.mark.parametrize("value, expected", [
    ("  Orchard@Contoso.onmicrosoft.com ", "orchard@contoso.onmicrosoft.com"),
    ("marina.bay+room@contoso.com", "marina.bay+room@contoso.com"),
])
def test_emails_are_normalised(value: str, expected: str) -> None:
    assert normalise_email(value) == expected


@pytest.mark.parametrize("value, fragment", [
    ("", "enter the room"),
    ("a" * 300 + "@contoso.com", "characters long"),
    ("ørchard@contoso.com", "non-ASCII"),
    ('"orchard room"@contoso.com', "quoted local part"),
    ("orchard", "exactly one @"),
    ("a@b@contoso.com", "exactly one @"),
    ("orchard..room@contoso.com", "before the @"),
    ("orchard/room@contoso.com", "before the @"),
    ("orchard@contoso", "after the @"),
    ("orchard@-contoso.com", "after the @"),
    ("<img src=x onerror=alert(1)>@contoso.com", "before the @"),
])
def test_bad_emails_are_refused_with_the_reason(value: str, fragment: str) -> None:
    with pytest.raises(Invalid) as refused:
        normalise_email(value)
    assert fragment in refused.value.message


@pytest.mark.parametrize("value", ["room\n@contoso.com", "room@contoso\n.com"])
def test_a_line_break_inside_an_address_is_refused(value: str) -> None:
    with pytest.raises(Invalid):
        normalise_email(value)
