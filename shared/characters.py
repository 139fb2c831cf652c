"""Characters (cameos): the rules both sides share, and the table of finished ones.

A character job (kind ``character``, id ``char_…``) makes one upstream cameo and
finalizes it into a character that prompts mention as ``@username``. The rows of
``characters`` are the finished ones, listed by ``GET /v1/characters``.
"""

from __future__ import annotations

import random
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.errors import InvalidParam
from shared.models import Character, Job

DEFAULT_TIMESTAMPS: tuple[float, float] = (0, 3)
MIN_SPAN_S = 1
MAX_SPAN_S = 3
USERNAME_TRIES = 5

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_USERNAME = re.compile(r"[a-z0-9_.]{3,30}")
_NOT_USERNAME = re.compile(r"[^a-z0-9_]+")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return float(value.strip())
    return None


def parse_timestamps(value: Any, *, param: str = "timestamps") -> tuple[float, float]:
    """``"a,b"`` (or ``[a, b]``): where in the video the character is, a span of 1 to 3 seconds.

    Absent or empty means ``0,3``, the span prior gateways always sent.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_TIMESTAMPS
    parts = value.split(",") if isinstance(value, str) else value
    numbers = [_number(part) for part in parts] if isinstance(parts, list | tuple) else []
    if len(numbers) != 2 or None in numbers:
        raise InvalidParam(
            f'\'{param}\' must be two numbers of seconds as "start,end", e.g. "0,3"; got {value!r}',
            param=param,
        )
    start, end = numbers
    assert start is not None and end is not None
    if not MIN_SPAN_S <= end - start <= MAX_SPAN_S:
        raise InvalidParam(
            f"'{param}' must span {MIN_SPAN_S} to {MAX_SPAN_S} seconds (end minus start); got {value!r}",
            param=param,
        )
    return start, end


def _plain(number: float) -> int | float:
    return int(number) if float(number).is_integer() else number


def timestamps_text(span: tuple[float, float] | list[float]) -> str:
    """The multipart form of the upload route: ``"0,3"``."""
    return ",".join(str(_plain(n)) for n in span)


def timestamps_list(span: tuple[float, float] | list[float]) -> list[int | float]:
    """The JSON form of the from-generation route: ``[0, 3]``."""
    return [_plain(n) for n in span]


def normalize_username(value: Any, *, param: str = "username") -> str | None:
    """A requested username as the upstream spells them (lower case, no leading ``@``), or None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    name = str(value).strip().removeprefix("@").lower()
    if not _USERNAME.fullmatch(name):
        raise InvalidParam(
            f"'{param}' must be 3 to 30 letters, digits, '_' or '.'; got {value!r}", param=param
        )
    return name


def derive_username(hint: str | None, rng: random.Random | None = None) -> str:
    """A username from the cameo's ``username_hint`` (``owner.name``): the part after the last ``.``,
    lower-cased, plus three random digits; what prior gateways did (upstream reference, section 4.8)."""
    base = (hint or "").rsplit(".", 1)[-1].strip().lower()
    base = _NOT_USERNAME.sub("", base)[:24] or "character"
    return f"{base}{(rng or random).randint(0, 999):03d}"


def instruction_value(text: str | None) -> dict[str, Any] | None:
    """Instruction sets as the finalize route takes them; None when not given."""
    if not text:
        return None
    return {"value": [{"type": "text", "value": text}]}


def mention_prompt(username: str, prompt: str) -> str:
    """A prompt that uses the character: ``@username`` first, as the original gateway did."""
    mention = f"@{username}"
    if re.search(rf"(?<![\w@]){re.escape(mention)}(?!\w)", prompt):
        return prompt
    return f"{mention} {prompt}".strip()


class CharacterRepo:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def by_job(self, job_id: str) -> Character | None:
        async with self._sessions() as session:
            result = await session.execute(sa.select(Character).where(Character.job_id == job_id))
            return result.scalars().first()

    async def add(self, character: Character) -> None:
        """Stores a finished character once; a second call for the same job changes nothing."""
        values = {column.name: getattr(character, column.name) for column in Character.__table__.columns}
        async with self._sessions() as session:
            await session.execute(insert(Character).values(**values).on_conflict_do_nothing())
            await session.commit()

    async def list_for_owner(self, owner: str, *, limit: int) -> list[tuple[Character, str]]:
        """The owner's characters, newest first, each with the model its job was made with."""
        async with self._sessions() as session:
            result = await session.execute(
                sa.select(Character, Job.model)
                .join(Job, Job.id == Character.job_id)
                .where(Character.owner == owner, Character.deleted_at.is_(None))
                .order_by(Character.created_at.desc(), Character.id.desc())
                .limit(limit)
            )
            return [(row[0], row[1]) for row in result.all()]
