"""Conversations and their messages."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

ResponseType = Literal["continue", "wrap_up", "end"]


class Message(BaseModel):
    role: Literal["user", "assistant"]
    content: str
    turn_number: int
    created_at: datetime
    model: str | None = None


class ConversationInfo(BaseModel):
    conversation_id: str
    persona_id: str
    title: str | None
    status: Literal["active", "ended"]
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    turns: int
