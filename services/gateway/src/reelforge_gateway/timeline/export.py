"""A :class:`~reelforge_gateway.timeline.cut.Cut` as an OpenTimelineIO timeline, and that timeline in an editor's format.

The timeline (film rate, size in its metadata):

- ``V1 film``: one clip per shot in film order, each the whole media of the render in the film with the part the
  film uses as its source range (handles, when rendered, are outside it), and the storyboard's
  transitions as OTIO transitions (``SMPTE_Dissolve``; a fade through black is named so and keeps
  ``{"reelforge": {"type": "fade"}}``). The film holds the outgoing shot's last frame and the incoming
  shot's first frame under a transition of P frames for ``P // 2`` and ``P - P // 2`` frames
  (``film_joins``): the transition's in and out offsets are those, so its frames lie where the film's do.
- ``A1 sound``: each shot's sound (the segment file's audio track) under its picture, with the same transitions.
- ``V2 alternate 1``, ``V3 alternate 2`` ...: each shot's alternates (its earlier attempts, the other takes of a
  segment rendered with ``takes``/``variants``) at its place, on disabled tracks an editor can switch on.
- Markers: QA findings on the clip they belong to (failed gates, continuity below threshold, re-renders),
  join findings on the stack at their film frame.
- Every clip's metadata ``reelforge``: segment id, index, prompt, seed, shot key, model, attempt, QA scores.
"""

from __future__ import annotations

import contextlib
import io
from fractions import Fraction
from typing import Any, Literal
from xml.etree import ElementTree

import opentimelineio as otio

from reelforge_gateway.timeline.cut import Cut, Render, Shot

Format = Literal["otio", "fcpxml", "fcp7xml", "edl", "kdenlive"]
FORMATS: dict[str, tuple[str, str, str]] = {  # format -> (OTIO adapter, file suffix, media type)
    "otio": ("otio_json", "otio", "application/vnd.opentimelineio+json"),
    "fcpxml": ("fcpx_xml", "fcpxml", "application/xml"),
    "fcp7xml": ("fcp_xml", "xml", "application/xml"),
    "edl": ("cmx_3600", "edl", "text/plain"),
    "kdenlive": ("kdenlive", "kdenlive", "application/xml"),
}
NAMESPACE = "reelforge"
_MARKER_COLOURS = {
    "gate": otio.schema.MarkerColor.RED,
    "continuity": otio.schema.MarkerColor.ORANGE,
    "join": otio.schema.MarkerColor.YELLOW,
    "rerender": otio.schema.MarkerColor.BLUE,
}


def _rt(frames: float, fps: float, rate: float | None = None) -> otio.opentime.RationalTime:
    """``frames`` at ``fps`` as a time at the timeline's ``rate`` (default ``fps``), on a whole frame."""
    if rate is None or rate == fps:
        return otio.opentime.RationalTime(frames, fps)
    return otio.opentime.RationalTime(round(frames * rate / fps), rate)


def edit_rate(fps: float) -> float:
    """A rate SMPTE timecode (EDL, FCP7 XML) and Final Cut Pro know: ``fps`` itself or its smallest whole multiple
    among them (a 6 fps film is written at 24 fps, four timecode frames a picture), else the nearest above."""
    valid = [r for r in (24, 25, 30, 48, 50, 60) if otio.opentime.RationalTime.is_valid_timecode_rate(r)]
    if otio.opentime.RationalTime.is_valid_timecode_rate(fps):
        return fps
    multiples = [r for r in valid if abs(r / fps - round(r / fps)) < 1e-9]
    return min(multiples) if multiples else min((r for r in valid if r >= fps), default=valid[-1])


def _clip(cut: Cut, shot: Shot, render: Render, rate: float, *, media_url: str | None = None) -> otio.schema.Clip:
    available = otio.opentime.TimeRange(_rt(0, render.fps, rate), _rt(render.frames, render.fps, rate))
    reference = otio.schema.ExternalReference(target_url=media_url or render.media, available_range=available)
    metadata = {
        "segment_id": shot.id,
        "index": shot.index,
        "attempt": render.attempt,
        "take": render.take,
        "prompt": render.prompt or shot.prompt,
        "seed": shot.seed if render.seed is None else render.seed,
        "shot_key": shot.shot_key,
        "model": shot.model,
        "qa": dict(render.qa),
        "qa_passed": render.qa_passed,
        "qa_failed_gates": list(render.failed_gates),
        "handles": {"head": render.head, "tail": render.tail},
        "job_id": cut.job_id,
    }
    return otio.schema.Clip(
        name=f"{shot.index:03d} {shot.id}"
        + ("" if render is shot.render else f" attempt {render.attempt}" + (f" take {render.take}" if render.take else "")),
        media_reference=reference,
        source_range=otio.opentime.TimeRange(_rt(render.head, render.fps, rate), _rt(render.used, render.fps, rate)),
        metadata={NAMESPACE: metadata},
    )


def _transition(shot: Shot, fps: float, rate: float) -> otio.schema.Transition:
    half = shot.overlap // 2  # frames of the incoming shot under the transition (after the cut)
    fade = shot.transition == "fade"
    return otio.schema.Transition(
        name="Fade through black" if fade else "Cross Dissolve",
        transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
        in_offset=_rt(shot.overlap - half, fps, rate),  # before the cut: the outgoing shot's tail
        out_offset=_rt(half, fps, rate),
        metadata={NAMESPACE: {"type": shot.transition, "frames": shot.overlap}},
    )


def _gap(frames: int, fps: float, rate: float) -> otio.schema.Gap:
    return otio.schema.Gap(source_range=otio.opentime.TimeRange(_rt(0, fps, rate), _rt(frames, fps, rate)))


def build_timeline(cut: Cut, *, media_urls: dict[str, str] | None = None, rate: float | None = None) -> otio.schema.Timeline:
    """The OTIO timeline of ``cut``; ``media_urls`` (bundle path -> URL) replaces relative references, e.g. presigned URLs.

    Times are at the film's rate unless ``rate`` says otherwise (``edit_rate``: the formats that know only
    timecode rates); the metadata keeps the film's own.
    """
    urls = media_urls or {}
    fps = cut.fps
    rate = rate or fps
    timeline = otio.schema.Timeline(name=cut.title, global_start_time=_rt(0, fps, rate))
    timeline.metadata[NAMESPACE] = {
        "job_id": cut.job_id,
        "version": cut.version,
        "fps": fps,
        "width": cut.width,
        "height": cut.height,
        "frame_count": cut.frame_count,
        "film": urls.get(cut.film, cut.film),
    }
    video = otio.schema.Track(name="V1 film", kind=otio.schema.TrackKind.Video)
    sound = otio.schema.Track(name="A1 sound", kind=otio.schema.TrackKind.Audio)
    for shot in cut.shots:
        clip = _clip(cut, shot, shot.render, rate, media_url=urls.get(shot.render.media))
        if shot.overlap:
            video.append(_transition(shot, fps, rate))
        video.append(clip)
        if shot.render.has_audio:
            if shot.overlap and len(sound) and isinstance(sound[-1], otio.schema.Clip):
                sound.append(_transition(shot, fps, rate))
            heard = _clip(cut, shot, shot.render, rate, media_url=urls.get(shot.render.media))
            heard.name += " sound"  # FCP7 XML would write a clip equal to the picture's as a reference to it
            sound.append(heard)
        else:
            sound.append(_gap(shot.frames, fps, rate))
        for finding in (f for f in cut.findings if f.index == shot.index):
            offset = _rt(shot.render.head + (finding.frame - shot.start) * shot.render.fps / fps, shot.render.fps, rate)
            clip.markers.append(
                otio.schema.Marker(
                    name=finding.text,
                    marked_range=otio.opentime.TimeRange(offset, _rt(1, shot.render.fps, rate)),
                    color=_MARKER_COLOURS[finding.kind],
                    metadata={NAMESPACE: {"kind": finding.kind}},
                )
            )
    timeline.tracks.append(video)
    if any(s.render.has_audio for s in cut.shots):
        timeline.tracks.append(sound)
    for k in range(max((len(s.alternates) for s in cut.shots), default=0)):
        alternates = otio.schema.Track(name=f"V{k + 2} alternate {k + 1}", kind=otio.schema.TrackKind.Video)
        alternates.enabled = False  # an editor switches it on, or lifts a take from it onto V1
        for shot in cut.shots:
            if k < len(shot.alternates):
                alternates.append(_clip(cut, shot, shot.alternates[k], rate, media_url=urls.get(shot.alternates[k].media)))
            else:
                alternates.append(_gap(shot.frames, fps, rate))
        timeline.tracks.append(alternates)
    for finding in (f for f in cut.findings if f.index is None):
        timeline.tracks.markers.append(
            otio.schema.Marker(
                name=finding.text,
                marked_range=otio.opentime.TimeRange(_rt(finding.frame, fps, rate), _rt(1, fps, rate)),
                color=_MARKER_COLOURS[finding.kind],
                metadata={NAMESPACE: {"kind": finding.kind}},
            )
        )
    return timeline


def write(cut: Cut, fmt: Format, *, media_urls: dict[str, str] | None = None) -> str:
    """The cut's timeline as text in ``fmt`` (``FORMATS``), through OpenTimelineIO's adapter for it.

    EDL, FCP7 XML and FCPXML know only timecode rates: their timeline is at ``edit_rate`` of the film's.
    """
    rate = edit_rate(cut.fps) if fmt in ("edl", "fcp7xml", "fcpxml") else None
    timeline = build_timeline(cut, media_urls=media_urls, rate=rate)
    if fmt == "edl":
        return _edl(timeline)
    if fmt == "kdenlive":
        return _kdenlive(timeline)
    text: str = otio.adapters.write_to_string(timeline, adapter_name=FORMATS[fmt][0])
    return _fcpxml_transitions(text, cut) if fmt == "fcpxml" else text


def _seconds(frames: int, fps: float) -> str:
    """FCPXML's rational seconds."""
    value = Fraction(frames) / Fraction(fps).limit_denominator(1001)
    return f"{value.numerator}/{value.denominator}s" if value else "0s"


def _fcpxml_transitions(text: str, cut: Cut) -> str:
    """The FCPXML adapter writes no transitions: each is put into the spine before its incoming clip, at the film's times."""
    root = ElementTree.fromstring(text.encode())  # noqa: S314 - the adapter's own output, not outside input
    spine = root.find(".//sequence/spine")
    if spine is None:
        return text
    clips = [e for e in spine if e.tag in ("clip", "asset-clip")]
    for shot, clip in zip(cut.shots, clips, strict=False):
        if shot.overlap:
            name = "Fade to Color" if shot.transition == "fade" else "Cross Dissolve"
            begin = shot.start - (shot.overlap - shot.overlap // 2)
            element = ElementTree.Element(
                "transition", name=name, offset=_seconds(begin, cut.fps), duration=_seconds(shot.overlap, cut.fps)
            )
            spine.insert(list(spine).index(clip), element)
    ElementTree.indent(root, space="    ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"


def _edl(timeline: otio.schema.Timeline) -> str:
    """CMX 3600 has one picture track and at most two sound tracks: the film's, the disabled alternate tracks stay out.

    An EDL dissolve reads the incoming source from where the dissolve starts, and a timecode cannot be
    negative: a transition starts no earlier than the incoming media's handle allows (at the cut without
    handles), with its length kept.
    """
    flat = otio.schema.Timeline(name=timeline.name, global_start_time=timeline.global_start_time)
    for track in timeline.tracks:
        if not track.enabled:
            continue
        copy = track.deepcopy()
        for i, item in enumerate(copy):
            if isinstance(item, otio.schema.Transition) and i + 1 < len(copy):
                head = copy[i + 1].source_range.start_time
                if item.in_offset > head:
                    item.out_offset, item.in_offset = item.out_offset + item.in_offset - head, head
        flat.tracks.append(copy)
    return otio.adapters.write_to_string(flat, adapter_name="cmx_3600", style="avid")


def _kdenlive(timeline: otio.schema.Timeline) -> str:
    """The Kdenlive project (MLT XML) from OpenTimelineIO's Kdenlive adapter, with the film's own profile.

    The adapter writes a 1920x1080 profile whatever the film's size and prints to stdout; it keeps the
    clips at their film positions but has no transitions (Kdenlive's mixes need media past both ends of
    a cut), so a transition is a guide (marker) at its place; Kdenlive 25.04 and later open the ``.otio``
    with its transitions natively.
    """
    meta = timeline.metadata[NAMESPACE]
    marked = timeline.deepcopy()
    start = 0.0
    for item in marked.tracks[0]:
        if isinstance(item, otio.schema.Transition):
            kind = item.metadata[NAMESPACE]["type"]
            at = otio.opentime.TimeRange(_rt(start - item.in_offset.value, meta["fps"]), item.in_offset + item.out_offset)
            marked.tracks.markers.append(otio.schema.Marker(name=f"{kind} {at.duration.to_seconds():.2f} s", marked_range=at))
        else:
            start += item.duration().rescaled_to(meta["fps"]).value
    with contextlib.redirect_stdout(io.StringIO()):  # the adapter prints its deprecation notice
        text = otio.adapters.write_to_string(marked, adapter_name="kdenlive")
    root = ElementTree.fromstring(text.encode())  # noqa: S314 - the adapter's own output, not outside input
    profile = root.find("profile")
    if profile is not None:
        num, den = _rate_fraction(meta["fps"])
        profile.attrib.update(
            description=f"{meta['width']}x{meta['height']} {meta['fps']:g} fps",
            width=str(meta["width"]),
            height=str(meta["height"]),
            frame_rate_num=str(num),
            frame_rate_den=str(den),
            display_aspect_num=str(meta["width"]),
            display_aspect_den=str(meta["height"]),
        )
    black = root.find("./producer[@id='black_track']")
    if black is not None:  # the adapter leaves the background endless (MLT: 15000 frames); the film's length
        black.attrib.update({"in": "0", "out": str(meta["frame_count"] - 1)})
        ElementTree.SubElement(black, "property", name="length").text = str(meta["frame_count"])
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(root, encoding="unicode")


def _rate_fraction(fps: float) -> tuple[int, int]:
    rate = Fraction(fps).limit_denominator(1001)
    return rate.numerator, rate.denominator


def read(text: str | bytes, fmt: Format = "otio") -> otio.schema.Timeline:
    """A timeline back from text in ``fmt`` (re-import, tests)."""
    data = text.decode() if isinstance(text, bytes) else text
    result: Any = otio.adapters.read_from_string(data, adapter_name=FORMATS[fmt][0])
    return result
