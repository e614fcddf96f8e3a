"""``reelforge bench``: the generator against the plain pipeline, speed levers one by one, and a profile.

Outside the worker: it drives :class:`reelforge_generator.renderer.FrameRenderer` like a worker
does, on SD 2.1's architecture with random weights (:mod:`reelforge_bench.arch`).
"""
