"""The softphone's tones are served by the app, one for every sound the vendored SDK can play."""

from __future__ import annotations

import io
import re
import wave
from pathlib import Path

import hotline
from hotline.web import sounds

STATIC = Path(hotline.__file__).parent / "static"


def sdk_sound_names() -> set[str]:
    sdk = next((STATIC / "vendor").glob("twilio-voice-sdk-*.min.js")).read_text(encoding="utf-8")
    return set(re.findall(r'SoundName\["\w+"\]="(\w+)"', sdk))


def test_every_sound_the_sdk_knows_is_synthesised_and_named_by_the_softphone():
    names = sdk_sound_names()
    script = (STATIC / "softphone.js").read_text(encoding="utf-8")
    assert len(names) == 15
    assert set(sounds.TONES) == names
    assert all(f'"{n}"' in script for n in names)


async def test_each_tone_is_a_short_playable_wav(client):
    for name in sounds.TONES:
        r = await client.get(f"/sounds/{name}.wav")
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
        with wave.open(io.BytesIO(r.content)) as w:
            seconds = w.getnframes() / w.getframerate()
            assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        assert 0.1 <= seconds <= 3.5 and len(r.content) < 60_000


async def test_an_unknown_tone_is_not_found(client):
    assert (await client.get("/sounds/cowbell.wav")).status_code == 404
    assert (await client.get("/sounds/..%2Fsettings.wav")).status_code == 404
