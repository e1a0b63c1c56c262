"""Checkpoint IO on tiny real files: round trips, identification, safety, errors, CLI."""
from __future__ import annotations

import json
import logging
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from humansd_core.cli import main as cli_main
from humansd_core.errors import CheckpointError
from humansd_core.models.checkpoint import (
    UNET_PREFIX,
    build_models,
    convert_checkpoint,
    expected_shapes,
    init_from_sd21,
    load_models,
    open_tensors,
    read_checkpoint,
    read_metadata,
    read_state_dict,
    save_models,
    write_random_checkpoint,
)
from humansd_core.models import checkpoint_read
from humansd_core.models.configs import CONFIG_METADATA_KEY, ModelConfig, sd21_humansd_config, tiny_config

INPUT_KEY = UNET_PREFIX + "input_blocks.0.0.weight"


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    write_random_checkpoint(path, tiny_config(), dtype=torch.float32, seed=3)
    return path


@pytest.fixture(scope="module")
def tiny_state(tiny_file: Path) -> dict[str, torch.Tensor]:
    return load_file(str(tiny_file))


def _outputs(models) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    with torch.no_grad():
        ctx = models.text_encoder(["a person waving"])
        eps = models.unet(torch.randn(1, 8, 8, 8), torch.tensor([400]), ctx)
        image = models.vae.decode(torch.randn(1, 4, 8, 8))
    return ctx, eps, image


def _lightning_ckpt(path: Path, state: dict[str, torch.Tensor], **extra: object) -> Path:
    """A PyTorch-Lightning-like checkpoint: state_dict plus training bookkeeping."""
    torch.save({"epoch": 7, "global_step": 1234, "state_dict": state, **extra}, path)
    return path


class _Payload:
    """Pickles to ``os.system("touch <marker>")``: code that would run on a plain unpickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


class HyperParams:
    """Stands for Lightning's hyper-parameter objects (a class torch's allow-list lacks)."""

    def __init__(self) -> None:
        self.lr = 1e-5
        self.pose_loss_weight = 0.1


def test_random_file_round_trip_with_metadata(tiny_file: Path, tmp_path: Path) -> None:
    metadata = read_metadata(tiny_file)
    assert ModelConfig.from_json(metadata[CONFIG_METADATA_KEY]) == tiny_config()
    models = load_models(tiny_file)
    assert models.config == tiny_config()
    assert not models.unet.training and not any(p.requires_grad for p in models.unet.parameters())
    ctx, eps, image = _outputs(models)
    assert torch.isfinite(eps).all() and eps.abs().mean() > 1e-3  # random weights, non-trivial output
    assert torch.isfinite(image).all() and torch.isfinite(ctx).all()

    again = tmp_path / "again.safetensors"
    save_models(models, again)
    reloaded = load_models(again)
    for a, b in zip(_outputs(models), _outputs(reloaded), strict=True):
        assert torch.equal(a, b)
    assert load_file(str(again)).keys() == load_file(str(tiny_file)).keys()


def test_random_checkpoint_is_deterministic_and_typed(tmp_path: Path) -> None:
    a, b, c = (tmp_path / f"{n}.safetensors" for n in "abc")
    write_random_checkpoint(a, tiny_config(), seed=1)
    write_random_checkpoint(b, tiny_config(), seed=1)
    write_random_checkpoint(c, tiny_config(), seed=2)
    sa, sb, sc = (load_file(str(p)) for p in (a, b, c))
    assert {t.dtype for t in sa.values()} == {torch.float16}
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa[INPUT_KEY], sc[INPUT_KEY])
    assert {k: tuple(v.shape) for k, v in sa.items()} == expected_shapes(tiny_config())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_load_casts_to_requested_dtype(tiny_file: Path, dtype: torch.dtype) -> None:
    models = load_models(tiny_file, dtype=dtype)
    assert {p.dtype for p in models.unet.parameters()} == {dtype}
    assert models.text_encoder.attn_mask.device.type == "cpu"
    with torch.no_grad():
        ctx = models.text_encoder(["x"])
        eps = models.unet(torch.randn(1, 8, 8, 8), torch.tensor([1]), ctx)
    assert torch.isfinite(eps).all()


def test_file_without_metadata_identified_by_shapes(tiny_state, tmp_path: Path) -> None:
    bare = tmp_path / "bare.safetensors"
    save_file(tiny_state, str(bare))
    assert read_metadata(bare) == {}
    assert load_models(bare).config == tiny_config()


def test_lightning_ckpt_extra_keys_ignored_with_summary(tiny_state, tmp_path, caplog) -> None:
    state = dict(tiny_state)
    state["betas"] = torch.linspace(0, 1, 1000)
    state["alphas_cumprod"] = torch.linspace(1, 0, 1000)
    state["model_ema.decay"] = torch.tensor(0.999)
    state["mmpose_model.backbone.conv1.weight"] = torch.zeros(2, 3, 3, 3)
    state["mmpose_model.head.weight"] = torch.zeros(2)
    path = _lightning_ckpt(tmp_path / "humansd.ckpt", state)
    with caplog.at_level(logging.INFO, logger="humansd_core.models"):
        models = load_models(path)
    lines = [r.getMessage() for r in caplog.records if "extra tensors" in r.getMessage()]
    assert lines == ["humansd.ckpt: ignoring 5 extra tensors: mmpose_model.* x2, betas, alphas_cumprod, model_ema.*"]
    assert torch.equal(models.unet.input_blocks[0][0].weight, tiny_state[INPUT_KEY])
    assert sorted(read_state_dict(path)) == sorted(state)


def test_malicious_ckpt_loads_weights_without_running_code(tiny_state, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _lightning_ckpt(
        tmp_path / "evil.ckpt", tiny_state, hyper_parameters=HyperParams(), callbacks={"x": _Payload(marker)}
    )
    with pytest.raises(pickle.UnpicklingError):  # torch's own safe loader refuses it...
        torch.load(path, weights_only=True)
    models = load_models(path)  # ...ours still gets the weights
    assert not marker.exists()
    assert torch.equal(models.vae.quant_conv.weight, tiny_state["first_stage_model.quant_conv.weight"])
    state = read_state_dict(path)
    assert not marker.exists()
    assert all(torch.equal(state[k], v) for k, v in tiny_state.items())


def test_malicious_payload_in_state_dict_is_inert(tiny_state, tmp_path: Path) -> None:
    marker = tmp_path / "pwned2"
    state = {**tiny_state, "evil": _Payload(marker)}
    path = _lightning_ckpt(tmp_path / "evil2.ckpt", state)
    models = load_models(path)
    assert not marker.exists()
    assert models.config == tiny_config()


def test_missing_keys_error_lists_them(tiny_state, tmp_path: Path) -> None:
    state = {k: v for k, v in tiny_state.items() if "middle_block.1" not in k and "decoder.conv_out" not in k}
    meta = {CONFIG_METADATA_KEY: tiny_config().to_json()}
    path = tmp_path / "partial.safetensors"
    save_file(state, str(path), metadata=meta)
    with pytest.raises(CheckpointError) as info:
        load_models(path)
    message = str(info.value)
    assert str(path) in message and "missing" in message
    assert "first_stage_model.decoder.conv_out.bias" in message


def test_four_channel_unet_points_to_init_from_sd21(tiny_state, tmp_path: Path) -> None:
    state = dict(tiny_state)
    state[INPUT_KEY] = state[INPUT_KEY][:, :4].contiguous()
    path = tmp_path / "sd21.safetensors"
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match="plain Stable Diffusion.*humansd init-from-sd21"):
        load_models(path)


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_truncated_file_error_names_file(tiny_file: Path, tiny_state, tmp_path: Path, suffix: str) -> None:
    source = tiny_file if suffix == ".safetensors" else _lightning_ckpt(tmp_path / "full.ckpt", tiny_state)
    data = source.read_bytes()
    for cut in (len(data) // 2, len(data) - 100):
        path = tmp_path / f"cut_{cut}{suffix}"
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=str(path)):
            load_models(path)


def test_garbage_and_missing_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"hello world, not a model")
    with pytest.raises(CheckpointError, match="junk.ckpt"):
        load_models(junk)
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "nope.safetensors")


def test_corrupt_tensor_data_in_restricted_path(tiny_state, tmp_path: Path) -> None:
    path = _lightning_ckpt(tmp_path / "hp.ckpt", tiny_state, hyper_parameters=HyperParams())
    corrupt = tmp_path / "corrupt.ckpt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(corrupt, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if "/data/" in info.filename and len(data) > 1000:
                data = data[:-8]  # a storage shorter than its tensors need
            dst.writestr(info, data)
    with pytest.raises(CheckpointError, match="corrupt.ckpt"):
        load_models(corrupt)


def test_convert_ckpt_to_fp16_safetensors(tiny_state, tmp_path: Path) -> None:
    src = _lightning_ckpt(tmp_path / "src.ckpt", {**tiny_state, "betas": torch.zeros(1000)},
                          hyper_parameters=HyperParams())
    dst = tmp_path / "out.safetensors"
    assert convert_checkpoint(src, dst, fp16=True) == tiny_config()
    out = load_file(str(dst))
    assert "betas" not in out and {t.dtype for t in out.values()} == {torch.float16}
    assert torch.equal(out[INPUT_KEY], tiny_state[INPUT_KEY].half())
    assert json.loads(read_metadata(dst)[CONFIG_METADATA_KEY])["unet"]["in_channels"] == 8


def _sd21_like(tiny_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = dict(tiny_state)
    state[INPUT_KEY] = state[INPUT_KEY][:, :4].contiguous()
    return state


def test_init_from_sd21_copies_and_zero_fills(tiny_state, tmp_path: Path) -> None:
    sd21 = _sd21_like(tiny_state)
    src = _lightning_ckpt(tmp_path / "v2-1_512.ckpt", sd21)
    dst = tmp_path / "humansd_init.safetensors"
    init_from_sd21(src, dst, config=tiny_config())
    out = load_file(str(dst))
    weight = out[INPUT_KEY]
    assert weight.shape[1] == 8
    assert torch.equal(weight[:, :4], sd21[INPUT_KEY]) and not weight[:, 4:].any()
    assert all(torch.equal(out[k], v) for k, v in sd21.items() if k != INPUT_KEY)
    # The new model ignores the pose channels: it computes what the SD model did.
    models = load_models(dst)
    with torch.no_grad():
        ctx, x = torch.randn(1, 77, 32), torch.randn(1, 8, 8, 8)
        a = models.unet(x, torch.tensor([9]), ctx)
        b = models.unet(torch.cat([x[:, :4], torch.randn(1, 4, 8, 8)], 1), torch.tensor([9]), ctx)
    assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="expected 4 input channels"):
        init_from_sd21(dst, tmp_path / "twice.safetensors", config=tiny_config())
    with pytest.raises(CheckpointError, match="tensors missing"):
        init_from_sd21(src, tmp_path / "wrong.safetensors", config=sd21_humansd_config())


def test_cli_convert_and_init(tiny_state, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _lightning_ckpt(tmp_path / "sd21.ckpt", _sd21_like(tiny_state))
    init_out = tmp_path / "init.safetensors"
    assert cli_main(["init-from-sd21", str(src), str(init_out), "--config", "tiny"]) == 0
    assert "zeroed pose input channels" in capsys.readouterr().out
    ckpt = _lightning_ckpt(tmp_path / "hsd.ckpt", load_file(str(init_out)), hyper_parameters=HyperParams())
    conv_out = tmp_path / "conv.safetensors"
    assert cli_main(["convert", str(ckpt), str(conv_out), "--fp16"]) == 0
    assert load_models(conv_out).config == tiny_config()
    # A plain SD file given to convert: exit code 2 and the pointer to init-from-sd21.
    assert cli_main(["convert", str(src), str(tmp_path / "x.safetensors")]) == 2
    assert "init-from-sd21" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()


def test_safetensors_reader_matches_library_for_all_dtypes(tmp_path: Path) -> None:
    tensors = {
        "f32": torch.randn(3, 5), "f16": torch.randn(7).half(), "bf16": torch.randn(2, 2, 2).bfloat16(),
        "i64": torch.arange(10), "u8": torch.arange(6, dtype=torch.uint8).view(2, 3),
        "bool": torch.tensor([True, False]),
        "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 4),
    }
    path = tmp_path / "mixed.safetensors"
    save_file(tensors, str(path), metadata={"k": "v"})
    ours = read_state_dict(path)
    assert ours.keys() == tensors.keys() and read_metadata(path) == {"k": "v"}
    for key, expected in tensors.items():
        assert ours[key].dtype == expected.dtype and torch.equal(ours[key], expected), key


def test_safetensors_header_lying_about_offsets(tmp_path: Path) -> None:
    path = tmp_path / "liar.safetensors"
    save_file({"a": torch.zeros(4), "b": torch.ones(4)}, str(path))
    data = bytearray(path.read_bytes())
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    header["b"]["data_offsets"] = [16, 64]  # beyond the data section
    raw = json.dumps(header).encode().ljust(n)
    path.write_bytes(bytes(data[:8]) + raw[:n] + bytes(data[8 + n :]))
    with pytest.raises(CheckpointError, match="liar.safetensors"):
        read_state_dict(path)


def _raw_safetensors(path: Path, dtype: str, shape: list[int], data: bytes) -> Path:
    """A one-tensor safetensors file written by hand, so any dtype name can be declared."""
    header = json.dumps({"t": {"dtype": dtype, "shape": shape, "data_offsets": [0, len(data)]}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + data)
    return path


@pytest.mark.parametrize("name, dtype", [("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2"),
                                         ("U16", "uint16"), ("U32", "uint32"), ("U64", "uint64")])
def test_safetensors_reader_knows_fp8_and_unsigned_dtypes(tmp_path: Path, name: str, dtype: str) -> None:
    torch_dtype = getattr(torch, dtype, None)
    if torch_dtype is None:  # an older torch: the reader must say so (next test), not read it
        pytest.skip(f"torch {torch.__version__} has no {dtype}")
    expected = torch.arange(6, dtype=torch.float32).reshape(2, 3).to(torch_dtype)
    data = expected.view(torch.uint8).numpy().tobytes()
    path = _raw_safetensors(tmp_path / f"{name}.safetensors", name, [2, 3], data)
    got = read_state_dict(path)["t"]
    assert got.dtype == torch_dtype and torch.equal(got.view(torch.uint8), expected.view(torch.uint8))
    if torch_dtype.is_floating_point:
        with open_tensors(path) as source:  # fp8 weights load cast, as a model loader asks
            assert torch.equal(source.get("t", torch.float32), expected.float())


def test_unsupported_safetensors_dtype_is_named_not_called_corrupt(tmp_path: Path, monkeypatch) -> None:
    path = _raw_safetensors(tmp_path / "f4.safetensors", "F4", [2], b"\x00")
    with pytest.raises(CheckpointError, match="dtype F4 not supported") as error:
        read_state_dict(path)
    assert "corrupt" not in str(error.value)
    monkeypatch.setitem(checkpoint_read._SAFETENSORS_DTYPES, "U16", None)  # as on a torch without uint16
    path = _raw_safetensors(tmp_path / "u16.safetensors", "U16", [1], b"\x00\x00")
    with pytest.raises(CheckpointError, match="dtype U16 not supported .*does not have"):
        read_state_dict(path)


def test_ckpt_is_read_once_for_tensors_and_metadata(tiny_state, tmp_path: Path, monkeypatch) -> None:
    path = _lightning_ckpt(tmp_path / "model.ckpt", tiny_state, hyper_parameters=HyperParams())
    parses = []
    real = checkpoint_read.LazyZipCheckpoint
    monkeypatch.setattr(checkpoint_read, "LazyZipCheckpoint", lambda p: parses.append(p) or real(p))
    state, metadata = read_checkpoint(path)
    assert metadata == {} and state.keys() == tiny_state.keys() and len(parses) == 1
    assert read_metadata(path) == {} and len(parses) == 1  # a torch file has no metadata: its pickle is not read


def test_legacy_torch_format(tiny_state, tmp_path: Path) -> None:
    plain = tmp_path / "legacy.pt"
    torch.save({"state_dict": tiny_state}, plain, _use_new_zipfile_serialization=False)
    assert load_models(plain).config == tiny_config()
    marker = tmp_path / "pwned_legacy"
    evil = tmp_path / "legacy_evil.pt"
    torch.save({"state_dict": tiny_state, "x": _Payload(marker)}, evil, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="legacy torch file"):
        load_models(evil)
    assert not marker.exists()


def test_cpu_load_uses_channels_last_unet_with_same_output(tiny_file: Path) -> None:
    models = load_models(tiny_file)
    weight = models.unet.input_blocks[0][0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    plain = build_models(tiny_config()).unet
    plain.load_state_dict(models.unet.state_dict())
    torch.manual_seed(5)
    x, ctx = torch.randn(1, 8, 8, 8), torch.randn(1, 77, 32)
    with torch.no_grad():
        assert torch.allclose(models.unet(x, torch.tensor([3]), ctx), plain(x, torch.tensor([3]), ctx), atol=1e-5)


def test_saving_twice_gives_identical_bytes(tiny_file: Path, tmp_path: Path) -> None:
    models = load_models(tiny_file)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_models(models, a)
    save_models(models, b)
    assert a.read_bytes() == b.read_bytes()
