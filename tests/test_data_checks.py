"""Bad input: each broken file raises a DataError naming it and the fix; check-data reports all of them at once."""

import re
import shutil

import numpy as np
import pytest
from PIL import Image

from ranlib.__main__ import main
from ranlib.data import DataError, make_mixed_boundary_dataset, mixed_boundary_band, voc
from ranlib.data.checks import check_dataset
from ranlib.data.mixed_boundary import CLASSES


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


def test_check_data_reports_every_problem_at_once(broken, capsys, tmp_path):
    root, expected = tmp_path / "mb", broken[1]
    shutil.copytree(broken[0], root)
    # One more sample with two bad files, and a split that lists an id twice.
    names = voc(root, "val").ids
    (root / "JPEGImages" / f"{names[0]}.jpg").unlink()
    with Image.open(root / "SegmentationClass" / f"{names[0]}.png") as m:
        m.convert("RGB").save(root / "SegmentationClass" / f"{names[0]}.png")
    split_dir = root / "ImageSets" / "Segmentation"
    (split_dir / "doubled.txt").write_text(f"{names[1]}\n{names[1]}\n")
    report = check_dataset(root, "train", progress=False)
    assert len(report.problems) == len(expected)
    for name, words in expected.items():
        assert any(name in p and all(w in p for w in words) for p in report.problems), name
    val = check_dataset(root, "val", progress=False).problems
    assert len(val) == 2 and "image" in val[0] and "missing" in val[0] and "RGB" in val[1]
    assert all(f"{names[0]}." in p for p in val)
    assert check_dataset(root, "doubled", progress=False).problems == [
        f"split doubled lists {names[1]} twice; remove the duplicate line from {split_dir / 'doubled.txt'}."]
    assert main(["check-data", "--root", str(root), "--split", "train", "val", "doubled", "--quiet"]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert "train: 6 problem(s)" in printed and "val: 2 problem(s)" in printed and "doubled: 1 problem(s)" in printed
    assert sum(line.startswith("[train] ") for line in printed) == 6  # one line per bad file
    assert main(["check-data", "--root", str(root), "--split", "missing", "--quiet"]) == 1
    assert "missing.txt does not exist" in capsys.readouterr().out


def test_check_data_summary_of_a_sound_split(clean, capsys):
    assert main(["check-data", "--root", str(clean), "--split", "train", "--quiet"]) == 0
    printed = capsys.readouterr().out
    # Independent count: every mask read with PIL, values tallied by numpy.
    names = (clean / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    values = np.concatenate([np.asarray(Image.open(clean / "SegmentationClass" / f"{n}.png")).ravel() for n in names])
    counts = np.bincount(values, minlength=256)
    assert printed.startswith(f"train: {len(names)} images, {len(CLASSES)} classes, no problems")
    for k, name in enumerate(CLASSES):
        assert re.search(rf"^  {name} +{counts[k]:,d} px", printed, re.M), name
    assert re.search(rf"^  void \(255\) +{counts[255]:,d} px", printed, re.M)
    report = check_dataset(clean, "train", progress=False)
    assert report.class_pixels == counts[:len(CLASSES)].tolist() and report.void_pixels == counts[255]
    masks = [mask for _, mask in voc(clean, "train")]
    band = sum(int((mixed_boundary_band(mask, 4) & (mask != 255)).sum()) for mask in masks)
    assert report.mixed_band_pixels == band
    share = f"{band / counts[:len(CLASSES)].sum():.1%}"
    assert f"mixed-boundary band (width 4): {share} of labelled pixels" in printed


def test_check_data_repair_regenerates_the_embedded_dataset(broken, clean, capsys, tmp_path):
    root = tmp_path / "mb"
    shutil.copytree(broken[0], root)
    assert main(["check-data", "--root", str(root), "--quiet"]) == 1
    hint = capsys.readouterr().out.splitlines()[-1]
    assert hint.startswith(f"fix: python -m ranlib check-data --root {root} --repair")
    assert main(["check-data", "--root", str(root), "--repair", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("repaired 6 scene(s)") and "train: 6 images, 6 classes, no problems" in printed
    for folder in ("JPEGImages", "SegmentationClass"):  # generation is deterministic: the very same files
        for original in (clean / folder).iterdir():
            assert (root / folder / original.name).read_bytes() == original.read_bytes(), original.name


def test_the_cache_stamp_does_not_keep_damaged_files(clean, tmp_path):
    root = tmp_path / "mb"
    shutil.copytree(clean, root)
    jpg = next((root / "JPEGImages").iterdir())
    jpg.write_bytes(jpg.read_bytes()[:200])  # truncated after the dataset was stamped complete
    make_mixed_boundary_dataset(root, n_train=6, n_val=2, size=32, progress=False)  # the same call: a cache hit
    assert jpg.read_bytes() == (clean / "JPEGImages" / jpg.name).read_bytes()
    assert check_dataset(root, "train", progress=False).problems == []


def test_repair_of_a_downloaded_dataset_says_how_to_get_it_again(broken, tmp_path, capsys):
    root = tmp_path / "VOCdevkit" / "VOC2012"
    shutil.copytree(broken[0], root)
    (root / "COMPLETE.json").unlink()  # not generated by ranlib: nothing to regenerate from
    assert main(["check-data", "--root", str(root), "--split", "train", "--quiet"]) == 1
    assert capsys.readouterr().out.splitlines()[-1].endswith(f"download voc --root {tmp_path})")
    assert main(["check-data", "--root", str(root), "--split", "train", "--repair", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--repair generates only the embedded dataset" in err and "download voc" in err


def test_check_data_missing_root_exits_2_on_stderr(tmp_path, capsys):
    assert main(["check-data", "--root", str(tmp_path / "none"), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "dataset root" in captured.err and "Traceback" not in captured.err
