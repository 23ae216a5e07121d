"""Properties of moodtunes.emotion.preprocess, the one input transform shared by training and device."""

from __future__ import annotations

import numpy as np
import pytest
from moodtunes.emotion import CLIP_SIGMAS, preprocess


@pytest.fixture
def face() -> np.ndarray:
    """A smooth synthetic 'face': a bright oval with two dark eyes on a mid-grey background."""
    yy, xx = np.mgrid[0:96, 0:80]
    img = np.full((96, 80), 90.0)
    img[((yy - 48) / 40) ** 2 + ((xx - 40) / 30) ** 2 < 1] = 180
    for cx in (28, 52):
        img[((yy - 38) / 6) ** 2 + ((xx - cx) / 8) ** 2 < 1] = 30
    return img.astype(np.uint8)


@pytest.mark.parametrize("shape", [(48, 48), (96, 80), (17, 31), (300, 200), (48, 48, 3), (120, 90, 3), (40, 40, 1)])
def test_any_crop_size_gives_standardised_model_input(shape):
    crop = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    x = preprocess(crop, 48)
    assert x.shape == (48, 48) and x.dtype == np.float32
    assert abs(float(x.mean())) < 0.05
    assert float(x.std()) == pytest.approx(1.0, abs=0.05)
    assert np.all(np.abs(x) <= CLIP_SIGMAS)


def test_other_input_sizes(face):
    assert preprocess(face, 40).shape == (40, 40)
    assert preprocess(face, 64).shape == (64, 64)


def test_brightness_and_contrast_do_not_change_the_input(face):
    darker_flatter = (face.astype(np.float32) * 0.5 + 20).astype(np.uint8)
    np.testing.assert_allclose(preprocess(darker_flatter, 48), preprocess(face, 48), atol=0.05)


def test_rgb_with_equal_channels_matches_grayscale(face):
    rgb = np.repeat(face[:, :, None], 3, axis=2)
    np.testing.assert_allclose(preprocess(rgb, 48), preprocess(face, 48), atol=1e-4)


def test_rgb_uses_bt601_luma_weights():
    """Bands of mixed colours in one crop: the model input must be the standardised ITU-R BT.601 luma
    (0.299 R + 0.587 G + 0.114 B, as FER-2013's grey faces), so an equal-weight channel mean, BT.709
    weights or a single channel all fail here."""
    colours = np.array([[200, 0, 0], [0, 200, 0], [0, 0, 200], [120, 60, 30], [30, 90, 220], [250, 250, 250]])
    crop = np.repeat(colours, 8, axis=0)[:, None, :].repeat(48, axis=1).astype(np.uint8)  # six 8-row bands
    luma = np.repeat(colours @ np.array([0.299, 0.587, 0.114]), 8)[:, None].repeat(48, axis=1)
    expected = np.clip((luma - luma.mean()) / luma.std(), -CLIP_SIGMAS, CLIP_SIGMAS)
    # Pillow rounds luma to whole grey levels: at most 0.5 / std (about 0.008) apart.
    np.testing.assert_allclose(preprocess(crop, 48), expected, atol=0.02)


def test_native_size_is_not_resampled(face):
    crop = face[:48, :48]
    expected = (crop - crop.mean()) / crop.std()
    np.testing.assert_allclose(preprocess(crop, 48), np.clip(expected, -3, 3), atol=1e-4)


def test_flat_crop_stays_finite_and_zero():
    for value in (0, 128, 255):
        x = preprocess(np.full((60, 60), value, np.uint8), 48)
        assert np.all(np.isfinite(x)) and np.all(x == 0)


def test_shrinking_averages_areas_without_aliasing():
    stripes = np.zeros((96, 96), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes average to flat grey at half size
    assert np.all(preprocess(stripes, 48) == 0)


def test_shrinking_averages_pixel_areas_like_opencv():
    cv2 = pytest.importorskip("cv2")
    from skimage import data

    # odd ratio; and the exact multiples (the vision pipeline's 96x96 crop) that take Image.reduce
    for crop in (data.camera()[40:220, 180:330], data.camera()[0:144, 0:144], data.camera()[100:196, 200:296]):
        area = cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA).astype(np.float32)
        expected = np.clip((area - area.mean()) / area.std(), -CLIP_SIGMAS, CLIP_SIGMAS)
        difference = np.abs(preprocess(crop, 48) - expected)
        assert difference.mean() < 0.05 and difference.max() < 0.5  # rounding at odd ratios


@pytest.mark.parametrize(
    "bad",
    [np.zeros((0, 10), np.uint8), np.zeros(10, np.uint8), np.zeros((10, 10, 4), np.uint8), np.zeros((9, 9))],
)
def test_bad_crops_are_rejected_with_a_clear_message(bad):
    with pytest.raises(ValueError, match="face crop"):
        preprocess(bad, 48)
