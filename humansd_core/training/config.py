"""Training options: one dataclass per TOML table, every option also a command-line flag.

A config file (TOML) holds up to five tables, ``[model]``, ``[data]``, ``[optim]``,
``[loss]`` and ``[output]``, whose keys are the fields below; every key is also a flag
``--key-with-dashes`` (flag names are unique across tables) that overrides the file.
Relative paths in a file are resolved against the file's folder.

Example::

    [model]
    base = "humansd-v1.safetensors"   # or an SD2.1 file (pose channels start at zero)
    mode = "lora"
    lora_rank = 16

    [data]
    data = "my_dataset"               # folder of image + pose + .txt, or a .jsonl manifest
    resolution = 512

    [optim]
    steps = 2000
    lr = 1e-4

    [output]
    output = "runs/lora1"
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import HumanSDError
from ..assets import EMBEDDED, resolve_checkpoint
from ..fileio import require_file
from ..tomlfile import TOMLDecodeError, parse_toml
from .lora_targets import DEFAULT_TARGETS
from .loss_choices import DEFAULT_ESTIMATOR_SCALE, DecoderName, LossMode, MaskToLatent
from .lr_schedule import Schedule

DtypeName = Literal["fp32", "fp16", "bf16"]


def _opt(default: Any, help_text: str) -> Any:
    """A dataclass field with its command-line help."""
    return field(default=default, metadata={"help": help_text})


@dataclass
class ModelOptions:
    """What is trained, starting from what."""

    base: str = _opt("", f"HumanSD or SD2.1 checkpoint, or {EMBEDDED} (the tiny model shipped in the package); "
                         "empty: fresh weights of `init_config`")
    init_config: str = _opt("tiny", "named config (tiny, sd21_humansd) or a JSON file; used without `base`")
    vae: str = _opt("", f"take the (frozen) VAE from this checkpoint (or {EMBEDDED}) instead of the base's")
    mode: Literal["lora", "full"] = _opt("lora", "lora | full")
    train_text_encoder: bool = _opt(False, "full mode only: train the text tower with the UNet")
    lora_rank: int = _opt(8, "LoRA rank")
    lora_alpha: float = _opt(0.0, "0: equal to the rank (scale 1)")
    lora_targets: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS),
                              metadata={"help": "regular expressions of UNet module names to adapt"})
    lora_input_conv: bool = _opt(False, "also adapt the 8-channel input conv")
    gradient_checkpointing: bool = _opt(False, "recompute activations in backward (less memory)")
    frozen_dtype: DtypeName = _opt("fp32", "dtype of frozen weights (VAE, text tower, the UNet under LoRA)")
    device: str = _opt("", "empty: cuda:<local rank> when available, else cpu")
    cpu_threads: int = _opt(0, "torch intra-op CPU threads (0: torch's default); 1 is fastest for tiny models")


@dataclass
class DataOptions:
    """Where the samples come from and how they are prepared."""

    data: str = _opt("", "a folder (image + same-stem pose file + .txt caption) or a .jsonl manifest")
    resolution: int = _opt(512, "buckets hold about resolution² pixels")
    buckets: bool = _opt(True, "aspect-ratio buckets; off: every image to resolution x resolution")
    bucket_step: int = _opt(64, "bucket sides are multiples of this")
    max_aspect: float = _opt(2.0, "longest/shortest side of the most elongated bucket")
    flip_prob: float = _opt(0.2, "horizontal flip (left/right joints swapped)")
    random_crop: bool = _opt(True, "off: centre crop")
    zoom_max: float = _opt(1.0, "random zoom-in factor in [1, zoom_max] before cropping")
    caption_dropout: float = _opt(0.0, "probability of training with the empty caption")
    caption_ext: str = _opt(".txt", "suffix of the caption file beside each image")
    pose_threshold: float = _opt(0.05, "keypoints drawn in the skeleton image: confidence > this")
    max_people: int = _opt(10, "first N people of each pose (the reference's limit)")
    detector_weights: str = _opt("", "OpenPose body_pose_model.pth: detect poses of images without a pose file")
    cache: Literal["none", "pixels", "latents"] = _opt("latents", "none | pixels (decoded images in memory) | latents (VAE latents, on disk)")
    cache_text: bool = _opt(True, "cache text embeddings (ignored when the text tower trains)")
    cache_dir: str = _opt("", "empty: <output>/cache")
    vae_sample: bool = _opt(False, "sample the VAE posterior instead of taking its mean")
    num_workers: int = _opt(0, "DataLoader worker processes (0: load in the training process)")


@dataclass
class OptimOptions:
    """Optimiser, schedule, precision and seeds."""

    steps: int = _opt(1000, "optimiser steps")
    batch_size: int = _opt(1, "per device and micro-step")
    grad_accum: int = _opt(1, "micro-batches per optimiser step")
    lr: float = _opt(1e-4, "peak learning rate")
    optimizer: Literal["adamw", "adafactor"] = _opt(
        "adamw", "adamw | adafactor (factored second moment, no momentum: optimiser state of about half the "
                 "trained weights for SD's UNet, whose convolutions factor poorly, instead of twice)")
    weight_decay: float = _opt(1e-2, "AdamW weight decay")
    adam_beta1: float = _opt(0.9, "AdamW beta1")
    adam_beta2: float = _opt(0.999, "AdamW beta2")
    adam_eps: float = _opt(1e-8, "AdamW epsilon")
    warmup_steps: int = _opt(0, "linear LR warmup steps")
    lr_schedule: Schedule = _opt("cosine", "cosine | constant (after the linear warmup)")
    min_lr_ratio: float = _opt(0.0, "cosine floor as a fraction of lr")
    max_grad_norm: float = _opt(1.0, "0: no clipping")
    precision: DtypeName = _opt("fp32", "fp32 | bf16 | fp16 (autocast; fp16 with a gradient scaler)")
    ema_decay: float = _opt(0.0, "0: no EMA; else e.g. 0.999 (outputs then hold the EMA weights)")
    noise_offset: float = _opt(0.0, "offset noise: add this x N(0,1) per sample and latent channel to the noise, "
                                    "so the model must learn (from the text) to change an image's mean colour")
    high_noise_weight_cap: float = _opt(1.0, "1: off; above 1, each sample's loss is weighted by clamp(1/SNR(t), 1, "
                                              "this): the noisiest steps, where the text sets an image's colours "
                                              "but the noise error barely sees them, weigh like their image error")
    seed: int = _opt(0, "seed of data order, augmentation, noise and fresh weights")
    deterministic: bool = _opt(False, "torch.use_deterministic_algorithms")


@dataclass
class LossOptions:
    """The denoising loss (see :mod:`humansd_core.training.loss`)."""

    loss: Literal["heatmap", "plain"] = _opt("heatmap", "heatmap (HumanSD's heatmap-guided loss) | plain (MSE)")
    heatmap_mode: LossMode = _opt("paper", "paper | reference")
    heatmap_weight: float = _opt(0.1, "w in the weight 1 + w·mask (the reference's pose_loss_weight)")
    heatmap_threshold: float = _opt(0.05, "heatmap level counted as a joint (estimate_thresh)")
    heatmap_decoder: DecoderName = _opt("distilled", "distilled (a small net on the latent, distilled from the full "
                                             "path) | full | reduced | linear")
    mask_to_latent: MaskToLatent = _opt("area", "area | vae")
    estimator: Literal["gaussian", "openpose", "tiny"] = _opt("gaussian", "gaussian (keypoints of the sample's own pose) | openpose | tiny "
                                      "(the bundled mannequin estimator, or estimator_weights)")
    estimator_weights: str = _opt("", "openpose: body_pose_model.pth; tiny: a tiny estimator file (optional)")
    estimator_scale: float = _opt(DEFAULT_ESTIMATOR_SCALE, "estimator input size as a fraction of the training image (paper mode)")
    refresh_every: int = _opt(1, "recompute the loss mask every k steps (paper mode)")
    distilled_weights: str = _opt("", "heatmap_decoder = distilled: a distilled net file; empty: the bundled one "
                                      "when it was distilled from this VAE and estimator, else fit on the run's "
                                      "first distill_batches batches; 'fit': always fit on those batches")
    distill_batches: int = _opt(8, "batches whose full-decode heatmaps teach the distilled net")
    distill_steps: int = _opt(1500, "optimiser steps of fitting the distilled net")


@dataclass
class OutputOptions:
    """Files written: checkpoints, samples, logs, the trained weights."""

    output: str = _opt("", "run folder (checkpoints, logs, samples, the trained weights)")
    save_every: int = _opt(500, "resume checkpoint every N steps (and at the end)")
    keep_last: int = _opt(3, "resume checkpoints kept")
    resume: str = _opt("", "'auto': the run folder's latest checkpoint; or a checkpoint path")
    sample_every: int = _opt(0, "0: no samples")
    sample_count: int = _opt(2, "samples use the poses and captions of the first N data samples")
    sample_prompt: str = _opt("", "empty: each data sample's caption")
    sample_pose: str = _opt("", "a pose file whose frames (up to sample_count, on their own canvas) the samples "
                                "draw with sample_prompt (empty prompt: the first data sample's caption); "
                                "empty: the poses of the first sample_count data samples")
    sample_steps: int = _opt(10, "DDIM steps of each sample")
    sample_cfg: float = _opt(5.0, "guidance scale of the samples")
    log_every: int = _opt(10, "loss log line every N steps")
    save_dtype: DtypeName = _opt("fp16", "dtype of the exported weights")
    progress: bool = _opt(True, "tqdm progress bar (rank 0)")


SECTIONS: dict[str, type] = {
    "model": ModelOptions, "data": DataOptions, "optim": OptimOptions, "loss": LossOptions, "output": OutputOptions,
}
PATH_FIELDS = frozenset({"base", "vae", "data", "detector_weights", "cache_dir", "estimator_weights",
                         "distilled_weights", "output", "sample_pose"})
MODEL_FIELDS = ("base", "vae")  # model files: a path or the word EMBEDDED (assets.resolve_checkpoint)
WEIGHTS_FIELDS = ("detector_weights", "estimator_weights", "distilled_weights")  # other network files
FIT_DISTILLED = "fit"  # distilled_weights: a keyword, not a file: always fit on the run's first batches


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


FIELD_SECTION: dict[str, str] = {f.name: s for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
# Options with a fixed set of values: the values of their ``Literal`` annotations.
CHOICES: dict[str, tuple[str, ...]] = {
    f.name: typing.get_args(hint) for cls in SECTIONS.values() for f in dataclasses.fields(cls)
    if typing.get_origin(hint := _field_types(cls)[f.name]) is Literal
}


@dataclass
class TrainConfig:
    """All options of a training run (see the module docstring)."""

    model: ModelOptions = field(default_factory=ModelOptions)
    data: DataOptions = field(default_factory=DataOptions)
    optim: OptimOptions = field(default_factory=OptimOptions)
    loss: LossOptions = field(default_factory=LossOptions)
    output: OutputOptions = field(default_factory=OutputOptions)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<config>", base_dir: Path | None = None) -> TrainConfig:
        """Build from ``{table: {key: value}}``; unknown tables/keys and wrong types raise HumanSDError."""
        config = cls()
        for table, values in data.items():
            if table not in SECTIONS:
                raise HumanSDError(f"{source}: unknown table [{table}]; expected one of {sorted(SECTIONS)}")
            if not isinstance(values, dict):
                raise HumanSDError(f"{source}: [{table}] must be a table of options")
            for key, value in values.items():
                if FIELD_SECTION.get(key) != table:
                    where = f" (it belongs in [{FIELD_SECTION[key]}])" if key in FIELD_SECTION else ""
                    raise HumanSDError(f"{source}: unknown option {key!r} in [{table}]{where}")
                config.set(key, value, source, base_dir)
        config.validate()
        return config

    @classmethod
    def from_toml(cls, path: str | Path) -> TrainConfig:
        """Read a TOML file; relative paths in it are relative to its folder."""
        path = Path(path)
        try:
            data = parse_toml(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise HumanSDError(f"{path}: cannot read the config file ({exc})") from None
        except TOMLDecodeError as exc:
            raise HumanSDError(f"{path}: invalid TOML: {exc}") from None
        return cls.from_dict(data, str(path), path.parent)

    def set(self, key: str, value: Any, source: str = "<config>", base_dir: Path | None = None) -> None:
        """Set one option by its name, checking its type (ints are accepted for floats)."""
        section = getattr(self, FIELD_SECTION[key])
        expected = _field_types(type(section))[key]
        value = _coerce(key, value, expected, source)
        is_path = key in PATH_FIELDS or (key == "init_config" and str(value).lower().endswith(".json"))
        if (key in MODEL_FIELDS and value == EMBEDDED) or (key == "distilled_weights" and value == FIT_DISTILLED):
            is_path = False
        if is_path and value and base_dir is not None and not Path(value).is_absolute():
            value = str(base_dir / value)
        setattr(section, key, value)

    def validate(self) -> None:
        """Raise HumanSDError naming the first option whose value is not allowed."""
        values = self._values()
        for key, choices in CHOICES.items():
            if values[key] not in choices:
                raise HumanSDError(f"option {key}={values[key]!r}: choose one of {list(choices)}")
        positive = ("lora_rank", "resolution", "bucket_step", "steps", "batch_size", "grad_accum", "keep_last",
                    "sample_steps", "log_every", "save_every", "refresh_every", "sample_count", "distill_batches",
                    "distill_steps")
        for key in positive:
            if values[key] < 1:
                raise HumanSDError(f"option {key}={values[key]!r}: must be at least 1")
        for key in ("flip_prob", "caption_dropout", "min_lr_ratio"):
            if not 0.0 <= values[key] <= 1.0:
                raise HumanSDError(f"option {key}={values[key]!r}: must lie in [0, 1]")
        for key in ("lr", "weight_decay", "adam_eps", "max_grad_norm", "lora_alpha", "heatmap_weight",
                    "noise_offset", "warmup_steps", "sample_every", "num_workers", "cpu_threads"):
            if values[key] < 0:
                raise HumanSDError(f"option {key}={values[key]!r}: must not be negative")
        if values["high_noise_weight_cap"] < 1.0:
            raise HumanSDError(f"option high_noise_weight_cap={values['high_noise_weight_cap']!r}: must be at least 1 "
                               "(1 = off)")
        if not 0.0 <= values["ema_decay"] < 1.0:
            raise HumanSDError(f"option ema_decay={values['ema_decay']!r}: must lie in [0, 1)")
        if values["zoom_max"] < 1.0 or values["max_aspect"] < 1.0:
            raise HumanSDError("options zoom_max and max_aspect must be at least 1")
        if self.model.frozen_dtype != "fp32" and self.optim.precision == "fp32":
            raise HumanSDError(f"option frozen_dtype={self.model.frozen_dtype!r} needs precision bf16 or fp16 "
                               "(autocast mixes the frozen half-precision weights with the float32 trained ones)")
        if self.model.train_text_encoder and self.model.mode != "full":
            raise HumanSDError("option train_text_encoder needs mode = 'full' (LoRA adapts the UNet only)")
        if not self.data.data:
            raise HumanSDError("option data: give a dataset folder or a .jsonl manifest")
        if not self.output.output:
            raise HumanSDError("option output: give a run folder")

    def check_files(self) -> None:
        """Raise HumanSDError naming the first option whose file is missing or unreadable (no file is parsed).

        Model files (``base``, ``vae``) go through
        :func:`~humansd_core.assets.resolve_checkpoint` (the embedded model's digest
        included), the other weights files and a ``resume`` path must be readable files,
        ``data`` an existing folder or file. Cheap: the CLI calls it before importing torch.
        """
        values = self._values()
        for key in MODEL_FIELDS:
            if values[key]:
                resolve_checkpoint(values[key], f"option {key}")
        for key in WEIGHTS_FIELDS:
            if values[key] and not (key == "distilled_weights" and values[key] == FIT_DISTILLED):
                require_file(values[key], f"option {key}")
        if values["resume"] not in ("", "auto"):
            require_file(values["resume"], "option resume")
        if not Path(values["data"]).exists():
            raise HumanSDError(f"option data {values['data']}: no such folder or file")

    def _values(self) -> dict[str, Any]:
        """``{option: value}`` over every table."""
        return {k: getattr(getattr(self, s), k) for k, s in FIELD_SECTION.items()}


def _coerce(key: str, value: Any, expected: Any, source: str) -> Any:
    origin = typing.get_origin(expected)
    if origin is Literal:  # the value's type here; whether it is one of the choices, in validate()
        expected = str
    if origin is list:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise HumanSDError(f"{source}: option {key} must be a list of strings, got {value!r}")
        return list(value)
    if expected is bool:
        if not isinstance(value, bool):
            raise HumanSDError(f"{source}: option {key} must be true or false, got {value!r}")
        return value
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or isinstance(value, bool):
        raise HumanSDError(f"{source}: option {key} must be a {expected.__name__}, got {value!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per option, ``--key-with-dashes``, default None (= keep the file's or built-in value)."""
    for section, cls in SECTIONS.items():
        group = parser.add_argument_group(f"[{section}] options")
        defaults = cls()
        for f in dataclasses.fields(cls):
            kind = _field_types(cls)[f.name]
            flag = "--" + f.name.replace("_", "-")
            default = getattr(defaults, f.name)
            help_text = f"{f.metadata.get('help', '')} (default: {default!r})".strip()
            if f.name in CHOICES:
                group.add_argument(flag, dest=f.name, choices=CHOICES[f.name], default=None, help=help_text)
            elif kind is bool:
                group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                   help=help_text)
            elif typing.get_origin(kind) is list:
                group.add_argument(flag, dest=f.name, nargs="+", default=None, metavar="PATTERN", help=help_text)
            else:
                group.add_argument(flag, dest=f.name, type=kind, default=None, help=help_text)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The config file named by ``args.config`` (if any) with every flag given on top."""
    config = TrainConfig.from_toml(args.config) if getattr(args, "config", None) else TrainConfig()
    for key in FIELD_SECTION:
        value = getattr(args, key, None)
        if value is not None:
            config.set(key, value, "command line")
    config.validate()
    return config
