"""Bad input: each broken file raises a DataError naming it and the fix; check-data reports all of them at once."""

import shutil

import numpy as np
import pytest
from PIL import Image

from ranlib.__main__ import main
from ranlib.data import DataError, make_mixed_boundary_dataset, voc
from ranlib.data.checks import check_dataset


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return make_mixed_boundary_dataset(tmp_path_factory.mktemp("clean") / "mb", n_train=6, n_val=2, size=32,
                                       progress=False)


@pytest.fixture(scope="module")
def broken(clean, tmp_path_factory):
    """A copy of ``clean`` with one kind of damage per training id; returns (root, {id: expected words})."""
    root = tmp_path_factory.mktemp("broken") / "mb"
    shutil.copytree(clean, root)
    ids = voc(root, "train").ids
    jpg = lambda i: root / "JPEGImages" / f"{ids[i]}.jpg"  # noqa: E731
    png = lambda i: root / "SegmentationClass" / f"{ids[i]}.png"  # noqa: E731
    jpg(0).unlink()
    png(1).unlink()
    jpg(2).write_bytes(jpg(2).read_bytes()[:200])  # a truncated JPEG
    with Image.open(png(3)) as m:
        m.crop((0, 0, 32, 30)).save(png(3))  # 30 rows instead of 32
    with Image.open(png(4)) as m:
        labels = np.asarray(m).copy()
        palette = m.getpalette()
    labels[0, 0] = 9  # the dataset has 6 classes
    out = Image.fromarray(labels, mode="P")
    out.putpalette(palette)
    out.save(png(4))
    with Image.open(png(5)) as m:
        m.convert("RGB").save(png(5))  # VOC colours instead of class indices
    expected = {ids[0]: ("image", "missing"), ids[1]: ("mask", "missing"), ids[2]: ("image", "corrupt"),
                ids[3]: ("mask", "must match"), ids[4]: ("[9]", "classes.txt"), ids[5]: ("RGB", "palette")}
    return root, expected


def test_each_bad_file_raises_naming_the_file(broken):
    root, expected = broken
    dataset = voc(root, "train")
    for index, name in enumerate(dataset.ids):
        with pytest.raises(DataError) as info:
            dataset[index]
        message = str(info.value)
        assert name in message and all(word in message for word in expected[name]), message


def test_split_and_root_problems(clean, tmp_path):
    with pytest.raises(DataError, match=r"nope\.txt does not exist; splits here: train, trainval, val"):
        voc(clean, "nope")
    root = tmp_path / "copy"
    shutil.copytree(clean, root)
    (root / "ImageSets" / "Segmentation" / "empty.txt").write_text("\n")
    with pytest.raises(DataError, match=r"empty\.txt is empty"):
        voc(root, "empty")
    with pytest.raises(DataError, match="does not exist.*download voc"):
        voc(tmp_path / "nowhere", "train")
    nested = tmp_path / "data"
    shutil.copytree(clean, nested / "VOCdevkit" / "VOC2012")
    with pytest.raises(DataError, match=r"not a VOC-layout dataset root.*Did you mean .*VOC2012"):
        voc(nested, "train")


def test_check_data_reports_every_problem_at_once(broken, clean, capsys):
    root, expected = broken
    problems = check_dataset(root, "train", progress=False)
    assert len(problems) == len(expected)
    for name, words in expected.items():
        assert any(name in p and all(w in p for w in words) for p in problems), name
    assert check_dataset(root, "val", progress=False) == []
    assert main(["check-data", "--root", str(root), "--split", "train", "val", "--quiet"]) == 1
    printed = capsys.readouterr().out
    assert "train: 6 problem(s)" in printed and "val: OK" in printed
    assert main(["check-data", "--root", str(clean), "--split", "train", "val", "--quiet"]) == 0
    assert main(["check-data", "--root", str(clean), "--split", "missing", "--quiet"]) == 1
