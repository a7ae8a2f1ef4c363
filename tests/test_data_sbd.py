"""train_aug: the id arithmetic on made-up lists, and SBD .mat masks read through the VOC reader."""

import numpy as np
import pytest
import scipy.io
from PIL import Image

from ranlib.data import DataError, voc
from ranlib.data.sbd import train_aug_ids


def test_train_aug_ids_hand_worked():
    voc_train, voc_val = ["a", "b", "c"], ["d", "e"]
    sbd_train, sbd_val = ["b", "d", "f", "g"], ["e", "h", "a"]
    # union {a, b, c, d, e, f, g, h} minus VOC val {d, e}
    assert train_aug_ids(voc_train, voc_val, sbd_train, sbd_val) == ["a", "b", "c", "f", "g", "h"]


@pytest.fixture
def fake_voc_and_sbd(tmp_path):
    """data/VOCdevkit/VOC2012 with ids a..e (masks for train a, b and val c) and SBD beside it with masks for d, e."""
    voc_root = tmp_path / "data" / "VOCdevkit" / "VOC2012"
    sbd_root = tmp_path / "data" / "benchmark_RELEASE" / "dataset"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc_root / folder).mkdir(parents=True)
    (sbd_root / "cls").mkdir(parents=True)
    rng = np.random.default_rng(0)
    sbd_masks = {}
    for name in "abcde":
        Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(voc_root / "JPEGImages" / f"{name}.jpg")
        labels = rng.integers(0, 21, (10, 12)).astype(np.uint8)
        if name in "abc":
            Image.fromarray(labels).save(voc_root / "SegmentationClass" / f"{name}.png")
        else:
            scipy.io.savemat(sbd_root / "cls" / f"{name}.mat", {"GTcls": {"Segmentation": labels,
                                                                          "CategoriesPresent": np.unique(labels)}})
            sbd_masks[name] = labels
    (voc_root / "ImageSets" / "Segmentation" / "train.txt").write_text("a\nb\n")
    (voc_root / "ImageSets" / "Segmentation" / "val.txt").write_text("c\n")
    (sbd_root / "train.txt").write_text("a\nd\nc\n")
    (sbd_root / "val.txt").write_text("e\n")
    return voc_root, sbd_root, sbd_masks


def test_train_aug_reads_sbd_masks_from_the_default_location(fake_voc_and_sbd):
    voc_root, sbd_root, sbd_masks = fake_voc_and_sbd
    dataset = voc(voc_root, "train_aug")  # SBD found beside VOCdevkit
    assert dataset.ids == ["a", "b", "d", "e"]
    for name, labels in sbd_masks.items():
        _, mask = dataset[dataset.ids.index(name)]
        np.testing.assert_array_equal(mask.numpy(), labels)
    assert (sbd_root / "cls_png" / "d.png").exists()
    for name, labels in sbd_masks.items():  # the converted files themselves: palette PNGs of the same labels
        with Image.open(sbd_root / "cls_png" / f"{name}.png") as png:
            assert png.mode == "P" and png.getpalette()[3:6] == [128, 0, 0]
            np.testing.assert_array_equal(np.asarray(png), labels)


def test_train_aug_with_sbd_root_given(fake_voc_and_sbd, tmp_path):
    voc_root, sbd_root, sbd_masks = fake_voc_and_sbd
    moved = tmp_path / "elsewhere" / "sbd"
    moved.parent.mkdir()
    sbd_root.rename(moved)  # not beside VOCdevkit any more: found only through sbd_root
    dataset = voc(voc_root, "train_aug", sbd_root=moved)
    assert dataset.ids == ["a", "b", "d", "e"]
    np.testing.assert_array_equal(dataset[dataset.ids.index("e")][1].numpy(), sbd_masks["e"])


def test_train_aug_without_sbd_says_how_to_get_it(fake_voc_and_sbd, tmp_path):
    voc_root, _, _ = fake_voc_and_sbd
    with pytest.raises(DataError, match="train_aug needs SBD.*download sbd"):
        voc(voc_root, "train_aug", sbd_root=tmp_path / "elsewhere")


def test_tuning_cut_of_train_aug_through_the_voc_reader(fake_voc_and_sbd):
    voc_root, _, _ = fake_voc_and_sbd
    fit_ids, held = voc(voc_root, "train_aug_fit").ids, voc(voc_root, "train_aug_holdout").ids
    assert len(held) == 1 and sorted(fit_ids + held) == ["a", "b", "d", "e"] and not set(fit_ids) & set(held)
    assert "c" not in fit_ids + held  # VOC val, the split reported after tuning, is in neither
