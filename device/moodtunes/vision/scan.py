"""The mood scan: a worker thread reads the camera, finds the largest face, classifies it, and over a
scan window (default 3 s) combines the per-frame probabilities into one ``MoodReading``.

The UI thread only calls ``begin_scan``/``cancel_scan`` and reads ``snapshot()``; the heavy work
(decoding, LiteRT, OpenCV, all of which release the GIL) stays on the worker. The camera is open
only while a scan runs (after the visitor agreed to it): between scans it is closed, no frame is
read or looked at, and the last frame is dropped. Frames stay in memory: nothing is written to disk
or sent anywhere. A camera that fails, is missing or disappears mid-scan is reported in the
snapshot and reopened every ``camera.retry_seconds``, never raised to the UI; one failed read
after a good frame is read again at once (a dropped frame cost 2 s of a 3 s scan). A read that
hangs (a dying Pi camera, a webcam pulled out) can't stall the screen: a frame older than
STALE_FRAME_S is not shown, and the scan window ends on time without the worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Self

import cv2
import numpy as np

from moodtunes.config import Settings
from moodtunes.domain import MoodReading, ScanOutcome
from moodtunes.vision.camera import Camera, CameraError, open_camera
from moodtunes.vision.faces import FaceBox, load_face_detector
from moodtunes.vision.pipeline import Classifier, Detector, FrameAnalyzer

logger = logging.getLogger(__name__)

PREVIEW_MAX_WIDTH = 800  # wider frames are shrunk for the preview (the Pi's touchscreen is 800 px wide)
HINT_STARTING = "starting the camera"
HINT_NO_CAMERA = "camera not found – retrying"
HINT_MORE_LIGHT = "more light"
HINT_FACE_CAMERA = "face the camera"
HINT_MOVE_CLOSER = "move closer"
HINT_TOO_BRIGHT = "too bright"
HINT_HOLD_STILL = "hold still"
DARK_BELOW = 45.0  # mean pixel value (0-255, over R, G and B alike, not luma) under which the view is too dark
CLIPPED_FROM = 250.0  # luma (0-255) from which a pixel counts as clipped (blown out)
# "Too bright" when over this share of the face box's pixels is clipped. Picked on 900 FER PublicTest
# faces pasted into photos whose pixels were multiplied by a gain and clipped at 255 (a lit face, the
# camera metering a darker room), checked on all 2,155 (bench/vision.py exposure, docs/vision.md): it
# fires on 1.7 % of the faces as they are and 4.1 % at x1.2, on 73 % at x1.6 and 95-99 % at x2-x3,
# which cost 5-23 points of accuracy. FER faces are contrast-stretched, so some clean ones are
# clipped in part already: 0.30 fired on 3.6 % of the 900 as they are and 8.0 % at x1.2.
BRIGHT_FACE_ABOVE = 0.35
# A frame without a face, over this share clipped, is "too bright" rather than "face the camera": a
# quarter of the faceless frames at x2 and half at x3 on the same bench; none at x1.6 or less.
BLOWN_OUT_ABOVE = 0.5
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as OpenCV's RGB -> grey for the emotion crop
# "move closer" below this face width, as a fraction of the frame's long side: the frame alone
# finds faces from about 1/8, unsteadily under 1/6; smaller ones are found by looking closer at
# its centre, and read, but a step back loses them (docs/vision.md, "Visitors further away").
SMALL_FACE_BELOW = 1 / 6
# "hold still" when the face moves faster than this, in face widths a second (``face_speed``).
# Picked on 900 FER PublicTest faces pasted into photos and moved a few pixels a frame at 30 fps,
# blurred along the way as a 1/30 s exposure blurs them (bench/vision.py motion, docs/vision.md):
# they read as well as still faces up to 1.5 widths a second, 2 points worse at 1.5-2, 4.5 at 2-3
# and 13 above. At 1.5 it fires on 0.3 % of still frames and 91-98 % of those faster than 1.5;
# at 1 on 18-58 % of faces under a width a second, which read as well as still ones. Checked on
# the other 1,255 faces: 0.3 % and 91-98 % again.
HOLD_STILL_ABOVE = 1.5
# The face's speed is measured since this many face frames before: a box wobbling in place doesn't
# add up, a movement does (one frame back, 1.7 % of still frames said "hold still"; three, 0.2 %).
MOTION_SPAN_FRAMES = 3
# "Hold still" starts at this many face frames in a row over HOLD_STILL_ABOVE, so that one odd box
# doesn't flash it. Said on each fast frame, it flashed in 1.1-1.3 % of still 8-frame runs (0.27 s
# at 30 fps) on the motion bench; two in a row, 0.3 %, while runs at 2.6-3.7 widths a second still
# hear it in 89-90 % (93-94 %), from their third frame instead of their second.
HOLD_STILL_AFTER_FRAMES = 2
# Then it goes on this long after the last fast frame while the face stays tracked: about the time
# it takes to read three words (8 frames on a Pi at 10 fps), and a face moving near the threshold
# doesn't flip between bold and grey frame to frame. The bench's runs are too short to measure it.
HOLD_STILL_KEEP_S = 0.8
FIRST_FRAME_GRACE_S = 1.5  # a scan whose camera gives no frame within its window plus this ends NO_CAMERA
STOP_TIMEOUT_S = 5.0  # stop() waits this long for a camera read that may never return
STALE_FRAME_S = 1.0  # a scan's frame no newer than this (or 2.5 frames at camera.fps) is no longer shown
MIN_FACE_FRAMES = 3  # a reading averages at least this many frames with a face; fewer is a glimpse (uncertain)
_IDLE_POLL_SECONDS = 0.05


def combine_readings(face_probs: Sequence[Sequence[float]], labels: Sequence[str], *, frames_seen: int,
                     uncertain_below: float, glare_frames: int = 0, camera_lost: bool = False) -> MoodReading:
    """One reading from a scan window: the mean of the per-frame probabilities of the frames that had
    a face (an averaged vote that one odd frame cannot flip), confidence = the top mean probability.

    No frames at all -> NO_CAMERA; frames but no face -> NO_FACE; confidence under
    ``uncertain_below``, fewer than MIN_FACE_FRAMES frames with a face (a glimpse: the camera
    gone a moment into the scan), a face too bright in most of them (``glare_frames``: such
    faces are read 5-23 points worse), or a camera lost after the scan's first frame
    (``camera_lost``: the visitor was told "The camera stopped") -> UNCERTAIN (with the best
    guess kept in ``label``); otherwise OK.
    """
    if frames_seen <= 0:
        return MoodReading(ScanOutcome.NO_CAMERA)
    if len(face_probs) == 0:
        return MoodReading(ScanOutcome.NO_FACE)
    stacked = np.asarray(face_probs, dtype=np.float64)
    if stacked.ndim != 2 or stacked.shape[1] != len(labels):
        raise ValueError(f"expected (n, {len(labels)}) probabilities, got shape {stacked.shape}")
    mean = stacked.mean(axis=0)
    mean = mean / mean.sum()
    best = int(np.argmax(mean))
    confidence = float(mean[best])
    sure = (confidence >= uncertain_below and len(stacked) >= MIN_FACE_FRAMES and 2 * glare_frames <= len(stacked)
            and not camera_lost)
    outcome = ScanOutcome.OK if sure else ScanOutcome.UNCERTAIN
    return MoodReading(outcome, labels[best], confidence, {label: float(p) for label, p in zip(labels, mean)},
                       frames_used=len(stacked))


def clipped_share(pixels: np.ndarray) -> float:
    """The share of RGB ``pixels`` whose luma is clipped. Luma, not any channel: the emotion model
    reads the face in grey, and the thresholds were measured on grey FER faces, whereas skin's red
    channel clips long before its luma (the sample photo's face brightened x1.2: 47 % of its pixels
    have a clipped channel, 12 % a clipped luma). A grey frame is its own luma."""
    luma = pixels[..., :3] @ LUMA_WEIGHTS if pixels.ndim == 3 else pixels
    return float((luma >= CLIPPED_FROM).mean())


def face_pixels(frame: np.ndarray, face: FaceBox) -> np.ndarray:
    """A sample (every 4th pixel each way) of the part of ``face``'s box inside ``frame``."""
    x, y, w, h = face.clipped_pixel_box(frame.shape[1], frame.shape[0])
    return frame[y:y + h, x:x + w][::4, ::4]


def too_bright(face_region: np.ndarray) -> bool:
    """Whether a face (``face_pixels``) is blown out past reading well: said as a hint, and a scan
    with such a face in most frames is a best guess, however far the face is."""
    return bool(face_region.size) and clipped_share(face_region) > BRIGHT_FACE_ABOVE


def face_speed(earlier: FaceBox, later: FaceBox, seconds: float) -> float:
    """How fast a face moves, in face widths a second: the furthest any edge of its box went from
    ``earlier`` to ``later`` (a step sideways moves every edge, a step closer the sides apart), over
    the box's mean width, so a far face and a near one blurred alike are alike. Two frames read
    at one clock tick count as a millisecond apart."""
    shift = max(abs(later.x - earlier.x), abs(later.y - earlier.y),
                abs(later.x + later.w - earlier.x - earlier.w), abs(later.y + later.h - earlier.y - earlier.h))
    return shift / max((earlier.w + later.w) / 2, 1.0) / max(seconds, 1e-3)


@dataclass
class FaceTrack:
    """The largest face of the last few frames of a scan, to tell how fast it moves. A frame
    without a face ends the track: a face that comes back, maybe someone else's, has not moved.
    So does a face that doesn't overlap the last one: another face, taking its turn as the largest
    (two visitors side by side were told to hold still); a face moves far less in a frame."""

    recent: list[tuple[FaceBox, float]] = field(default_factory=list)  # (face, when), oldest first

    def follow(self, face: FaceBox | None, at: float) -> float | None:
        """Add this frame's face (None: no face) read at ``at`` (seconds); return its speed since
        MOTION_SPAN_FRAMES face frames before (fewer at the track's start), None with no face before."""
        last = self.recent[-1][0] if self.recent else None
        if face is None or (last is not None and not face.iou((last.x, last.y, last.w, last.h))):
            self.recent.clear()
        if face is None:
            return None
        speed = None
        if self.recent:
            earlier, when = self.recent[0]
            speed = face_speed(earlier, face, at - when)
        self.recent = [*self.recent, (face, at)][-MOTION_SPAN_FRAMES:]
        return speed


@dataclass
class HoldStill:
    """Whether to say "hold still", from the face's speeds (``FaceTrack.follow``) frame by frame:
    said from HOLD_STILL_AFTER_FRAMES fast frames in a row, kept HOLD_STILL_KEEP_S after the last
    fast one, so that it neither flashes for one frame nor flips with a speed near the threshold."""

    fast_in_a_row: int = 0
    last_fast: float | None = None  # when the last fast frame of the hint being said was read

    def update(self, speed: float | None, at: float) -> bool:
        """Add a frame's ``speed`` read at ``at`` (seconds); None (no face, or a track started
        again: maybe someone else) ends the hint. Return whether to say it for this frame."""
        if speed is None:
            self.fast_in_a_row, self.last_fast = 0, None
            return False
        fast = speed > HOLD_STILL_ABOVE
        self.fast_in_a_row = self.fast_in_a_row + 1 if fast else 0
        if fast and (self.fast_in_a_row >= HOLD_STILL_AFTER_FRAMES or self.last_fast is not None):
            self.last_fast = at
        if self.last_fast is not None and at - self.last_fast > HOLD_STILL_KEEP_S:
            self.last_fast = None
        return self.last_fast is not None


def hint_for(frame: np.ndarray | None, faces: Sequence[FaceBox], camera_ok: bool, *,
             moving: bool = False, glare: bool | None = None) -> str | None:
    """What to tell the person in front of the kiosk, or None when the view is good. ``moving``
    (the face is moving too fast to read well) comes last: a face too far, too dark or too bright
    stays so however still it is, and a visitor stepping closer moves the box as a sway does.
    ``glare``: whether ``faces[0]`` is too bright (``too_bright``), when the caller has it already
    (the scanner, which counts it for the reading too: worked out once a frame), else worked out here."""
    if not camera_ok or frame is None:
        return HINT_NO_CAMERA
    if not faces:
        scene = frame[::8, ::8]
        if float(scene.mean()) < DARK_BELOW:
            return HINT_MORE_LIGHT
        return HINT_TOO_BRIGHT if clipped_share(scene) > BLOWN_OUT_ABOVE else HINT_FACE_CAMERA
    face = faces[0]
    if face.w < SMALL_FACE_BELOW * max(frame.shape[:2]):
        return HINT_MOVE_CLOSER
    region = face_pixels(frame, face)
    if region.size and float(region.mean()) < DARK_BELOW:
        return HINT_MORE_LIGHT
    if too_bright(region) if glare is None else glare:
        return HINT_TOO_BRIGHT
    return HINT_HOLD_STILL if moving else None


def centred_crop(width: int, height: int, aspect: float) -> tuple[int, int, int, int]:
    """The centred (x, y, w, h) part of a ``width`` x ``height`` frame with the ``aspect`` (width
    / height) of the card it fills without bars: what a visitor sees of the camera's view."""
    if width > height * aspect:  # frame wider than the card: trim the sides
        w = max(1, min(width, round(height * aspect)))
        return (width - w) // 2, 0, w, height
    h = max(1, min(height, round(width / aspect)))
    return 0, (height - h) // 2, width, h


def preview_frame(frame: np.ndarray, faces: Sequence[FaceBox]) -> tuple[np.ndarray, tuple[FaceBox, ...]]:
    """The frame for the screen (shrunk to PREVIEW_MAX_WIDTH if wider) and the boxes in its pixels."""
    width = frame.shape[1]
    if width <= PREVIEW_MAX_WIDTH:
        return frame, tuple(faces)
    factor = PREVIEW_MAX_WIDTH / width
    rows = max(1, round(frame.shape[0] * factor))  # OpenCV refuses to make no rows of a very wide frame
    small = cv2.resize(frame, (PREVIEW_MAX_WIDTH, rows), interpolation=cv2.INTER_AREA)
    return small, tuple(face.scaled(factor) for face in faces)


def camera_problem(camera: Camera, exc: Exception) -> str:
    """What went wrong with ``camera``, naming it once: a CameraError already says which camera
    (or file) failed; any other error, a driver's, doesn't."""
    if isinstance(exc, CameraError):
        return str(exc)
    return f"{getattr(camera, 'description', 'camera')}: {exc}"


@dataclass(frozen=True)
class ScanSnapshot:
    """What the UI shows, as of the latest processed frame (immutable, safe to hand between threads)."""

    frame: np.ndarray | None = field(default=None, repr=False)  # latest RGB frame of this scan (not mirrored; the UI mirrors), shrunk if large
    faces: tuple[FaceBox, ...] = ()  # in ``frame`` pixel coordinates, largest first
    scanning: bool = False
    progress: float = 0.0  # 0..1 over the scan window
    hint: str | None = None
    camera_ok: bool = False
    result: MoodReading | None = None  # set when a scan finishes (including NO_FACE / NO_CAMERA / UNCERTAIN)
    live_probs: dict[str, float] | None = None  # the current frame's probabilities, for a live meter


@dataclass
class _ScanWindow:
    """One scan: it asks for the camera at ``requested`` and runs ``seconds`` from the first frame
    (``started``), so the time a camera takes to open doesn't shorten it."""

    requested: float
    seconds: float
    started: float | None = None
    face_probs: list[np.ndarray] = field(default_factory=list)
    glare_frames: int = 0  # of the frames with a face, those whose face was too bright to read well
    track: FaceTrack = field(default_factory=FaceTrack)  # the face's last boxes, for "hold still"
    hold_still: HoldStill = field(default_factory=HoldStill)  # whether "hold still" is being said
    frames_seen: int = 0
    frames_failed: int = 0  # frames whose analysis raised (logged once per scan, then counted)
    camera_lost: bool = False  # the camera failed after the first frame: the visitor saw it go

    def progress(self, now: float) -> float:
        if self.started is None:
            return 0.0
        return min(1.0, max(0.0, (now - self.started) / self.seconds))

    def is_over(self, now: float) -> bool:
        if self.started is None:
            return now - self.requested >= _first_frame_within_s(self.seconds)
        return now - self.started >= self.seconds


def _first_frame_within_s(seconds: float) -> float:
    """How long after it is asked for a scan of a ``seconds`` window waits for its first frame
    before it ends NO_CAMERA."""
    return seconds + FIRST_FRAME_GRACE_S


def longest_scan_s(seconds: float) -> float:
    """The longest a scan of a ``seconds`` window takes from ``begin_scan`` to its result: a camera
    slow to start gives its first frame just within ``_first_frame_within_s``, and the whole window
    runs from that frame (2 x 10 + 1.5 = 21.5 s for a 10 s scan). The kiosk waits this long before
    it tells the visitor the scan didn't finish."""
    return _first_frame_within_s(seconds) + seconds


class MoodScanner:
    """Camera -> face -> emotion on a worker thread, with timed mood scans (see the module docstring).

    ``camera_factory`` (no arguments, returns an open Camera or raises CameraError), ``detector`` and
    ``model`` default to the configured camera, BlazeFace and the shipped emotion model.
    """

    def __init__(self, settings: Settings, *, camera_factory: Callable[[], Camera] | None = None,
                 detector: Detector | None = None, model: Classifier | None = None) -> None:
        self._settings = settings
        cam = settings.camera
        self._camera_factory = camera_factory or (lambda: open_camera(
            cam.source, cam.width, cam.height, cam.fps, sample_when_missing=cam.sample_when_missing))
        self._detector = detector
        self._model = model
        self._analyzer: FrameAnalyzer | None = None
        self._lock = threading.Lock()
        self._snapshot = ScanSnapshot(hint=HINT_NO_CAMERA)
        self._frame_shown_at = 0.0  # when the snapshot's frame was read (monotonic)
        # A frame read longer ago is stale (a read hangs); at 1 fps a good camera took a second a frame.
        self._stale_after = max(STALE_FRAME_S, 2.5 / settings.camera.fps)
        self._view_aspect: float | None = None  # of the scan's preview: the part of each frame read
        self._scan: _ScanWindow | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_problem: str | None = None  # the camera problem last logged

    def start(self) -> None:
        """Load the models (FaceModelError / EmotionModelError if they are unusable) and start the
        worker, which opens the camera only when a scan begins, retrying in the background if it fails."""
        if self._thread is not None:
            return
        vision = self._settings.vision
        detector = self._detector or load_face_detector(
            vision.face_model, min_score=vision.min_face_score, input_size=vision.face_input_size)
        model = self._model
        if model is None:
            from moodtunes.emotion import EmotionModel

            model = EmotionModel.load(self._settings.emotion.model, threads=self._settings.emotion.threads)
        self._analyzer = FrameAnalyzer.for_settings(detector, model, vision)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="mood-scanner", daemon=True)
        self._thread.start()

    def begin_scan(self, seconds: float | None = None, view_aspect: float | None = None) -> None:
        """Start (or restart) a scan window; its result appears in ``snapshot().result``. It shows
        only frames read for it: a frame left by a camera read that hung was shown as live in every
        later scan, the next visitor's too. ``view_aspect``: the width / height of the preview the
        visitor sees; only that centred part of each frame is read (and shown), so that no one is
        read who can't see themselves on the screen (a face at the frame's edge, cropped off the
        preview, was read: a bystander, maybe)."""
        window = _ScanWindow(time.monotonic(), float(seconds if seconds is not None else self._settings.vision.scan_seconds))
        with self._lock:
            self._scan = window
            self._view_aspect = view_aspect
            self._snapshot = replace(self._snapshot, scanning=True, progress=0.0, result=None, hint=HINT_STARTING,
                                     frame=None, faces=(), live_probs=None)

    def cancel_scan(self) -> None:
        with self._lock:
            self._scan = None
            self._snapshot = replace(self._snapshot, scanning=False, progress=0.0, frame=None, faces=(),
                                     live_probs=None)

    def snapshot(self) -> ScanSnapshot:
        """What to show now. A scan whose time is up ends here too (its worker may be stuck in a
        camera read), and a frame older than STALE_FRAME_S is dropped, the camera reported."""
        now = time.monotonic()
        self._finish_scan_if_due(now)
        with self._lock:
            shown = self._snapshot
            if shown.frame is not None and now - self._frame_shown_at > self._stale_after:
                shown = self._snapshot = replace(shown, frame=None, faces=(), live_probs=None, camera_ok=False,
                                                 hint=HINT_NO_CAMERA)
            return shown

    def stop(self) -> None:
        """Stop the worker and close the camera. Waits for the frame in progress, but not for a
        camera read that hangs (a dying Pi camera can block forever): the worker is a daemon thread."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT_S)
            if self._thread.is_alive():  # kept, so that start() can't add a second worker beside it
                logger.warning("the camera did not stop within %.0f s; leaving it behind", STOP_TIMEOUT_S)
            else:
                self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- worker ---------------------------------------------------------------------------

    def _run(self) -> None:
        camera: Camera | None = None
        read_again = False  # a failed read right after a good frame is tried again at once
        try:
            while not self._stopping.is_set():
                if not self._scan_running():
                    if camera is not None:
                        self._close(camera)
                        camera = None
                        self._forget_frames()
                    self._stopping.wait(_IDLE_POLL_SECONDS)
                    continue
                if camera is None:
                    camera = self._open_camera()
                    if camera is None:
                        self._wait_for_retry()
                    continue  # the scan may have been cancelled while the camera opened: no frame then
                try:
                    asked = time.monotonic()
                    frame = camera.read()
                    taken = time.monotonic()
                except Exception as exc:  # CameraError or any driver error: read again or reopen, never crash
                    if read_again:
                        read_again = False
                        logger.debug("a camera read failed; reading again", exc_info=True)
                        continue
                    self._camera_failed(camera_problem(camera, exc))
                    self._close(camera)
                    camera = None
                    self._wait_for_retry()
                    continue
                read_again = True
                try:
                    self._process(frame, asked, taken)
                except Exception:  # noqa: BLE001 - a bad frame (or a bug) must not end the worker, nor the scan on time
                    self._analysis_failed()
                    self._finish_scan_if_due(time.monotonic())
        finally:
            if camera is not None:
                self._close(camera)
            self.cancel_scan()  # stopped mid-scan: no scan left "running", and no frame outlives the camera
            self._forget_frames()

    def _scan_running(self) -> bool:
        with self._lock:
            return self._scan is not None

    def _forget_frames(self) -> None:
        """Between scans the snapshot holds no image of anyone."""
        with self._lock:
            self._snapshot = replace(self._snapshot, frame=None, faces=(), live_probs=None)

    def _open_camera(self) -> Camera | None:
        try:
            camera = self._camera_factory()
        except Exception as exc:  # noqa: BLE001 - any failure to open is reported and retried
            self._camera_failed(str(exc))
            return None
        logger.info("camera open: %s", getattr(camera, "description", camera))
        return camera

    def _camera_failed(self, message: str) -> None:
        if message != self._last_problem:  # once per distinct problem, not once per retry
            # "during a scan": the camera is opened for scans only, so nothing retries between visits
            logger.warning("camera problem (tried again every %.1f s during a scan): %s",
                           self._settings.camera.retry_seconds, message)
            self._last_problem = message
        with self._lock:
            self._snapshot = replace(self._snapshot, camera_ok=False, frame=None, faces=(), hint=HINT_NO_CAMERA,
                                     live_probs=None)
            if self._scan is not None and self._scan.started is not None:
                self._scan.camera_lost = True
        self._finish_scan_if_due(time.monotonic())

    def _wait_for_retry(self) -> None:
        """Wait before reopening the camera, still finishing a scan window on time meanwhile."""
        deadline = time.monotonic() + self._settings.camera.retry_seconds
        while not self._stopping.is_set() and time.monotonic() < deadline:
            self._stopping.wait(_IDLE_POLL_SECONDS)
            self._finish_scan_if_due(time.monotonic())

    @staticmethod
    def _close(camera: Camera) -> None:
        try:
            camera.close()
        except Exception:  # a vanished camera may fail to close; it is being dropped anyway
            logger.debug("camera close failed", exc_info=True)

    def _process(self, frame: np.ndarray, asked: float, taken: float) -> None:
        """Analyse a frame read from ``asked`` to ``taken`` (monotonic) into the snapshot and the
        scan under way, if it was asked for during that scan: one read before it (a read that hung
        through the scan before, or a frame in analysis as the scan was restarted) is someone
        else's moment, maybe someone else, and one read as the scan was cancelled is no scan's:
        neither is looked at."""
        assert self._analyzer is not None
        with self._lock:
            aspect = self._view_aspect
            scan = self._scan
            ours = scan if scan is not None and asked >= scan.requested else None
        if ours is None:
            return
        if aspect is not None and frame.ndim >= 2 and frame.shape[0] and frame.shape[1]:
            x, y, w, h = centred_crop(frame.shape[1], frame.shape[0], aspect)
            frame = frame[y : y + h, x : x + w]
        found = self._analyzer.analyze(frame, max_faces=1)
        faces = tuple(f.face for f in found)
        labels = self._analyzer.labels
        live = found[0].probs_by_label(labels) if found else None
        shown, shown_faces = preview_frame(frame, faces)
        speed = ours.track.follow(faces[0] if faces else None, taken)
        moving = ours.hold_still.update(speed, taken)
        glare = bool(faces) and too_bright(face_pixels(frame, faces[0]))  # also of a face told to come closer
        hint = hint_for(frame, faces, camera_ok=True, moving=moving, glare=glare)
        self._last_problem = None
        with self._lock:
            scan = self._scan
            if scan is None or asked < scan.requested:  # cancelled, or restarted, meanwhile: don't show it
                return
            # A first frame after the no-frame deadline (a camera slow to open) doesn't start the
            # window: the scan is over, NO_CAMERA, below.
            if not (scan.started is None and scan.is_over(taken)):
                if scan.started is None:
                    scan.started = taken
                scan.frames_seen += 1
                if found:
                    scan.face_probs.append(found[0].probs)
                    scan.glare_frames += glare
            self._snapshot = replace(self._snapshot, frame=shown, faces=shown_faces, hint=hint,
                                     camera_ok=True, live_probs=live)
            self._frame_shown_at = taken
        self._finish_scan_if_due(time.monotonic())

    def _analysis_failed(self) -> None:
        """Log the first frame of a scan whose processing raised (the analysis, the preview, the
        hint) with its traceback; the rest (up to the camera's frame rate) are only counted, and the
        count is logged when the scan ends. Call it from the except block, where the traceback is."""
        with self._lock:
            scan = self._scan
            if scan is None:  # cancelled meanwhile: the next scan reports its own failures
                return
            scan.frames_failed += 1
            first = scan.frames_failed == 1
        if first:
            logger.exception("frame analysis failed (further failures in this scan are counted)")

    def _finish_scan_if_due(self, now: float) -> None:
        with self._lock:
            scan = self._scan
            if scan is None:
                return
            if not scan.is_over(now):
                self._snapshot = replace(self._snapshot, progress=scan.progress(now))
                return
            self._scan = None
            result = combine_readings(scan.face_probs, self._analyzer.labels if self._analyzer else (),
                                      frames_seen=scan.frames_seen, glare_frames=scan.glare_frames,
                                      camera_lost=scan.camera_lost,
                                      uncertain_below=self._settings.vision.uncertain_below)
            self._snapshot = replace(self._snapshot, scanning=False, progress=1.0, result=result)
        if scan.frames_failed:
            logger.warning("frame analysis failed on %d frames of this scan", scan.frames_failed)
        # INFO goes to the journal, beside the line saying which profile started the visit: the
        # mood itself only when debugging, so that the journal keeps no one's mood history.
        logger.info("mood scan: %s (%d frames)", result.outcome, result.frames_used)
        logger.debug("mood scan reading: %s (%.2f) %s", result.label, result.confidence, result.probs)
