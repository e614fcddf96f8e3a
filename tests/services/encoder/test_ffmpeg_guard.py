"""ffmpeg reads local media only and is killed at its time limit: a file that names URLs or other files opens nothing."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import ffmpeg
import pytest

from reelforge_encoder.ffmpeg import ffmpeg_exe, run
from reelforge_shared.errors import InvalidInput, PermanentError
from reelforge_shared.references import check_audio
from support.egress_servers import INTERNAL, Server


@pytest.fixture
async def loopback() -> AsyncIterator[Server]:
    server = await Server(INTERNAL).start()
    yield server
    assert server.server is not None
    server.server.close()


def _sneaky_inputs(folder: Path, loopback: Server) -> list[Path]:
    """Files a storyboard's "audio" could be: an HLS playlist of a loopback URL, a concat listing of a local file."""
    secret = folder / "secret.wav"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=0.2", str(secret)], check=True)
    hls = folder / "music.wav"
    hls.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{loopback.url('/a.ts')}\n#EXT-X-ENDLIST\n")
    concat = folder / "voice.wav"
    concat.write_text(f"ffconcat version 1.0\nfile {secret.name}\n")
    http = folder / "bed.wav"
    http.write_text(f"ffconcat version 1.0\nfile {loopback.url('/b.wav')}\n")
    return [hls, concat, http]


async def test_ffmpeg_opens_no_url_or_file_named_inside_an_input(tmp_path: Path, loopback: Server) -> None:
    for source in _sneaky_inputs(tmp_path, loopback):
        with pytest.raises(PermanentError, match="ffmpeg failed on sneaky"):
            run(ffmpeg.input(str(source)).output(str(tmp_path / "out.flac")), ffmpeg_exe(), "sneaky input")
        with pytest.raises(InvalidInput, match="music"):
            check_audio(source.read_bytes(), "music", 60)
    assert loopback.requests == []
    # A plain local file still goes through (the whitelists name what Reelforge's own inputs need).
    run(ffmpeg.input(str(tmp_path / "secret.wav")).output(str(tmp_path / "ok.flac")), ffmpeg_exe(), "plain input")
    assert check_audio((tmp_path / "secret.wav").read_bytes(), "music", 60) == "audio/wav"


def test_ffmpeg_is_killed_at_its_time_limit(tmp_path: Path) -> None:
    endless = ffmpeg.input("anullsrc", f="lavfi").output("-", format="null")  # a source that never ends
    with pytest.raises(PermanentError, match=r"ran past its 0.5 s limit on endless sound and was killed"):
        run(endless, ffmpeg_exe(timeout_s=0.5), "endless sound")
