"""Film QA: find the character in a segment's frames and describe it, so identity is compared on the character.

Whole frames hide a changed shirt behind the location (issue 11). Here the subject is localised with
classical methods that need no weights, in each sampled frame of a segment (BGR, ``COLOUR_WIDTH`` wide):

1. **Background model of the location.** The colours of the frame's border ring (an eighth of each
   side), the median over the sampled frames: what the location looks like where a subject rarely
   stands (a subject crossing the ring in a few frames does not count).
   Soft-binned (each pixel shared between its eight nearest CIELAB cell centres) and read back by
   interpolation: a pixel whose colour holds less than RARE of that ring per cell is foreground. Hard
   cells made noise decide it for colours near a cell edge (issue 18 point 7, docs/qa.md).
2. **Motion.** Consecutive frames are registered by ORB keypoints and a similarity transform
   (RANSAC: the camera's pan and zoom, the moving subject's keypoints are outliers); the
   double difference (a frame against both neighbours, warped onto it) marks what moves against
   the location.
3. **What stays put.** The ring is the location only where the frame edge lets it see: a static object
   of a colour of its own (a door) is foreground once a small tilt moves it out of the ring. So each
   frame is also compared with every other frame moved back onto it (the camera's pan and tilt,
   chained from neighbours' phase correlation): a pixel whose colour most frames show there too
   stays put. A foreground part that stays put, in a colour that the foreground which moves does not
   have (the ring's RARE test, against what moves), is the location and is taken out; the core of a
   subject that moves less than its own width stays put too, but in the colours of its moving edges,
   and is kept. Where nothing moves the ring alone decides.
4. **Saliency.** The foreground components are ranked by their motion, then by size; the best one
   is the subject. OpenCV's HOG people detector (``cv2.HOGDescriptor_getDefaultPeopleDetector``)
   is consulted where it fits, on frames whose height allows a 128-pixel person: a detection that
   overlaps a component makes it the subject.

The subject is described by its colour distribution in CIELAB after grey-world balance (so light
is reported once, as light), a texture histogram (gradient orientations of the smoothed picture),
its shape (the spread of its pixels down over their spread across) and its height in the frame
(scale), medians over the frames it was found in. What it cannot see: a subject that never moves
and shares the location's colours; a static object of its own colour at the edge of the border
ring in a shot where nothing moves (or whose colours the moving subject shares), which a small
camera move brings in or out of the ring; a zoom (the frames are registered by pan and tilt only,
so a zooming shot keeps what the ring decides); two characters in one shot (the more
salient one is taken: pairs are judged only between segments with the same cast); a
face (identity beyond colour, texture and build needs the optional embedding model).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from reelforge_shared.colour import bgr_to_rgb, grey_world_rgb, rgb_to_bgr, white_balance_rgb

RING = 0.125  # share of each side that is the border ring: the background model of the location
RARE = 0.0002  # a colour whose soft-binned share of the ring, read at its cell, is below this is foreground
MIN_AREA = 0.004  # smallest subject, share of the frame
L_BINS, AB_BINS = 10, 24  # the foreground test: CIELAB cells of 10 x 5 x 5 (skin and earth are two cells apart)
DARK_L = 25.0  # darker pixels carry little chroma (and noise): not part of the subject's colours, shape or scale
C_L, C_AB = 10, 24  # the subject's colours: CIELAB cells of 10 x 5 x 5
SIGNATURE_CELLS = 32
ORIENTATIONS = 8
TEXTURE_SIGMA = 1.0  # pixels of smoothing before the gradients of the texture histogram
STAY_TOLERANCE = 24  # 8-bit difference (largest channel) within which a registered pixel shows the same colour


def _hog() -> object | None:
    """OpenCV's HOG people detector; OpenCV 5 moved it out of the main package, so it is used where present."""
    if not hasattr(cv2, "HOGDescriptor"):
        return None
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor.getDefaultPeopleDetector())
    return hog


HOG = _hog()
ORB = cv2.ORB.create(nfeatures=400)
MATCHER = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)


@dataclass(slots=True)
class Subject:
    """A segment's subject: how often it was found, and its appearance."""

    found: float  # share of sampled frames with a subject
    height: float  # median height, share of the frame height
    aspect: float  # median spread down / spread across of the body's pixels (the build)
    colour: np.ndarray  # CIELAB histogram (L_BINS x AB_BINS x AB_BINS), sums to 1
    texture: np.ndarray  # gradient-orientation histogram, sums to 1
    boxes: list[tuple[int, int, int, int]]  # x, y, w, h per sampled frame (0 size: none)
    cached_signature: np.ndarray | None = field(default=None, repr=False, compare=False)  # made once: signature()

    def signature(self) -> np.ndarray:
        """The colour histogram's EMD signature (``_signature``), made on first use: a character's segments are compared
        pairwise, each pair used to sort both histograms again (most of the film check's time)."""
        if self.cached_signature is None:
            self.cached_signature = _signature(self.colour, C_L, C_AB)
        return self.cached_signature


def _corners(lab: np.ndarray, l_bins: int, ab_bins: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Soft binning: each colour's eight nearest CIELAB cell centres (flat indices) and its trilinear weights.

    L* 0..100 in ``l_bins``, a* and b* -60..60 in ``ab_bins`` (clamped). A colour on a cell edge is
    shared between both cells in proportion to its distance from their centres, so noise of a unit
    moves a unit's worth of weight instead of flipping the whole pixel into the next cell.
    """
    coords = (
        lab[..., 0] * l_bins / 100.0 - 0.5,
        (lab[..., 1] + 60.0) * ab_bins / 120.0 - 0.5,
        (lab[..., 2] + 60.0) * ab_bins / 120.0 - 0.5,
    )
    sides = []
    for value, bins in zip(coords, (l_bins, ab_bins, ab_bins), strict=True):
        value = np.clip(value, 0.0, bins - 1.0)
        low = np.minimum(value.astype(np.int32), bins - 2) if bins > 1 else np.zeros(value.shape, np.int32)
        frac = value - low
        sides.append(((low, 1.0 - frac), (low + 1, frac)))
    indices, weights = [], []
    for li, wl in sides[0]:
        for ai, wa in sides[1]:
            for bi, wb in sides[2]:
                indices.append((li * ab_bins + ai) * ab_bins + bi)
                weights.append(wl * wa * wb)
    return indices, weights


def _soft_histogram(lab: np.ndarray, l_bins: int, ab_bins: int) -> np.ndarray:
    """Share of ``lab``'s pixels (any shape, last axis L*a*b*) in each cell, soft-binned; sums to 1."""
    indices, weights = _corners(lab.reshape(-1, 3), l_bins, ab_bins)
    size = l_bins * ab_bins * ab_bins
    hist = sum(np.bincount(i, weights=w, minlength=size) for i, w in zip(indices, weights, strict=True))
    return np.asarray(hist) / max(1, lab.reshape(-1, 3).shape[0])


def _soft_lookup(hist: np.ndarray, lab: np.ndarray, l_bins: int, ab_bins: int) -> np.ndarray:
    """``hist`` read at each pixel's colour by trilinear interpolation between the cell centres."""
    indices, weights = _corners(lab, l_bins, ab_bins)
    return np.asarray(sum(hist[i] * w for i, w in zip(indices, weights, strict=True)))


def _signature(hist: np.ndarray, l_bins: int, ab_bins: int) -> np.ndarray:
    """Non-empty cells as an EMD signature: weight, L*, a*, b* of the cell centres."""
    idx = np.argsort(hist)[::-1][:SIGNATURE_CELLS]  # EMD grows with the cube of the cells: the fullest ones carry it
    idx = idx[hist[idx] > 0.002]
    li, rest = np.divmod(idx, ab_bins * ab_bins)
    ai, bi = np.divmod(rest, ab_bins)
    weights = hist[idx] / hist[idx].sum()
    step_l, step_ab = 100.0 / l_bins, 120.0 / ab_bins
    return np.column_stack([weights, (li + 0.5) * step_l, (ai + 0.5) * step_ab - 60.0, (bi + 0.5) * step_ab - 60.0]).astype(
        np.float32
    )


def _lab(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr.astype(np.float32) / 255.0, cv2.COLOR_BGR2Lab)


def _ring(shape: tuple[int, ...]) -> np.ndarray:
    h, w = shape[:2]
    mask = np.ones((h, w), bool)
    mask[int(h * RING) : h - int(h * RING), int(w * RING) : w - int(w * RING)] = False
    return mask


def _warp_to(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``src`` moved onto ``dst`` by the camera's motion between them (similarity transform; identity when unsure)."""
    ga, gb = cv2.cvtColor(src, cv2.COLOR_BGR2GRAY), cv2.cvtColor(dst, cv2.COLOR_BGR2GRAY)
    ka, da = ORB.detectAndCompute(ga, None)
    kb, db = ORB.detectAndCompute(gb, None)
    matrix = None
    if da is not None and db is not None and len(da) >= 8 and len(db) >= 8:
        matches = MATCHER.match(da, db)
        if len(matches) >= 8:
            pa = np.array([ka[m.queryIdx].pt for m in matches], dtype=np.float32)
            pb = np.array([kb[m.trainIdx].pt for m in matches], dtype=np.float32)
            matrix, _ = cv2.estimateAffinePartial2D(pa, pb, method=cv2.RANSAC, ransacReprojThreshold=2.0)
    if matrix is None:
        (dx, dy), _ = cv2.phaseCorrelate(ga.astype(np.float64), gb.astype(np.float64))
        matrix = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
    return cv2.warpAffine(src, matrix, (dst.shape[1], dst.shape[0]), borderMode=cv2.BORDER_REPLICATE)


def _motion(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Double difference: in each frame, what differs from both registered neighbours (0..1)."""
    forward = [_warp_to(frames[k], frames[k + 1]) for k in range(len(frames) - 1)]  # k onto k+1
    backward = [_warp_to(frames[k + 1], frames[k]) for k in range(len(frames) - 1)]  # k+1 onto k
    out = []
    for k, frame in enumerate(frames):
        here = frame.astype(np.int16)
        diffs = [
            np.abs(w.astype(np.int16) - here).max(axis=2)
            for w in ([forward[k - 1]] if k > 0 else []) + ([backward[k]] if k + 1 < len(frames) else [])
        ]
        if not diffs:
            out.append(np.zeros(frame.shape[:2], np.float32))
            continue
        both = np.minimum.reduce(diffs) if len(diffs) > 1 else diffs[0]
        out.append(np.clip(cv2.GaussianBlur(both.astype(np.float32), (0, 0), 2.0) / 30.0, 0.0, 1.0))
    return out


def _camera_path(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Where each frame's picture lies in the first frame's (x, y shift), chained from neighbours' phase correlation.

    A translation: the pans and tilts of a segment, found from the whole picture; neighbours are
    close, so a repeating texture (a barn's planks every 24 pixels) does not alias the shift.
    """
    greys = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY).astype(np.float64) for f in frames]
    path = [np.zeros(2)]
    for a, b in zip(greys, greys[1:], strict=False):
        (dx, dy), _ = cv2.phaseCorrelate(a, b)  # how far b's picture moved from a's
        path.append(path[-1] - (dx, dy))
    return path


def _stays_put(frames: list[np.ndarray], path: list[np.ndarray]) -> list[np.ndarray]:
    """In each frame, the pixels whose colour the other frames, moved back onto it, mostly show too: the location.

    The location stays put relative to the camera; a figure that moves leaves its pixels, so most
    frames show something else there. A location pixel a figure crosses in a few frames still stays
    put (most frames show it), and a figure in front of a static object does not (most frames show the
    object). Each comparison takes the closest colour within a pixel (registration and the codec move
    an edge by a pixel); frames that do not see a pixel do not count.
    """
    h, w = frames[0].shape[:2]
    out = []
    for k, frame in enumerate(frames):
        agree = np.zeros((h, w), np.int16)
        seen = np.zeros((h, w), np.int16)
        for j, other in enumerate(frames):
            if j == k:
                continue
            dx, dy = path[j] - path[k]  # frame j's picture lies (dx, dy) from frame k's
            matrix = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
            moved = cv2.warpAffine(other, matrix, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
            visible = cv2.warpAffine(np.ones((h, w), np.uint8), matrix, (w, h), borderMode=cv2.BORDER_CONSTANT)
            difference = cv2.absdiff(moved, frame).max(axis=2)
            closest = cv2.erode(difference, np.ones((3, 3), np.uint8))  # the best match within a pixel
            agree += (closest < STAY_TOLERANCE) & (visible > 0)
            seen += visible > 0
        out.append(2 * agree > seen)
    return out


def _location_parts(fore: np.ndarray, stays: np.ndarray, lab: np.ndarray, moving_colours: np.ndarray | None) -> np.ndarray:
    """The parts of ``fore`` that are the location: foreground that stays put in colours nothing moving has.

    A subject that moves less than its own width leaves a core that stays put (every frame shows the
    same shirt there); the core has the colours of the subject's moving edges, a static object its own.
    ``moving_colours`` is the soft CIELAB histogram of the segment's foreground that moves; None where
    nothing moves: a subject that never moves is found by its colours alone, as before.
    """
    location = np.zeros(fore.shape, bool)
    if moving_colours is None:
        return location
    count, labels = cv2.connectedComponents((fore.astype(bool) & stays).astype(np.uint8))
    for i in range(1, count):
        part = labels == i
        # The ring's test of a colour, against what moves: the part's typical colour is rare there.
        if float(np.median(_soft_lookup(moving_colours, lab[part], L_BINS, AB_BINS))) < RARE:
            location |= part
    return location


def _people(frame: np.ndarray) -> list[tuple[int, int, int, int]]:
    """HOG people detections, only where a person can be 128 pixels tall (its window)."""
    if HOG is None or frame.shape[0] < 160:
        return []
    found, weights = HOG.detectMultiScale(frame, winStride=(8, 8), scale=1.1)  # type: ignore[attr-defined]
    boxes = zip(found, np.ravel(weights), strict=False)
    return [(int(x), int(y), int(w), int(h)) for (x, y, w, h), score in boxes if score > 0.5]


def localise(frames: list[np.ndarray]) -> list[np.ndarray | None]:
    """The subject's mask in each frame (None where there is none)."""
    rgb_frames = [bgr_to_rgb(f) for f in frames]
    light = grey_world_rgb(rgb_frames)  # once for all frames (it was computed per frame)
    balanced = [rgb_to_bgr(white_balance_rgb(f, light)) for f in rgb_frames]
    labs = [_lab(f) for f in balanced]
    ring = _ring(frames[0].shape)
    # Per frame, then the median over frames: a subject crossing the ring in a few frames is not the location.
    background = np.median([_soft_histogram(lab[ring], L_BINS, AB_BINS) for lab in labs], axis=0)
    area = frames[0].shape[0] * frames[0].shape[1]
    motions = _motion(frames)
    stays = _stays_put(balanced, _camera_path(balanced))
    fores = []
    for lab in labs:
        fore: np.ndarray = (_soft_lookup(background, lab, L_BINS, AB_BINS) < RARE).astype(np.uint8)
        fore = cv2.morphologyEx(fore, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        fores.append(cv2.morphologyEx(fore, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)))
    movers = [fore.astype(bool) & ~stay for fore, stay in zip(fores, stays, strict=True)]
    moving_colours = None
    if sum(int(m.sum()) for m in movers) >= MIN_AREA * area * len(frames):
        moving_colours = _soft_histogram(np.concatenate([lab[m] for lab, m in zip(labs, movers, strict=True)]), L_BINS, AB_BINS)
    masks: list[np.ndarray | None] = []
    for k, (lab, fore) in enumerate(zip(labs, fores, strict=True)):
        # A static object of a colour the border ring does not hold (a door the frame edge cut out of the ring) is the
        # location too: what stays put while the camera moves, in colours of its own, is taken out.
        fore[_location_parts(fore, stays[k], lab, moving_colours)] = 0
        count, labels, stats, _ = cv2.connectedComponentsWithStats(fore)
        motion = motions[k]
        people = _people(frames[k])
        best, best_rank, kept = None, None, []
        for i in range(1, count):
            if stats[i, cv2.CC_STAT_AREA] < MIN_AREA * area:
                continue
            x, y, w, h = stats[i, :4]
            hit = any(px < x + w and x < px + pw and py < y + h and y < py + ph for px, py, pw, ph in people)
            moving = float(motion[labels == i].mean())
            kept.append(i)
            rank = (hit, stats[i, cv2.CC_STAT_AREA] * (0.25 + moving))
            if best_rank is None or rank > best_rank:
                best, best_rank = i, rank
        if best is None:
            masks.append(None)
            continue
        # A body can fall apart into parts (hair, face, shirt): parts touching the subject's box join it.
        x, y, w, h = stats[best, :4]
        reach_y, reach_x = int(0.1 * fore.shape[0]), int(0.02 * fore.shape[1])
        members = [
            i
            for i in kept
            if stats[i, 0] < x + w + reach_x
            and x - reach_x < stats[i, 0] + stats[i, 2]
            and stats[i, 1] < y + h + reach_y
            and y - reach_y < stats[i, 1] + stats[i, 3]
        ]
        subject = (np.isin(labels, members) & (_lab(frames[k])[..., 0] >= DARK_L)).astype(np.uint8)
        # Opening by 5 pixels drops the halo the codec leaves around dark edges (an outline, not a body part).
        masks.append(cv2.morphologyEx(subject, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)).astype(bool))
    return masks


def _orientations(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Gradient energy of the masked pixels by orientation (ORIENTATIONS bins over 180 degrees, soft-binned).

    The picture is smoothed first (Gaussian, TEXTURE_SIGMA): sensor noise and the codec's grain have
    gradients in every direction that would otherwise flatten a flat garment's histogram; each
    gradient is shared between its two nearest orientation bins, so one degree of noise moves one
    degree's worth of weight.
    """
    grey = cv2.GaussianBlur(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32), (0, 0), TEXTURE_SIGMA)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    magnitude, angle = cv2.cartToPolar(gx, gy)
    position = angle[mask] % np.pi / np.pi * ORIENTATIONS - 0.5
    low = np.floor(position)
    frac = position - low
    low = low.astype(np.int32) % ORIENTATIONS
    weights = magnitude[mask]
    return np.bincount(low, weights=weights * (1 - frac), minlength=ORIENTATIONS) + np.bincount(
        (low + 1) % ORIENTATIONS, weights=weights * frac, minlength=ORIENTATIONS
    )


def describe_subject(frames: list[np.ndarray]) -> Subject:
    masks = localise(frames)
    colour = np.zeros(C_L * C_AB * C_AB)
    texture = np.zeros(ORIENTATIONS)
    heights, aspects, boxes = [], [], []
    for frame, mask in zip(frames, masks, strict=True):
        if mask is None or mask.sum() < MIN_AREA * mask.size:
            boxes.append((0, 0, 0, 0))
            continue
        # Robust extent: rows at least a quarter as full as the fullest row (stray specks do not stretch the box).
        rows = mask.sum(axis=1)
        body = np.nonzero(rows >= 0.25 * rows.max())[0]
        cols = np.nonzero(mask[body].any(axis=0))[0]
        x, y, h = int(cols.min()), int(body.min()), int(body.max() - body.min()) + 1
        boxes.append((x, y, int(cols.max() - cols.min()) + 1, h))
        heights.append(h / frame.shape[0])
        # The build from the second moments of the body's pixels (their spread down over their spread across):
        # every pixel counts, so a row or column more or less at the edge moves it by a fraction of a pixel.
        ys, xs = np.nonzero(mask[body])
        aspects.append(float(np.std(ys)) / max(0.5, float(np.std(xs))))
        colour += _soft_histogram(_lab(frame)[mask], C_L, C_AB) * mask.sum()
        texture += _orientations(frame, mask)
    found = len(heights) / max(1, len(frames))
    return Subject(
        found=found,
        height=float(np.median(heights)) if heights else 0.0,
        aspect=float(np.median(aspects)) if aspects else 0.0,
        colour=colour / max(1.0, colour.sum()),
        texture=texture / max(1e-9, texture.sum()),
        boxes=boxes,
    )


COLOUR_SCALE = 80.0  # earth mover's distance in CIELAB units: 12 (a visibly different garment) scores 0.85
SCALE_AT_085 = float(np.log2(1.5))  # a subject 1.5 times as tall scores 0.85 (a close-up against a medium shot)
SHAPE_LIMIT = 0.8  # log2 of the aspect ratio (height/width) that scores 0


def subject_scores(a: Subject, b: Subject) -> dict[str, float]:
    """Components in [0, 1]: found (both), colour, texture, shape (build), scale."""
    if min(a.found, b.found) < 0.5:
        return {"found": round(min(a.found, b.found), 4)}
    distance = cv2.EMD(a.signature(), b.signature(), cv2.DIST_L2)[0]
    colour = 1.0 - distance / COLOUR_SCALE
    texture = 1.0 - 0.5 * float(np.abs(a.texture - b.texture).sum())
    shape = 1.0 - abs(float(np.log2(a.aspect / b.aspect))) / SHAPE_LIMIT * 0.6
    scale = 1.0 - 0.15 * (float(np.log2(a.height / b.height)) / SCALE_AT_085) ** 2
    return {
        k: round(float(np.clip(v, 0.0, 1.0)), 4)
        for k, v in {"colour": colour, "texture": texture, "shape": shape, "scale": scale}.items()
    }
