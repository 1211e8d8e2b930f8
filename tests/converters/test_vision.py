"""Photos and crops for the EfficientNet example: deterministic, split, preprocessed like the device does."""

import numpy as np
import pytest

pytest.importorskip("skimage", reason="needs the [examples] extra")

from edgeseal.converters.vision import (CALIBRATION_PHOTOS, EFFICIENTNET_PREPROCESS, EVALUATION_PHOTOS,  # noqa: E402
                                        crop_set, imagenet_labels, photo, photo_crops, photo_path)
from edgeseal.runtime.errors import ConfigError  # noqa: E402

pytestmark = pytest.mark.examples


def test_calibration_and_evaluation_photos_never_overlap_and_are_bundled():
    assert not set(CALIBRATION_PHOTOS) & set(EVALUATION_PHOTOS)
    for name in CALIBRATION_PHOTOS + EVALUATION_PHOTOS:
        assert photo_path(name).is_file()


def test_crops_are_deterministic_and_normalised():
    a = photo_crops("coffee", 3, seed=7)
    b = photo_crops("coffee", 3, seed=7)
    c = photo_crops("coffee", 3, seed=8)
    assert a.shape == (3, 3, 224, 224) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # normalised with ImageNet mean/std: every value lies in [(0 - mean) / std, (1 - mean) / std]
    mean, std = np.array(EFFICIENTNET_PREPROCESS.mean), np.array(EFFICIENTNET_PREPROCESS.std)
    lo, hi = (-mean / std)[:, None, None], ((1 - mean) / std)[:, None, None]
    assert np.all(a >= lo - 1e-5) and np.all(a <= hi + 1e-5)


def test_crop_set_spreads_over_photos_and_checks_names():
    x = crop_set(("chelsea", "coffee"), 5, seed=1)
    assert len(x) == 5
    np.testing.assert_array_equal(x[:3], photo_crops("chelsea", 3, seed=1))
    with pytest.raises(ConfigError, match="unknown photo"):
        photo_path("lena")
    assert photo("camera").mode == "RGB"  # a grey photo comes back with three channels


def test_imagenet_labels():
    names = imagenet_labels()
    assert len(names) == 1000 and names[285] == "Egyptian Mau" and names[967] == "espresso"
