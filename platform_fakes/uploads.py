"""File uploads for both fakes: multipart/form-data parsing and the platforms' size rules.

Self-contained on purpose (the fakes call in here), parsed with the standard library's email
parser, so the fakes need no python-multipart. Limits and their sources:

- Telegram sendPhoto (core.telegram.org/bots/api#sendphoto): "The photo must be at most 10 MB
  in size. The photo's width and height must not exceed 10000 in total. Width and height ratio
  must be at most 20." Caption: "0-1024 characters after entities parsing".
- Discord (discord.com/developers/docs/reference#uploading-files, and the support article
  "File Upload Limits"): at most 10 attachments per message; the default upload limit is 10 MiB
  per file (boosted servers allow more); a whole request is capped at 25 MiB; beyond that the
  answer is 413 with JSON error code 40005 "Request entity too large".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from email.message import Message as EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

TELEGRAM_PHOTO_MAX = 10 * 1000 * 1000  # "10 MB"
TELEGRAM_CAPTION_MAX = 1024
TELEGRAM_PHOTO_SIDES_MAX = 10_000
TELEGRAM_PHOTO_RATIO_MAX = 20
DISCORD_FILE_MAX = 10 * 1024 * 1024  # default per-file upload limit (10 MiB)
DISCORD_FILE_MAX_BOOSTED = 25 * 1024 * 1024
DISCORD_REQUEST_MAX = 25 * 1024 * 1024
DISCORD_ATTACHMENTS_MAX = 10
# What the fakes' HTTP servers read before judging a request (aiohttp stops at 1 MiB by default):
# above every platform limit, so the refusal is the platform's answer, not the server library's.
BODY_READ_MAX = 2 * DISCORD_REQUEST_MAX
_PNG = b"\x89PNG\r\n\x1a\n"


@dataclass
class Upload:
    """One file part of a multipart request."""

    name: str
    filename: str
    content_type: str
    data: bytes = field(repr=False)


def is_multipart(content_type: str) -> bool:
    return content_type.lower().startswith("multipart/form-data")


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, Upload]]:
    """Form fields (as text) and file parts (by field name) of a multipart/form-data body."""
    parsed = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not parsed.is_multipart():
        raise ValueError("not a multipart body")
    fields: dict[str, str] = {}
    files: dict[str, Upload] = {}
    for part in parsed.iter_parts():
        assert isinstance(part, EmailMessage)
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = Upload(name, filename, part.get_content_type(), data)
        else:
            fields[name] = data.decode(part.get_content_charset() or "utf-8")
    return fields, files


def png_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk; None when the bytes are not a PNG."""
    if len(data) < 24 or not data.startswith(_PNG) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def telegram_photo_problem(upload: Upload | None) -> str | None:
    """Telegram's description for a photo it would refuse, or None."""
    if upload is None or not upload.data:
        return "Bad Request: there is no photo in the request"
    if len(upload.data) > TELEGRAM_PHOTO_MAX:
        return "Bad Request: file is too big"
    size = png_size(upload.data)
    if size is None:
        return "Bad Request: IMAGE_PROCESS_FAILED"
    width, height = size
    if width + height > TELEGRAM_PHOTO_SIDES_MAX or max(width, height) > TELEGRAM_PHOTO_RATIO_MAX * min(width, height):
        return "Bad Request: PHOTO_INVALID_DIMENSIONS"
    return None


def photo_sizes(upload: Upload, file_id: str) -> list[dict[str, Any]]:
    """The `photo` array of a sent Message: Telegram returns several sizes; one is enough here."""
    width, height = png_size(upload.data) or (0, 0)
    return [
        {
            "file_id": file_id,
            "file_unique_id": file_id[-16:],
            "width": width,
            "height": height,
            "file_size": len(upload.data),
        }
    ]


def discord_upload_problem(
    files: dict[str, Upload], request_size: int, file_max: int
) -> tuple[int, dict[str, Any]] | None:
    """Discord's refusal (status, JSON body) for uploads over its limits, or None."""
    if request_size > DISCORD_REQUEST_MAX or any(len(f.data) > file_max for f in files.values()):
        return 413, {"message": "Request entity too large", "code": 40005}
    if len(files) > DISCORD_ATTACHMENTS_MAX:
        return 400, {"message": "Invalid Form Body", "code": 50035, "errors": ["more than 10 attachments"]}
    return None


def discord_attachments(files: dict[str, Upload], payload: dict[str, Any], next_id: Any) -> list[dict[str, Any]]:
    """Attachment objects for a created message: `files[n]` parts matched to `payload.attachments`
    by id where given (discord.py sends both), filenames otherwise from the part."""
    declared = {str(a.get("id")): a for a in payload.get("attachments") or [] if isinstance(a, dict)}
    out = []
    for name, upload in sorted(files.items()):
        index = name.removeprefix("files[").removesuffix("]")
        meta = declared.get(index, {})
        filename = str(meta.get("filename") or upload.filename)
        attachment_id = str(next_id())
        width, height = png_size(upload.data) or (None, None)
        out.append(
            {
                "id": attachment_id,
                "filename": filename,
                "size": len(upload.data),
                "url": f"https://cdn.discordapp.com/attachments/0/{attachment_id}/{filename}",
                "proxy_url": f"https://media.discordapp.net/attachments/0/{attachment_id}/{filename}",
                "content_type": upload.content_type,
                "width": width,
                "height": height,
                "data": upload.data,  # kept for tests; removed before answering
            }
        )
    return out


def public_attachment(attachment: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attachment.items() if k != "data"}
