"""The Exchange Online PowerShell scripts the readiness panel offers, built so no value can break out.

Owns two scripts. `rbac_script` scopes the app to room mailboxes with RBAC for Applications: the
app's service principal in Exchange, a management scope of room mailboxes, the role assignments
of the permissions the product uses, the removal of the tenant-wide Entra grants (RBAC for
Applications adds to Entra's grants; it does not narrow them), and `Test-ServicePrincipalAuthorization`
to verify. `room_settings_script` sets `Set-CalendarProcessing` on the account's rooms as a booking
integration needs, each setting commented with what it fixes. Every value is a validated address
or identifier and is written as a PowerShell single-quoted string ('' for '), in which neither
`$()`, backticks nor `;` mean anything; no value is ever written into a comment.
https://learn.microsoft.com/exchange/permissions-exo/application-rbac
https://learn.microsoft.com/powershell/module/exchange/set-calendarprocessing
"""

from __future__ import annotations

from shared.identifiers import GUID, normalise_email

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
SCOPE_NAME = "Room Calendar Connector - room mailboxes"
# The Graph application permissions the product uses in mailboxes, and their RBAC for Applications roles.
MAILBOX_ROLES = {"Calendars.ReadWrite": "Application Calendars.ReadWrite",
                 "MailboxSettings.Read": "Application MailboxSettings.Read"}


def quote(value: str) -> str:
    """A PowerShell single-quoted string. Only the quote itself (and its typographic look-alikes,
    which PowerShell treats as quotes too) needs doubling; control characters are refused."""
    if any(ord(character) < 32 or ord(character) == 127 for character in value):
        raise ValueError("a script value may not hold control characters")
    for mark in ("'", "\u2018", "\u2019", "\u201a", "\u201b"):
        value = value.replace(mark, mark * 2)
    return f"'{value}'"


def rbac_script(*, tenant_id: str, client_id: str, person: str | None, room: str | None) -> str:
    """Scope the app to room mailboxes. `person` and `room` (addresses) are what the verification tries."""
    if not GUID.match(tenant_id) or not GUID.match(client_id):
        raise ValueError("the tenant and the app must be named by their GUIDs")
    checks = [normalise_email(address) for address in (room, person) if address]
    lines = [
        "# Scope the Room Calendar Connector to room mailboxes with RBAC for Applications.",
        "# Run in PowerShell 7 as an Exchange administrator who may also manage the app's Entra permissions.",
        "# Needs the modules ExchangeOnlineManagement and Microsoft.Graph.Applications:",
        "#   Install-Module ExchangeOnlineManagement, Microsoft.Graph.Applications -Scope CurrentUser",
        "# (Application access policies are the older way to do this; Microsoft advises against new ones.)",
        "",
        "$ErrorActionPreference = 'Stop'",
        f"$TenantId = {quote(tenant_id)}",
        f"$AppId = {quote(client_id)}",
        f"$ScopeName = {quote(SCOPE_NAME)}",
        "",
        "# 1. The app as Exchange knows it: its service principal, by the Entra object id.",
        "Connect-MgGraph -TenantId $TenantId -Scopes 'Application.Read.All', 'AppRoleAssignment.ReadWrite.All' "
        "-NoWelcome",
        "$App = Get-MgServicePrincipal -Filter \"appId eq '$AppId'\"",
        "Connect-ExchangeOnline -ShowBanner:$false",
        "if (-not (Get-ServicePrincipal -Identity $App.Id -ErrorAction SilentlyContinue)) {",
        "    New-ServicePrincipal -AppId $AppId -ObjectId $App.Id -DisplayName 'Room Calendar Connector'",
        "}",
        "",
        "# 2. A scope holding room mailboxes only.",
        "if (-not (Get-ManagementScope -Identity $ScopeName -ErrorAction SilentlyContinue)) {",
        "    New-ManagementScope -Name $ScopeName "
        "-RecipientRestrictionFilter \"RecipientTypeDetails -eq 'RoomMailbox'\"",
        "}",
        "",
        "# 3. The app's mailbox permissions, granted on that scope only.",
    ]
    for role in MAILBOX_ROLES.values():
        lines.append(f"New-ManagementRoleAssignment -App $App.Id -Role {quote(role)} -CustomResourceScope $ScopeName")
    lines += [
        "",
        "# 4. Remove the tenant-wide Entra grants of the same permissions: RBAC for Applications adds to",
        "#    them, it does not narrow them. Re-authenticating the account in the product grants them again:",
        "#    run this step again afterwards.",
        f"$Graph = Get-MgServicePrincipal -Filter \"appId eq '{GRAPH_APP_ID}'\"",
        "$Wide = $Graph.AppRoles | Where-Object { $_.Value -in @(" + ", ".join(quote(p) for p in MAILBOX_ROLES) + ") }",
        "Get-MgServicePrincipalAppRoleAssignment -ServicePrincipalId $App.Id |",
        "    Where-Object { $_.ResourceId -eq $Graph.Id -and $_.AppRoleId -in $Wide.Id } |",
        "    ForEach-Object { Remove-MgServicePrincipalAppRoleAssignment -ServicePrincipalId $App.Id "
        "-AppRoleAssignmentId $_.Id }",
        "",
        "# 5. Verify: a room is in scope, a person is not. Exchange applies a new scope within 30 minutes to",
        "#    2 hours; then press Re-check on the readiness panel.",
    ]
    lines += [f"Test-ServicePrincipalAuthorization -Identity $App.Id -Resource {quote(address)} | "
              "Format-Table RoleName, InScope" for address in checks]
    return "\r\n".join(lines) + "\r\n"


def room_settings_script(*, rooms: list[str], process_external: bool) -> str:
    """`Set-CalendarProcessing` for each room (validated addresses), as a booking integration needs."""
    addresses = sorted({normalise_email(room) for room in rooms})
    lines = [
        "# Make room mailboxes behave as a booking integration needs (Set-CalendarProcessing).",
        "# Run in PowerShell as an Exchange administrator; needs the module ExchangeOnlineManagement.",
        "",
        "$ErrorActionPreference = 'Stop'",
        "Connect-ExchangeOnline -ShowBanner:$false",
        "",
        "$Settings = @{",
        "    # The room accepts or declines invitations itself, so a booking made in Outlook appears at once",
        "    # and a clash is declined instead of waiting for a delegate.",
        "    AutomateProcessing = 'AutoAccept'",
        "    # Keep the meeting's subject: with these on, the room's copy shows the organizer's name instead.",
        "    AddOrganizerToSubject = $false",
        "    DeleteSubject = $false",
        "    # Keep the meeting's body, which carries what the workplace system wrote into its bookings.",
        "    DeleteComments = $false",
        "    # Keep private meetings marked private, so the product keeps their subject out of every report.",
        "    RemovePrivateProperty = $false",
        "    # Whether invitations from outside the organisation are processed (your choice when downloading).",
        f"    ProcessExternalMeetingMessages = {'$true' if process_external else '$false'}",
        "}",
        "",
        "$Rooms = @(",
        *[f"    {quote(address)}" for address in addresses],
        ")",
        "foreach ($Room in $Rooms) {",
        "    Set-CalendarProcessing -Identity $Room @Settings",
        "    Write-Host \"Set $Room\"",
        "}",
    ]
    return "\r\n".join(lines) + "\r\n"
