"""Domain errors: what a message may repeat of the input it quotes."""

from __future__ import annotations

from shared.errors import Conflict, Invalid, NotFound
from shared.spaces.model import space_not_found


def test_a_message_repeats_only_the_start_of_a_long_input() -> None:
    space_id = "S" * 5000
    message = space_not_found(space_id).message
    assert len(message) < 200
    assert message.startswith("there is no space with the number or id 'SSSS")
    assert "…" in message


def test_no_message_is_longer_than_the_cap_whatever_it_quotes() -> None:
    name = "a b " * 5000
    for error in (Invalid(f"the name {name!r} is too long"), Conflict(name), NotFound(name * 2)):
        assert len(error.message) <= 1000
        assert str(error) == error.message


def test_ordinary_messages_are_unchanged() -> None:
    message = "space 3-014 is linked to orchard.room.with.a.long.name@contoso.onmicrosoft.com"
    assert Conflict(message).message == message
