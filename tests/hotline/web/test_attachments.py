"""Attachments: the bytes decide the type, the size is capped, and only those who see the case may download."""

from __future__ import annotations

import hashlib
import struct
import zlib

import pytest

from tests.conftest import act


def png(width: int = 1, height: int = 1) -> bytes:
    """A real, decodable PNG (grey pixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


PNG = png(4, 3)
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n"


@pytest.fixture
async def dispatched(client, world, make_case):
    """A case dispatched to 住建局 (lead) with 交通局 assisting."""
    case = await make_case()
    r = await act(client, world.dispatcher, case["number"], "dispatch", {"lead_unit_id": world.units["zjj"], "co_unit_ids": [world.units["jtj"]]})
    assert r.status_code == 200, r.text
    return case


@pytest.fixture
def upload(client):
    async def do(person, number: str, data: bytes, filename: str = "photo.png", content_type: str = "image/png"):
        return await client.post(
            f"/api/cases/{number}/attachments",
            files={"file": (filename, data, content_type)},
            headers=person.headers,
        )

    return do


def stored_files(settings) -> set:
    return {p for p in settings.storage_dir.rglob("*") if p.is_file()}


async def attachment_count(number: str) -> int:
    from cases.models import Attachment

    return await Attachment.filter(case__number=number).count()


async def test_the_lead_units_handler_uploads_a_png_and_gets_its_sha256(world, dispatched, upload):
    r = await upload(world.zjj, dispatched["number"], PNG)

    assert r.status_code == 201, r.text
    body = r.json()
    assert body["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert body["size"] == len(PNG)
    assert body["content_type"] == "image/png"
    assert body["purpose"] == "evidence"
    assert body["filename"] == "photo.png"


async def test_an_uploaded_file_downloads_byte_identical(client, world, dispatched, upload):
    att = (await upload(world.zjj, dispatched["number"], PNG)).json()

    r = await client.get(f"/api/attachments/{att['id']}", headers=world.zjj.headers)

    assert r.status_code == 200
    assert r.content == PNG
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-disposition"].startswith("attachment")


async def test_an_agent_uploads_a_citizens_pdf(client, world, make_case, upload):
    case = await make_case()

    r = await upload(world.agent, case["number"], PDF, "投诉材料.pdf", "application/pdf")

    assert r.status_code == 201, r.text
    assert r.json()["purpose"] == "citizen"
    assert r.json()["filename"] == "投诉材料.pdf"
    assert (await client.get(f"/api/attachments/{r.json()['id']}", headers=world.dispatcher.headers)).content == PDF


async def test_the_upload_is_recorded_in_the_case_history(client, world, dispatched, upload):
    att = (await upload(world.zjj, dispatched["number"], PNG)).json()

    events = (await client.get(f"/api/cases/{dispatched['number']}/events", headers=world.agent.headers)).json()

    assert events[-1]["action"] == "attach"
    assert events[-1]["payload"]["attachment_id"] == att["id"]


async def test_a_text_file_renamed_png_is_refused(world, dispatched, upload, settings):
    files = stored_files(settings)

    r = await upload(world.zjj, dispatched["number"], b"just some text, honestly\n", "photo.png", "image/png")

    assert r.status_code == 422
    assert r.json()["field"] == "file"
    assert await attachment_count(dispatched["number"]) == 0
    assert stored_files(settings) == files


async def test_an_empty_file_is_refused(world, dispatched, upload):
    r = await upload(world.zjj, dispatched["number"], b"")

    assert r.status_code == 422
    assert await attachment_count(dispatched["number"]) == 0


async def test_a_file_over_the_size_limit_is_refused_and_leaves_nothing_behind(world, dispatched, upload, settings):
    files = stored_files(settings)
    big = PNG + b"\x00" * settings.max_attachment_bytes

    r = await upload(world.zjj, dispatched["number"], big)

    assert r.status_code in (413, 422)
    assert r.json()["error"] in ("invalid", "http_413", "too_large")
    assert await attachment_count(dispatched["number"]) == 0
    assert stored_files(settings) == files


async def test_a_body_over_the_upload_limit_is_a_413(world, dispatched, upload, settings):
    files = stored_files(settings)

    r = await upload(world.zjj, dispatched["number"], PNG + b"\x00" * (12 * 1024 * 1024))

    assert r.status_code == 413
    assert r.headers["content-type"] == "application/json"
    assert await attachment_count(dispatched["number"]) == 0
    assert stored_files(settings) == files


async def test_an_upload_that_is_not_multipart_is_refused(client, world, dispatched):
    r = await client.post(
        f"/api/cases/{dispatched['number']}/attachments",
        content=PNG,
        headers={**world.zjj.headers, "content-type": "image/png"},
    )

    assert r.status_code == 415
    assert await attachment_count(dispatched["number"]) == 0


async def test_an_upload_without_a_file_field_is_refused(client, world, dispatched):
    r = await client.post(
        f"/api/cases/{dispatched['number']}/attachments",
        data={"note": "no file"},
        files={"other": ("x.png", PNG, "image/png")},
        headers=world.zjj.headers,
    )

    assert r.status_code == 422
    assert await attachment_count(dispatched["number"]) == 0


async def test_another_units_handler_can_neither_upload_nor_download(client, world, dispatched, upload):
    att = (await upload(world.zjj, dispatched["number"], PNG)).json()

    assert (await upload(world.street, dispatched["number"], PNG)).status_code == 404
    r = await client.get(f"/api/attachments/{att['id']}", headers=world.street.headers)
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"


async def test_a_co_units_handler_may_download(client, world, dispatched, upload):
    att = (await upload(world.zjj, dispatched["number"], PNG)).json()

    r = await client.get(f"/api/attachments/{att['id']}", headers=world.jtj.headers)

    assert r.status_code == 200
    assert r.content == PNG


async def test_a_leader_may_not_upload(world, dispatched, upload):
    r = await upload(world.leader, dispatched["number"], PNG)

    assert r.status_code == 403
    assert await attachment_count(dispatched["number"]) == 0


async def test_a_missing_attachment_is_a_404(client, world):
    for attachment_id in ("999999999", "0", "abc", "99999999999999999999"):
        r = await client.get(f"/api/attachments/{attachment_id}", headers=world.admin.headers)
        assert r.status_code == 404, attachment_id


async def test_a_filename_keeps_neither_directories_nor_control_characters(client, world, dispatched):
    """A NUL in the name was a 500 on PostgreSQL."""
    # Written by hand: httpx would percent-encode the control characters.
    body = (
        b"--b0undary\r\n"
        + 'Content-Disposition: form-data; name="file"; filename="..\\..\\etc/现场\x00照片\x07.png"\r\n'.encode()
        + b"Content-Type: image/png\r\n\r\n"
        + PNG
        + b"\r\n--b0undary--\r\n"
    )
    r = await client.post(
        f"/api/cases/{dispatched['number']}/attachments",
        content=body,
        headers={**world.zjj.headers, "content-type": "multipart/form-data; boundary=b0undary"},
    )

    assert r.status_code == 201, r.text
    assert r.json()["filename"] == "现场照片.png"


async def test_a_file_lost_from_storage_is_a_404_not_a_500(client, world, dispatched, upload, settings):
    from cases.models import Attachment

    att = (await upload(world.zjj, dispatched["number"], PNG)).json()
    key = (await Attachment.get(id=att["id"])).storage_key
    (settings.storage_dir / key).unlink()

    r = await client.get(f"/api/attachments/{att['id']}", headers=world.zjj.headers)

    assert r.status_code == 404
