"""``humansd demo``: the embedded model end to end, and clear failures when its weights are missing or damaged."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from humansd_core import embedded
from humansd_core.cli import main
from humansd_core.commands.demo import ZOOM, contact_sheet

LAST_LINE = re.compile(r"^pose accuracy: PCK@0\.1=(\d\.\d{3}) OKS=(\d\.\d{3}) random-pose baseline PCK@0\.1=(\d\.\d{3})"
                       r" \| prompt adherence: background=(\d\.\d{3}) shirt=(\d\.\d{3}) \(chance (\d\.\d{3}) / (\d\.\d{3})\)$")


def test_demo_writes_the_sheet_and_ends_with_the_pose_accuracy(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--output", str(tmp_path), "--model", "embedded", "--count", "2", "--steps", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    match = LAST_LINE.match(lines[-1])
    assert match, lines[-1]
    pck, oks, baseline, background, shirt, *chance = (float(v) for v in match.groups())
    assert 0.0 <= baseline < pck <= 1.0 and 0.0 < oks <= 1.0
    assert all(0.0 <= v <= 1.0 for v in (background, shirt, *chance))
    with Image.open(tmp_path / "demo.png") as sheet:
        width, height = sheet.size
    poses = len(embedded.EXAMPLE_PROMPTS) + 2
    tile = embedded.SIZE * ZOOM
    assert width >= 3 * 3 * tile and height >= -(-poses // 3) * tile


@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage", "lfs-pointer"])
def test_demo_fails_clearly_on_damaged_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              damage: str) -> None:
    model = tmp_path / embedded.MODEL_NAME
    if damage != "missing":
        shutil.copyfile(embedded.embedded_model_path(), model)
        data = model.read_bytes()
        if damage == "truncated":
            model.write_bytes(data[: len(data) // 3])
        elif damage == "garbage":
            model.write_bytes(bytes(reversed(data[:4096])))
        else:
            model.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n")
    code = main(["demo", "--output", str(tmp_path / "out"), "--model", str(model), "--count", "0"])
    err = capsys.readouterr().err
    assert code == 2
    assert str(model) in err or model.name in err, err
    expected = {"missing": "not found", "truncated": "", "garbage": "", "lfs-pointer": "git lfs pull"}[damage]
    assert expected in err
    assert not (tmp_path / "out" / "demo.png").exists()


def test_contact_sheet_places_every_triplet() -> None:
    tiles = [np.full((8, 8, 3), 10 * i, np.uint8) for i in range(3)]
    sheet = contact_sheet([("a", tiles), ("b", tiles), ("c", tiles), ("d", tiles)], columns=2)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3
    assert (sheet == 20).all(axis=2).sum() == 4 * 64  # each triplet's third tile, once
