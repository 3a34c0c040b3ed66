"""The browser softphone's ring, dial and key tones, made here instead of fetched from Twilio's CDN.

The Voice JS SDK plays a sound for a ringing call, an outgoing call, a
hang-up and each key pressed; unless the page names its own, it downloads
them from sdk.twilio.com. The console must work with only the app's own
origin reachable (agents' networks are often closed), so the tones are
synthesised once as small WAV files: the ring follows China's ringback
cadence (450 Hz, 1 s on, 4 s off, shortened to 2 s off here), the keys are
the standard DTMF pairs.
"""

from __future__ import annotations

import io
import math
import struct
import wave
from functools import lru_cache

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

RATE = 8000
# (low, high) Hz of each key, ITU-T Q.23.
_DTMF = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477),
    "s": (941, 1209), "0": (941, 1336), "h": (941, 1477),
}
# The SDK's sound names (Device.SoundName) and what each plays: [(frequencies, seconds)], () = silence.
TONES: dict[str, list[tuple[tuple[int, ...], float]]] = {
    "incoming": [((450,), 1.0), ((), 2.0)],
    "outgoing": [((450,), 0.25)],
    "disconnect": [((450,), 0.15), ((), 0.1), ((450,), 0.15), ((), 0.1), ((450,), 0.15)],
    **{f"dtmf{key}": [(pair, 0.15)] for key, pair in _DTMF.items()},
}


@lru_cache(maxsize=None)
def wav(name: str) -> bytes:
    """16-bit mono PCM at 8 kHz: a few kilobytes per tone."""
    frames = bytearray()
    for freqs, seconds in TONES[name]:
        n = int(RATE * seconds)
        for i in range(n):
            # A 5 ms ramp at each end keeps the tone from clicking.
            ramp = min(1.0, i / 40, (n - i) / 40)
            sample = sum(math.sin(2 * math.pi * f * i / RATE) for f in freqs) / max(1, len(freqs))
            frames += struct.pack("<h", int(sample * ramp * 0.4 * 32767))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(bytes(frames))
    return out.getvalue()


async def sound(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in TONES:
        return PlainTextResponse("not found", status_code=404)
    return Response(wav(name), media_type="audio/wav", headers={"Cache-Control": "public, max-age=86400"})


def routes() -> list[Route]:
    return [Route("/sounds/{name}.wav", sound, methods=["GET"])]
