"""Training data: scanning, buckets, the batch order, augmentation moving keypoints with pixels, caches, config."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from support.training_data import make_dataset

from humansd_core.errors import HumanSDError
from humansd_core.models.configs import tiny_config
from humansd_core.models.vae import AutoencoderKL
from humansd_core.models.text_encoder import TextEncoder
from humansd_core.pose import COCO17_NAMES, PoseSet, render_skeleton
from humansd_core.training import lora
from humansd_core.training.augment import apply_to_image, apply_to_pose, fit_pose_to_image, plan_geometry
from humansd_core.training.buckets import BucketBatchSampler, assign_bucket, make_buckets
from humansd_core.training.cache import TextCache, build_latent_cache
from humansd_core.training.config import DataOptions, TrainConfig
from humansd_core.training.dataset import TrainingDataset, scan_dataset

LW, RW = COCO17_NAMES.index("left_wrist"), COCO17_NAMES.index("right_wrist")
LA, RA = COCO17_NAMES.index("left_ankle"), COCO17_NAMES.index("right_ankle")
MARKERS = {LW: (255, 0, 0), RW: (0, 0, 255), LA: (0, 255, 0), RA: (255, 255, 0)}


def test_buckets_are_multiples_of_the_step_within_the_area_and_aspect() -> None:
    buckets = make_buckets(512, 64, max_aspect=2.0)
    assert (512, 512) in buckets
    for w, h in buckets:
        assert w % 64 == 0 and h % 64 == 0 and w * h <= 512 * 512 and max(w / h, h / w) <= 2.0
    assert {(704, 320), (320, 704)} & set(buckets) == set()  # aspect 2.2 is out
    assert (768, 320) not in buckets and (384, 640) in buckets
    wide = buckets[assign_bucket(1200, 800, buckets)]
    assert wide[0] > wide[1] and abs(wide[0] / wide[1] - 1.5) < 0.2
    assert buckets[assign_bucket(300, 300, buckets)] == (512, 512)


def test_two_ranks_see_exactly_what_one_process_with_twice_the_batch_sees() -> None:
    bucket_of = [0, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1]
    single = BucketBatchSampler(bucket_of, 4, world_size=1, rank=0, seed=5)
    ranks = [BucketBatchSampler(bucket_of, 2, world_size=2, rank=r, seed=5) for r in (0, 1)]
    streams = [iter(s) for s in (single, *ranks)]
    per_epoch = single.batches_per_epoch()
    seen = []
    for _ in range(2 * per_epoch):
        whole, part0, part1 = (next(s) for s in streams)
        assert whole == part0 + part1
        assert len({bucket_of[i] for i, _ in whole}) == 1  # one bucket per batch
        seen.append(whole)
    first_epoch = {i for batch in seen[:per_epoch] for i, _ in batch}
    assert first_epoch == set(range(len(bucket_of)))  # nothing dropped
    assert seen[0] != seen[per_epoch]  # reshuffled next epoch
    resumed = iter(BucketBatchSampler(bucket_of, 4, seed=5, start=3))
    assert [next(resumed) for _ in range(4)] == seen[3:7]


def _marked_sample(width: int = 96, height: int = 64) -> tuple[np.ndarray, PoseSet]:
    """A grey image with a coloured 7x7 square at four labelled joints; the other joints missing."""
    image = np.full((height, width, 3), 90, np.uint8)
    kp = np.zeros((1, 17, 3), np.float32)
    for joint, (x, y) in zip(MARKERS, [(20, 30), (70, 28), (30, 50), (62, 52)]):
        image[y - 3:y + 4, x - 3:x + 4] = MARKERS[joint]
        kp[0, joint] = (x, y, 1.0)
    return image, PoseSet(kp, width, height)


@pytest.mark.parametrize("flip", [False, True])
def test_flip_swaps_left_and_right_and_keypoints_stay_on_their_pixels(flip: bool) -> None:
    image, pose = _marked_sample()
    for seed in range(6):
        g = plan_geometry(96, 64, 64, 64, np.random.default_rng(seed), random_crop=True, zoom_max=1.3, flip=flip)
        out_image, out_pose = apply_to_image(image, g), apply_to_pose(pose, g)
        assert out_image.shape == (64, 64, 3) and out_pose.canvas_size == (64, 64)
        for joint, colour in MARKERS.items():
            x, y, c = out_pose.keypoints[0, joint]
            if not (0 <= x < 64 and 0 <= y < 64):
                continue  # cropped away
            # After a flip the marker drawn at the *left* wrist is the person's right wrist.
            source = {LW: RW, RW: LW, LA: RA, RA: LA}[joint] if flip else joint
            assert c == 1.0
            assert tuple(out_image[int(round(y)), int(round(x))]) == pytest.approx(MARKERS[source], abs=40), \
                (seed, COCO17_NAMES[joint])


def test_flip_labels_match_a_mirrored_person() -> None:
    _, pose = _marked_sample()
    g = plan_geometry(96, 64, 96, 64, None, flip=True)
    flipped = apply_to_pose(pose, g)
    assert flipped.keypoints[0, RW, 0] == pytest.approx(95 - 20)  # the left wrist's mirror is now the right wrist
    assert flipped.keypoints[0, LW, 0] == pytest.approx(95 - 70)
    # Mirroring and swapping keeps which side each label lies on (without the swap it would invert).
    assert flipped.keypoints[0, LW, 0] < flipped.keypoints[0, RW, 0]
    assert pose.keypoints[0, LW, 0] < pose.keypoints[0, RW, 0]


def test_fit_pose_to_image_scales_coordinates_and_keeps_the_first_people() -> None:
    kp = np.zeros((12, 17, 3), np.float32)
    kp[:, 0] = (0.5, 0.25, 1.0)
    pose = fit_pose_to_image(PoseSet(kp, 1, 1), 200, 100, max_people=10)
    assert pose.num_people == 10 and pose.canvas_size == (200, 100)
    assert pose.keypoints[0, 0].tolist() == [100.0, 25.0, 1.0]


def test_scan_folder_reads_poses_and_captions(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d", count=3, sizes=[(64, 64), (96, 64)])
    (data / "002.txt").unlink()
    records = scan_dataset(data)
    assert [r.image.name for r in records] == ["000.png", "001.png", "002.png"]
    assert records[0].caption == "a mannequin on red" and records[2].caption == ""
    assert records[1].pose.canvas_size == (96, 64) == (records[1].width, records[1].height)
    (data / "001.json").unlink()
    with pytest.raises(HumanSDError, match=r"1 image\(s\) have no pose file \(001.png\).*detector_weights"):
        scan_dataset(data)


def test_scan_manifest_with_inline_and_file_poses(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "d", count=2)
    pose_data = json.loads((data / "001.json").read_text())
    manifest = tmp_path / "set.jsonl"
    lines = [{"image": "d/000.png", "pose": "d/000.json", "caption": "first"},
             {"image": "d/001.png", "pose": pose_data, "caption": "second"}]
    manifest.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    records = scan_dataset(manifest)
    assert [r.caption for r in records] == ["first", "second"]
    np.testing.assert_allclose(records[1].pose.keypoints, scan_dataset(data)[1].pose.keypoints)
    manifest.write_text(json.dumps(lines[0]) + "\n{not json\n")
    with pytest.raises(HumanSDError, match=r"set.jsonl line 2: invalid JSON"):
        scan_dataset(manifest)


def test_items_are_deterministic_and_caption_dropout_applies(tmp_path: Path) -> None:
    records = scan_dataset(make_dataset(tmp_path / "d", count=4))
    options = DataOptions(cache="none", flip_prob=0.5, caption_dropout=0.0)
    dataset = TrainingDataset(records, [(64, 64)], [0] * 4, options, seed=3)
    a, b = dataset[(1, 7)], dataset[(1, 7)]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["skeleton"], b["skeleton"])
    assert a["caption"] == records[1].caption
    expected = render_skeleton(a["pose"], threshold=options.pose_threshold)
    assert torch.equal(a["skeleton"], torch.from_numpy(expected).permute(2, 0, 1))
    unflipped = TrainingDataset(records, [(64, 64)], [0] * 4, DataOptions(cache="none", flip_prob=0.0), seed=3)
    base = unflipped[(1, 0)]["image"]
    assert not torch.equal(base, base.flip(-1))
    seen = {"plain" if torch.equal(dataset[(1, e)]["image"], base) else
            "mirrored" if torch.equal(dataset[(1, e)]["image"], base.flip(-1)) else "other" for e in range(12)}
    assert seen == {"plain", "mirrored"}  # 64x64 source: no crop; both orientations occur at flip_prob 0.5
    dropped = TrainingDataset(records, [(64, 64)], [0] * 4, DataOptions(cache="none", caption_dropout=1.0), seed=3)
    assert dropped[(1, 7)]["caption"] == ""


def test_latent_cache_is_written_reused_and_invalidated(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = tiny_config()
    vae = AutoencoderKL(cfg.vae).eval().requires_grad_(False)
    records = scan_dataset(make_dataset(tmp_path / "d", count=3))
    dataset = TrainingDataset(records, [(64, 64)], [0] * 3, DataOptions(), seed=0)
    first = build_latent_cache(dataset, vae, cfg.scale_factor, tmp_path / "c", flips=(False, True), write=True)
    files = sorted((tmp_path / "c" / "latents").iterdir())
    assert len(first) == 6 and len(files) == 6
    entry = first[(2, True)]
    g = dataset.cached_geometry(2, True)
    image = torch.from_numpy(apply_to_image(Image.open(records[2].image).convert("RGB"), g).copy())
    skeleton = torch.from_numpy(render_skeleton(apply_to_pose(records[2].pose, g)))
    with torch.no_grad():
        mean = vae.encode(image.permute(2, 0, 1)[None].float() / 127.5 - 1)
        pose_latent = vae.encode(skeleton.permute(2, 0, 1)[None].float() / 127.5 - 1) * cfg.scale_factor
    torch.testing.assert_close(entry["mean"], mean[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(entry["pose_latent"], pose_latent[0], rtol=1e-4, atol=1e-5)
    reread = build_latent_cache(dataset, vae, cfg.scale_factor, tmp_path / "c", flips=(False, True), write=False)
    assert all(torch.equal(reread[k]["mean"], first[k]["mean"]) for k in first)
    moved = records[0].pose.replace(keypoints=records[0].pose.keypoints + np.array([1.0, 0.0, 0.0], np.float32))
    dataset.records[0] = type(records[0])(records[0].image, moved, "", 64, 64)
    build_latent_cache(dataset, vae, cfg.scale_factor, tmp_path / "c", flips=(False, True), write=True)
    assert len(list((tmp_path / "c" / "latents").iterdir())) == 8  # two new entries for the changed pose


def test_text_cache_matches_the_encoder_and_persists(tmp_path: Path) -> None:
    torch.manual_seed(0)
    encoder = TextEncoder(tiny_config().text).eval().requires_grad_(False)
    cache = TextCache(encoder, tmp_path, write=True)
    cache.prefill(["a", "b", "a", ""])
    assert len(list((tmp_path / "text").iterdir())) == 3
    with torch.no_grad():
        direct = encoder(["b", ""])
    torch.testing.assert_close(cache(["b", ""]), direct)
    fresh = TextCache(encoder, tmp_path, write=False)
    fresh.text_encoder = None  # every entry must come from disk
    fresh.prefill(["a", "b", ""])
    torch.testing.assert_close(fresh(["b", ""]), direct)


def test_config_from_toml_with_flag_overrides_and_errors(tmp_path: Path) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text('[model]\nmode = "full"\n[data]\ndata = "set"\nresolution = 256\n'
                    '[optim]\nlr = 2\n[output]\noutput = "out"\n')
    config = TrainConfig.from_toml(toml)
    assert config.model.mode == "full" and config.data.resolution == 256 and config.optim.lr == 2.0
    assert config.data.data == str(tmp_path / "set") and config.output.output == str(tmp_path / "out")
    assert config.model.lora_targets == list(lora.DEFAULT_TARGETS)
    config.set("lora_rank", 4)
    assert config.model.lora_rank == 4
    toml.write_text('[data]\nlr = 1\n')
    with pytest.raises(HumanSDError, match=r"unknown option 'lr' in \[data\] \(it belongs in \[optim\]\)"):
        TrainConfig.from_toml(toml)
    toml.write_text('[optim]\nsteps = "many"\n')
    with pytest.raises(HumanSDError, match="option steps must be a int"):
        TrainConfig.from_toml(toml)
    toml.write_text('[model]\nmode = "lora"\ntrain_text_encoder = true\n[data]\ndata = "x"\n[output]\noutput = "y"\n')
    with pytest.raises(HumanSDError, match="train_text_encoder needs mode = 'full'"):
        TrainConfig.from_toml(toml)


def test_images_without_pose_files_get_detected_poses_when_weights_are_given(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from humansd_core.pose.detect import body_network_class

    data = make_dataset(tmp_path / "d", count=2)
    (data / "001.json").unlink()
    torch.manual_seed(0)
    weights = tmp_path / "body_pose_model.safetensors"  # the real network, random weights
    save_file(body_network_class()().state_dict(), str(weights))
    records = scan_dataset(data, detector_weights=str(weights), cache_dir=tmp_path / "cache")
    kept = list((tmp_path / "cache" / "poses").glob("001-*.json"))
    assert len(kept) == 1 and records[1].pose.canvas_size == (64, 64)
    assert records[0].pose.num_people == 1  # the sample with a pose file keeps it
    again = scan_dataset(data, detector_weights=str(tmp_path / "missing.pth"), cache_dir=tmp_path / "cache")
    assert np.array_equal(again[1].pose.keypoints, records[1].pose.keypoints)  # read back, weights not needed
