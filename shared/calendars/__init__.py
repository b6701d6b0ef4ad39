"""Room calendars of an account: the model and its table, linking to spaces, discovery, the admin's actions.

Owns the Calendars table and the rules that span a calendar and its space.
"""

from __future__ import annotations

from shared.calendars.discovery import RoomDiscovery
from shared.calendars.linking import SpaceLinks
from shared.calendars.model import Calendar, ImportMark
from shared.calendars.repository import CalendarPage, CalendarRepository
from shared.calendars.service import CalendarHooks, CalendarService

__all__ = ["Calendar", "CalendarHooks", "CalendarPage", "CalendarRepository", "CalendarService", "ImportMark",
           "RoomDiscovery", "SpaceLinks"]
