"""What tests share: factories (storyboards, events, renderers), media (frames, segments, tones, pixels), polling,
the runner on a bus, the fault harness and the stand-in servers. Test modules import from here, never from each other.

`tests/` is on pytest's `pythonpath` (pyproject.toml), so a test writes `from support.media import pixels`.
"""
