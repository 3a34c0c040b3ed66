"""Attachments: citizens' photos and documents, handlers' evidence."""

from __future__ import annotations

import hashlib
import secrets

from tortoise.transactions import in_transaction

from cases import history
from cases.actors import Actor
from cases.errors import InvalidInput
from cases.models import Attachment, Case
from cases.storage import Storage

# The type is decided by the bytes, not by what the client claims.
_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"%PDF-", "application/pdf"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def clean_filename(filename: str | None) -> str:
    """The name to show: no directories, no control characters (PostgreSQL refuses U+0000)."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:200] or "file"


def sniff_type(data: bytes) -> str | None:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


async def add_attachment(
    case: Case,
    actor: Actor,
    filename: str,
    data: bytes,
    storage: Storage,
    *,
    max_bytes: int,
) -> Attachment:
    if not data:
        raise InvalidInput("文件为空", field="file")
    if len(data) > max_bytes:
        raise InvalidInput(f"文件超过 {max_bytes // (1024 * 1024)} MB", field="file")
    mime = sniff_type(data)
    if mime is None:
        raise InvalidInput("只接受 JPEG、PNG、GIF、WebP 图片或 PDF 文件", field="file")
    key = f"{secrets.token_hex(1)}/{secrets.token_hex(16)}"
    storage.save(key, data)
    try:
        async with in_transaction() as conn:
            att = await Attachment.create(
                case_id=case.id,
                uploaded_by_id=actor.user_id,
                purpose="evidence" if actor.role == "handler" else "citizen",
                filename=clean_filename(filename),
                content_type=mime,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                storage_key=key,
                using_db=conn,
            )
            await history.record(
                conn, case.id, actor, "attach", case.status, case.status,
                {"attachment_id": att.id, "filename": att.filename, "size": att.size},
            )
    except BaseException:
        storage.delete(key)
        raise
    return att
