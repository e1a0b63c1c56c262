"""The files shipped inside the package, and the one loader that finds and checks them.

This folder holds the data (``weights/`` with its ``SHA256SUMS``, ``poses/``,
``presets/``, ``MODEL_CARD.md``) and this module finds them: the pose estimators
(:mod:`humansd_core.pose`), the training loss (:mod:`humansd_core.training`) and the
embedded model (:mod:`humansd_core.embedded`) all ask it, so it depends on nothing of
theirs.

Inside ComfyUI the package is not importable as ``humansd_core``: ComfyUI imports
the pack folder under a name derived from its path, so ``humansd_core`` exists only
as a sub-package of it. Every packaged file is therefore found from this ``__file__``
(never an ``importlib.resources`` lookup by the package's top-level name, which would
fail there, or find a stale copy someone once installed into the same environment).

Weights are listed with their SHA-256 in ``assets/weights/SHA256SUMS``;
:func:`shipped_weights` returns a listed file after checking it is present, not a
Git LFS pointer, and has the listed digest. Whatever writes a weights file into the
package (only the embedded model's recipe, :mod:`humansd_core.embedded.recipe`)
records its new digest with :func:`record_if_shipped`. :func:`resolve_checkpoint` is
how every option that asks for a model file reads its value: a path, or the word
``embedded`` for the tiny HumanSD shipped here.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import CheckpointError, HumanSDError, MissingWeightsError
from ..fileio import atomic_write_text, require_file

ASSETS_DIR = Path(__file__).parent
WEIGHTS_DIR = ASSETS_DIR / "weights"
POSES_DIR = ASSETS_DIR / "poses"
PRESETS_DIR = ASSETS_DIR / "presets"
SUMS_NAME = "SHA256SUMS"
LFS_POINTER = b"version https://git-lfs"
EMBEDDED = "embedded"  # the word that names the shipped model wherever a model file is asked for
EMBEDDED_MODEL_NAME = "humansd_tiny.safetensors"
ESTIMATOR_NAMES = {"loss": "estimator_loss.safetensors", "judge": "estimator_judge.safetensors"}  # by role


def file_digest(path: str | Path) -> str:
    """SHA-256 (hex) of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def listed_digests(folder: Path = WEIGHTS_DIR) -> dict[str, str]:
    """``{file name: SHA-256}`` of ``folder``'s ``SHA256SUMS`` (empty when it has none)."""
    sums = folder / SUMS_NAME
    if not sums.is_file():
        return {}
    listed = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.strip().partition("  ")
        if name:
            listed[name] = digest
    return listed


def shipped_digest(name: str, folder: Path = WEIGHTS_DIR) -> str | None:
    """The SHA-256 the package lists for its weights file ``name``, or None if unlisted."""
    return listed_digests(folder).get(name)


def record_digest(path: Path) -> str:
    """Write ``path``'s SHA-256 into its folder's ``SHA256SUMS`` (its own line only; atomic); returns it."""
    digest, sums = file_digest(path), path.parent / SUMS_NAME
    lines = sums.read_text(encoding="utf-8").splitlines() if sums.is_file() else []
    kept = [line for line in lines if line.strip() and line.strip().partition("  ")[2] != path.name]
    atomic_write_text(sums, "".join(f"{line}\n" for line in [*kept, f"{digest}  {path.name}"]))
    return digest


def record_if_shipped(path: str | Path) -> bool:
    """Record ``path``'s digest in ``SHA256SUMS`` if it is a file of the package's ``weights/``; True if it is."""
    path = Path(path)
    if path.resolve().parent != WEIGHTS_DIR.resolve():
        return False
    record_digest(path)
    return True


def check_weights(path: str | Path, expected_sha256: str | None = None) -> Path:
    """Raise unless ``path`` looks like an intact weights file; returns it as a Path.

    ``MissingWeightsError`` when absent; ``CheckpointError`` for a Git LFS pointer left
    in place of the file, or a SHA-256 other than ``expected_sha256`` (when given).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(
            f"{path}: weights file not found. The pack's own weights ship inside it "
            f"(humansd_core/assets/weights/); reinstall from a complete clone, or pass the file explicitly")
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(LFS_POINTER))
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the weights file ({exc.strerror or exc})") from None
    if head == LFS_POINTER:
        raise CheckpointError(f"{path}: a Git LFS pointer, not the weights; run `git lfs pull` in the clone")
    if expected_sha256 is not None and file_digest(path) != expected_sha256:
        raise CheckpointError(f"{path}: corrupt weights file (SHA-256 differs from the one in {SUMS_NAME}); "
                              "restore it from the repository")
    return path


def shipped_weights(name: str) -> Path:
    """The packaged weights file ``name``, checked against its ``SHA256SUMS`` line.

    Raises ``HumanSDError`` for a name the package does not list (a broken install
    or a typo), and what :func:`check_weights` raises for a missing or damaged file.
    """
    digest = shipped_digest(name)
    if digest is None:
        raise HumanSDError(f"{name!r}: not a weights file of this package "
                           f"(listed in {WEIGHTS_DIR / SUMS_NAME}: {sorted(listed_digests())})")
    return check_weights(WEIGHTS_DIR / name, digest)


def resolve_checkpoint(value: str | Path, what: str = "") -> Path:
    """The model file an option names: the string ``"embedded"`` is the shipped tiny HumanSD, anything
    else (and every ``Path``) a path.

    The embedded file is checked against its SHA-256 (:func:`shipped_weights`); a path
    must be a readable file and not a Git LFS pointer. Cheap (no model is read), so
    callers can check files before importing torch. ``what`` (e.g. ``"--ckpt"``) starts
    every error message. A file really named ``embedded`` is reached as ``./embedded``.

    Raises:
        CheckpointError: naming ``what`` and the file: missing, unreadable, a folder,
            a Git LFS pointer, or (embedded) a damaged install.
    """
    if isinstance(value, str) and value == EMBEDDED:
        return shipped_weights(EMBEDDED_MODEL_NAME)
    try:
        path = require_file(value, what)
    except HumanSDError as exc:
        raise CheckpointError(f"{exc} (give a HumanSD model file, .safetensors or .ckpt, or {EMBEDDED} for "
                              "the tiny model shipped in the package)") from None
    try:
        return check_weights(path)
    except CheckpointError as exc:
        raise CheckpointError(f"{what} {exc}" if what else str(exc)) from None
