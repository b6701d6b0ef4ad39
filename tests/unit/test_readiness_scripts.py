"""The generated PowerShell scripts: every room once, every value single-quoted so that quotes,
`$()`, backticks and `;` stay text, and nothing a tenant controls (room names) written at all."""

from __future__ import annotations

import re

import pytest

from shared.errors import Invalid
from shared.readiness.scripts import quote, rbac_script, room_settings_script

TENANT = "6f1c2a4e-8b3d-4e5f-9a7b-0c1d2e3f4a5b"
APP = "3f0c2d9a-5b7e-4c1a-9d2f-8e6b4a1c0d57"
HOSTILE = ["o'brien@contoso.com", "x'+$(Remove-Item -Recurse C:\\)+'@contoso.com".replace("(", "").replace(")", "")
           .replace("\\", "").replace(" ", "").replace(":", ""), "tick`n`$env:path@contoso.com".replace(":", ""),
           "semi$x{y}|z@contoso.com"]


def _literals(script: str) -> list[str]:
    """Every single-quoted literal of the script, decoded as PowerShell reads it ('' is ')."""
    return [match.replace("''", "'") for match in re.findall(r"'((?:[^']|'')*)'", script)]


def _outside_literals(script: str) -> str:
    return re.sub(r"'(?:[^']|'')*'", "''", script)


def test_quoting_doubles_quotes_and_refuses_control_characters() -> None:
    assert quote("o'brien") == "'o''brien'"
    assert quote("a\u2019b") == "'a\u2019\u2019b'"
    with pytest.raises(ValueError):
        quote("line\nbreak")


def test_the_room_settings_script_names_every_room_once_and_quoted() -> None:
    script = room_settings_script(rooms=[*HOSTILE, HOSTILE[0].upper()], process_external=False)
    literals = _literals(script)
    for address in HOSTILE:
        assert literals.count(address.lower()) == 1, address
    # Outside the quoted literals nothing of an address is left: no $(, no backtick, no ; of theirs.
    bare = _outside_literals(script)
    assert "brien" not in bare and "`" not in bare and "semi" not in bare and "Remove-Item" not in bare
    assert "AutomateProcessing = 'AutoAccept'" in script and "ProcessExternalMeetingMessages = $false" in script
    assert "AddOrganizerToSubject = $false" in script and "DeleteSubject = $false" in script
    assert "DeleteComments = $false" in script and "RemovePrivateProperty = $false" in script
    assert script.count("Set-CalendarProcessing -Identity $Room @Settings") == 1


def test_addresses_that_could_break_out_are_refused_before_a_script_is_written() -> None:
    for hostile in ("a';Remove-Item x;'@contoso.com", "a$(calc)@contoso.com", "room\n@contoso.com",
                    "room@contoso.com; Remove-Item"):
        with pytest.raises(Invalid):
            room_settings_script(rooms=[hostile], process_external=True)


def test_the_rbac_script_scopes_the_app_to_rooms_and_verifies_it() -> None:
    script = rbac_script(tenant_id=TENANT, client_id=APP, person="megan@contoso.com", room="o'brien@contoso.com")
    assert f"$TenantId = '{TENANT}'" in script and f"$AppId = '{APP}'" in script
    assert "New-ServicePrincipal -AppId $AppId -ObjectId $App.Id" in script
    assert "-RecipientRestrictionFilter \"RecipientTypeDetails -eq 'RoomMailbox'\"" in script
    assert "-Role 'Application Calendars.ReadWrite' -CustomResourceScope $ScopeName" in script
    assert "Remove-MgServicePrincipalAppRoleAssignment" in script
    assert "Test-ServicePrincipalAuthorization -Identity $App.Id -Resource 'o''brien@contoso.com'" in script
    assert "Test-ServicePrincipalAuthorization -Identity $App.Id -Resource 'megan@contoso.com'" in script
    assert "New-ApplicationAccessPolicy" not in script
    with pytest.raises(ValueError):
        rbac_script(tenant_id="contoso.com'; Remove-Item x", client_id=APP, person=None, room=None)
