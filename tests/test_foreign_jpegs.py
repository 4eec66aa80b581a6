"""Frames written by other tools: every file Pillow decodes completely is used, cached and
uncached, with Pillow's pixels; the others are reported and replaced, never fatal.

Each kind fills one trial of a synthetic folder (its own frames re-encoded), so the check, the
uncached loader and the frame-cache build all read it. ffmpeg, ImageMagick and OpenCV come from
``.ci/run`` (Debian packages) and the dev extra; a missing tool skips its kinds here, and fails
them in CI.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image, ImageCms

from socal.config import CacheMode, DataConfig, WindowConfig
from socal.data.dataset import ClipDataset
from socal.data.frame_cache import default_dir, prepare
from socal.data.index import Trial, frame_problem, index_folder
from socal.data.jpeg import DecodeError, decode_frame, read_header

from support import assert_close_to_reference, reference_frame, synthetic_folder

SIZE = 32
JUNK_WARNING = "Corrupt JPEG data: 16 extraneous bytes before marker 0xe1"
# A writer turns a trial's frames (decoded pixels, in order) into the files at ``paths``.
Writer = Callable[[list[np.ndarray], list[Path]], None]


def tool(*names: str) -> list[str]:
    """The first of ``names`` that really is the tool (``convert`` may be a stand-in on PATH
    ahead of ImageMagick's)."""
    banner = {"ffmpeg": "ffmpeg version"}
    for name in names:
        for path in dict.fromkeys(filter(None, (shutil.which(name), f"/usr/bin/{name}"))):
            if Path(path).exists():
                probe = subprocess.run([path, "-version"], capture_output=True, text=True)
                if probe.stdout.startswith(banner.get(name, "Version: ImageMagick")):
                    return [path]
    missing(" or ".join(names))


def missing(what: str) -> NoReturn:
    """Skip a test whose tool is not installed here; fail it in CI, where .ci/run installs it."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} missing: .ci/run installs it")
    pytest.skip(f"{what} not installed")


def jpeg_bytes(pixels: np.ndarray | Image.Image, **options: object) -> bytes:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    buffer = io.BytesIO()
    image.save(buffer, format=str(options.pop("format", "JPEG")), **options)
    return buffer.getvalue()


def pillow(transform: Callable[[np.ndarray], bytes]) -> Writer:
    def write(frames: list[np.ndarray], paths: list[Path]) -> None:
        for pixels, path in zip(frames, paths, strict=True):
            path.write_bytes(transform(pixels))

    return write


def with_exif(pixels: np.ndarray) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotated; frames are used as stored, as Pillow decodes them
    exif[0x010F] = "socal-test-camera"
    return jpeg_bytes(pixels, quality=90, exif=exif)


def junk_before_app1(pixels: np.ndarray) -> bytes:
    """16 stray bytes before the EXIF segment: libjpeg-turbo warns, Pillow decodes it."""
    data = with_exif(pixels)
    app1 = data.index(b"\xff\xe1")
    return data[:app1] + b"\x5a" * 16 + data[app1:]


def thumbnail_segment(pixels: np.ndarray) -> bytes:
    """A whole small JPEG (its own SOI..EOI) inside an APP segment before the frame."""
    data = jpeg_bytes(pixels, quality=90)
    thumb = jpeg_bytes(pixels[::4, ::4].copy(), quality=70)
    segment = b"\xff\xe3" + (len(thumb) + 2).to_bytes(2, "big") + thumb
    return data[:2] + segment + data[2:]


def mpo(pixels: np.ndarray) -> bytes:
    second = Image.fromarray(pixels[::-1].copy())
    return jpeg_bytes(pixels, format="MPO", save_all=True, append_images=[second], quality=90)


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def opencv(**params: int) -> Writer:
    def write(frames: list[np.ndarray], paths: list[Path]) -> None:
        try:
            import cv2
        except ImportError:
            missing("opencv-python-headless (the dev extra)")
        flags = [v for name, value in params.items() for v in (getattr(cv2, name), value)]
        for pixels, path in zip(frames, paths, strict=True):
            assert cv2.imwrite(str(path), pixels[..., ::-1], flags)

    return write


def imagemagick(*options: str) -> Writer:
    def write(frames: list[np.ndarray], paths: list[Path]) -> None:
        command = tool("magick", "convert")
        icc = paths[0].parent / "srgb.icc"
        icc.write_bytes(srgb_profile())
        for pixels, path in zip(frames, paths, strict=True):
            png = path.with_suffix(".png")
            Image.fromarray(pixels).save(png)
            extra = [a.replace("{icc}", str(icc)) for a in options]
            subprocess.run([*command, str(png), *extra, str(path)], check=True)
            png.unlink()
        icc.unlink()

    return write


def ffmpeg(frames: list[np.ndarray], paths: list[Path]) -> None:
    """As SOCAL's frames were made: the trial's frames as a video ffmpeg encodes (even sizes,
    as its encoders want), extracted again at -q:v 2."""
    quiet = [*tool("ffmpeg"), "-loglevel", "error", "-y"]
    work = paths[0].parent / "ffmpeg"
    work.mkdir()
    for i, pixels in enumerate(frames):
        Image.fromarray(pixels).save(work / f"{i:08d}.png")
    video = work / "video.mp4"
    subprocess.run([*quiet, "-framerate", "1", "-i", str(work / "%08d.png"),
                    "-vf", "crop=trunc(iw/2)*2:trunc(ih/2)*2", "-pix_fmt", "yuv420p",
                    "-c:v", "mpeg4", "-q:v", "2", str(video)], check=True)  # fmt: skip
    subprocess.run([*quiet, "-i", str(video), "-q:v", "2", str(work / "%08d.jpeg")], check=True)
    extracted = sorted(work.glob("*.jpeg"))
    assert len(extracted) == len(paths)
    for source_file, path in zip(extracted, paths, strict=True):
        source_file.replace(path)
    shutil.rmtree(work)


KINDS: dict[str, Writer] = {
    "pillow_baseline": pillow(lambda p: jpeg_bytes(p, quality=90)),
    "zero_padding_after_eoi": pillow(lambda p: jpeg_bytes(p, quality=90) + b"\x00" * 37),
    "maker_data_after_eoi": pillow(lambda p: jpeg_bytes(p, quality=90) + os.urandom(500)),
    "mpo_second_image": pillow(mpo),
    "exif_orientation": pillow(with_exif),
    "icc_profile": pillow(lambda p: jpeg_bytes(p, quality=90, icc_profile=srgb_profile())),
    "thumbnail_in_app_segment": pillow(thumbnail_segment),
    "progressive": pillow(lambda p: jpeg_bytes(p, quality=90, progressive=True)),
    "grayscale": pillow(lambda p: jpeg_bytes(p[..., 0].copy(), quality=90)),
    "cmyk": pillow(lambda p: jpeg_bytes(Image.fromarray(p).convert("CMYK"))),
    "junk_before_app1": pillow(junk_before_app1),
    "ffmpeg_from_video": ffmpeg,
    "imagemagick_icc_comment": imagemagick(
        "-quality", "92", "-profile", "{icc}", "-set", "comment", "socal"
    ),  # fmt: skip
    "imagemagick_progressive_444": imagemagick(
        "-quality", "90", "-interlace", "Plane", "-sampling-factor", "4:4:4"
    ),  # fmt: skip
    "opencv_restart_markers": opencv(IMWRITE_JPEG_QUALITY=95, IMWRITE_JPEG_RST_INTERVAL=4),
    "opencv_progressive_optimized": opencv(
        IMWRITE_JPEG_QUALITY=85, IMWRITE_JPEG_PROGRESSIVE=1, IMWRITE_JPEG_OPTIMIZE=1
    ),
}


def data_config(root: Path, cache: CacheMode) -> DataConfig:
    return OmegaConf.structured(
        DataConfig(
            root=str(root), num_frames=4, cache=cache,
            window=WindowConfig(start_s=0, length_s=None, jitter=False),
        )
    )  # fmt: skip


def rewrite(trial: Trial, writer: Writer) -> None:
    frames = []
    for path in trial.frames:
        with Image.open(path) as image:
            frames.append(np.asarray(image.convert("RGB")))
    writer(frames, list(trial.frames))


@pytest.fixture(scope="module")
def trials(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Trial]:
    """Kind -> its trial, in a folder holding one trial per kind."""
    base = tmp_path_factory.mktemp("foreign")
    source = synthetic_folder(base, trials=len(KINDS), min_frames=6, max_frames=9)
    root = Path(shutil.copytree(source, base / "socal"))
    indexed, _ = index_folder(root)
    return dict(zip(KINDS, indexed, strict=False))


@pytest.mark.parametrize("kind", KINDS)
def test_every_file_pillow_decodes_is_used_with_its_pixels(
    kind: str, trials: dict[str, Trial], tmp_path: Path
) -> None:
    trial = trials[kind]
    rewrite(trial, KINDS[kind])
    root = trial.frames[0].parent.parent
    kept, report = index_folder(root)
    indexed = next(t for t in kept if t.trial_id == trial.trial_id)
    assert indexed.frames == trial.frames  # no frame replaced by a neighbour
    names = {p.name for p in trial.frames}
    for problem, items in vars(report).items():
        if problem != "frames_decoded_with_warnings":
            assert not names & {i.split(" ")[0] for i in items}, (problem, items)

    positions = np.arange(trial.n_frames)
    plain = ClipDataset([indexed], data_config(root, CacheMode.off), SIZE, False, 0)
    clip = plain.frames(indexed, positions)
    for k, path in enumerate(trial.frames):
        assert_close_to_reference(clip[k].permute(1, 2, 0).numpy(), reference_frame(path, SIZE))

    cache_dir = tmp_path / "cache"
    built = prepare([indexed], data_config(root, CacheMode.auto).window, SIZE, cache_dir, False)
    assert built.replaced_frames == 0 and built.frames == trial.n_frames
    data = data_config(root, CacheMode.auto)
    data.cache_dir = str(cache_dir)
    cached = ClipDataset([indexed], data, SIZE, False, 0)
    assert cached.cache is not None
    assert torch.equal(cached.frames(indexed, positions), clip)


def test_header_junk_is_one_line_of_the_data_check(trials: dict[str, Trial]) -> None:
    trial = trials["junk_before_app1"]
    rewrite(trial, KINDS["junk_before_app1"])
    _, report = index_folder(trial.frames[0].parent.parent)
    ours = [w for w in report.frames_decoded_with_warnings if w.startswith(trial.trial_id)]
    assert ours == [f"{p.name} ({JUNK_WARNING})" for p in trial.frames]
    assert decode_frame(trial.frames[0], SIZE).warning == JUNK_WARNING  # libjpeg's own words
    line = next(x for x in report.lines() if x.startswith("frames decoded with warnings: "))
    assert JUNK_WARNING in line


def scan_damage(data: bytes) -> bytes:
    """Random bytes (no FF) over the middle of the first scan, the end marker kept."""
    start = read_header(data).scan_start
    end = (start + len(data)) // 2
    noise = np.random.default_rng(1).integers(0, 255, end - start, np.uint8).tobytes()
    return data[:start] + noise.replace(b"\xff", b"\x00") + data[end:]


def test_files_pillow_cannot_decode_are_reported_and_replaced(tmp_path: Path) -> None:
    """Truncated (also behind header junk) and damaged inside the scan, from several tools."""
    root = Path(shutil.copytree(synthetic_folder(tmp_path, trials=4), tmp_path / "socal"))
    trials, _ = index_folder(root)
    trial = trials[0]
    frames = list(trial.frames)
    KINDS["junk_before_app1"]([np.asarray(Image.open(frames[2]).convert("RGB"))], [frames[2]])
    KINDS["progressive"]([np.asarray(Image.open(frames[6]).convert("RGB"))], [frames[6]])
    junk = frames[2].read_bytes()
    frames[2].write_bytes(scan_damage(junk))  # header junk cut out, then damage: still bad
    frames[4].write_bytes(frames[4].read_bytes()[:-400])  # truncated
    frames[6].write_bytes(scan_damage(frames[6].read_bytes()))  # progressive, damaged scan
    with pytest.raises(OSError, match="truncated"), Image.open(frames[4]) as image:
        image.load()  # Pillow fills a damaged scan with grey silently, and refuses this one
    kept, report = index_folder(root)
    assert report.truncated_frames == [frames[4].name]
    indexed = next(t for t in kept if t.trial_id == trial.trial_id)
    assert indexed.frames[4] == frames[3]
    data = data_config(root, CacheMode.off)
    clip = ClipDataset([indexed], data, SIZE, False, 0).frames(indexed, np.arange(8))
    assert torch.equal(clip[2], clip[1]) and torch.equal(clip[6], clip[5])
    built = prepare([indexed], data.window, SIZE, default_dir(root), progress=False)
    assert built.replaced_frames == 2  # 2 and 6; the check gave position 4 frame 3's file


def test_a_trial_that_stops_decoding_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A trial whose frames pass the structure check but none decodes is dropped by the check;
    one whose frames go bad after the check gives black frames and a warning, no error."""
    root = Path(shutil.copytree(synthetic_folder(tmp_path, trials=4), tmp_path / "socal"))
    trials, _ = index_folder(root)
    dropped, changed = trials[0], trials[1]
    for path in dropped.frames:
        path.write_bytes(scan_damage(path.read_bytes()))
    kept, report = index_folder(root)
    assert report.unreadable_trials == [dropped.trial_id]
    assert report.undecodable_frames == [p.name for p in dropped.frames]
    assert changed in kept
    for path in changed.frames:
        path.write_bytes(scan_damage(path.read_bytes()))
    data = data_config(root, CacheMode.off)
    with caplog.at_level(logging.WARNING):
        clip = ClipDataset([changed], data, SIZE, False, 0)[0]["pixel_values"]
    assert clip.shape[1:] == (3, SIZE, SIZE) and int(clip.max()) == 0
    assert "decodes any more: a black frame" in caplog.text


@pytest.mark.parametrize(
    "kind", ["pillow_baseline", "progressive", "opencv_restart_markers",
             "thumbnail_in_app_segment", "mpo_second_image"],
)  # fmt: skip
def test_every_cut_before_the_end_marker_is_a_bad_frame(kind: str, tmp_path: Path) -> None:
    """Cut anywhere before the (first) image's end, a file is never judged usable."""
    whole = tmp_path / "whole.jpeg"
    coarse = np.random.default_rng(0).integers(0, 256, (9, 16, 3), np.uint8)
    pixels = np.asarray(Image.fromarray(coarse).resize((160, 96), Image.Resampling.BICUBIC))
    KINDS[kind]([pixels], [whole])
    data = whole.read_bytes()
    end = data.index(b"\xff\xd9", read_header(data).scan_start) + 2
    cut = tmp_path / "cut.jpeg"
    for at in np.linspace(0, end - 1, 60, dtype=int):
        cut.write_bytes(data[:at])
        assert frame_problem(cut).problem in ("truncated_frames", "not_jpeg_frames"), at
        with pytest.raises(DecodeError):
            decode_frame(cut, SIZE)
    cut.write_bytes(data[:end])
    assert frame_problem(cut).problem is None
