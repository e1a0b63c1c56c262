"""Turn OpenPose body maps (part heatmaps + part affinity fields) into people.

The bottom-up grouping of Cao et al., "Realtime Multi-Person 2D Pose Estimation
using Part Affinity Fields" (CVPR 2017), for the 18-part body model (OpenPose-18
order: nose, neck, r-shoulder, r-elbow, r-wrist, l-shoulder, l-elbow, l-wrist,
r-hip, r-knee, r-ankle, l-hip, l-knee, l-ankle, r-eye, l-eye, r-ear, l-ear):

1. peaks: local maxima (4-neighbourhood) of each Gaussian-smoothed part heatmap
   above ``peak_threshold``;
2. limbs: every candidate pair of the 19 limbs is scored by the mean dot product of
   the limb's affinity field with the pair's unit vector, sampled at 10 points,
   plus a penalty for pairs longer than half the image height; a pair is kept when
   more than 80 % of samples exceed ``paf_threshold`` and the score is positive;
   pairs are matched greedily by score;
3. people: limbs are joined into people through shared parts (in limb order),
   and people with fewer than 4 parts or a mean score below 0.4 are dropped.

Everything works in the coordinates of the maps given (pixels of the network
input); the caller scales the result to its image.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

NUM_PARTS = 18
# (part a, part b, PAF x channel, PAF y channel) of the CMU body model's 19 limbs,
# in the order people are assembled. The last two (ear-shoulder) only join people.
LIMBS: tuple[tuple[int, int, int, int], ...] = (
    (1, 2, 12, 13), (1, 5, 20, 21), (2, 3, 14, 15), (3, 4, 16, 17), (5, 6, 22, 23),
    (6, 7, 24, 25), (1, 8, 0, 1), (8, 9, 2, 3), (9, 10, 4, 5), (1, 11, 6, 7),
    (11, 12, 8, 9), (12, 13, 10, 11), (1, 0, 28, 29), (0, 14, 30, 31), (14, 16, 34, 35),
    (0, 15, 32, 33), (15, 17, 36, 37), (2, 16, 18, 19), (5, 17, 26, 27),
)
_LIMBS_THAT_START_PEOPLE = 17
_SAMPLES_PER_LIMB = 10
_MIN_PARTS = 4
_MIN_MEAN_SCORE = 0.4


def _gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[C, H, W]`` (radius ``4 sigma``, edges replicated)."""
    radius = int(4 * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = maps.shape[0]
    x = F.pad(maps[None], (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    x = F.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    return x[0]


def find_peaks(heatmaps: torch.Tensor, threshold: float = 0.1, sigma: float = 3.0) -> list[np.ndarray]:
    """Part candidates of each heatmap.

    Args:
        heatmaps: ``[18, H, W]`` part heatmaps (any device).
        threshold: minimum smoothed heatmap value of a peak.
        sigma: Gaussian smoothing before the local-maximum test, in pixels.

    Returns:
        18 float64 arrays ``[n_k, 3]`` of ``(x, y, score)``: integer pixel positions,
        score = the unsmoothed heatmap value there.
    """
    smooth = _gaussian_blur(heatmaps.float(), sigma)
    padded = F.pad(smooth, (1, 1, 1, 1))  # zero border, like an image of zeros around
    centre = padded[:, 1:-1, 1:-1]
    is_peak = (
        (centre >= padded[:, :-2, 1:-1]) & (centre >= padded[:, 2:, 1:-1])
        & (centre >= padded[:, 1:-1, :-2]) & (centre >= padded[:, 1:-1, 2:])
        & (centre > threshold)
    )
    part, ys, xs = (t.cpu().numpy() for t in torch.nonzero(is_peak, as_tuple=True))
    values = heatmaps.float()[is_peak].cpu().numpy()
    out = []
    for k in range(NUM_PARTS):
        sel = part == k
        out.append(np.stack([xs[sel], ys[sel], values[sel]], axis=1).astype(np.float64).reshape(-1, 3))
    return out


def _match_limb(cand_a: np.ndarray, cand_b: np.ndarray, paf_x: np.ndarray, paf_y: np.ndarray,
                image_height: int, paf_threshold: float) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matches ``(index in a, index in b, score)`` of one limb."""
    start = cand_a[:, None, :2]  # [nA, 1, 2]
    vec = cand_b[None, :, :2] - start  # [nA, nB, 2]
    norm = np.maximum(np.linalg.norm(vec, axis=-1), 1e-3)  # [nA, nB]
    unit = vec / norm[..., None]
    steps = np.linspace(0.0, 1.0, _SAMPLES_PER_LIMB)
    points = start[:, :, None, :] + vec[:, :, None, :] * steps[:, None]  # [nA, nB, S, 2]
    px = np.clip(np.rint(points[..., 0]).astype(np.int64), 0, paf_x.shape[1] - 1)
    py = np.clip(np.rint(points[..., 1]).astype(np.int64), 0, paf_x.shape[0] - 1)
    along = paf_x[py, px] * unit[..., None, 0] + paf_y[py, px] * unit[..., None, 1]  # [nA, nB, S]
    score = along.mean(axis=-1) + np.minimum(0.5 * image_height / norm - 1.0, 0.0)
    valid = ((along > paf_threshold).sum(axis=-1) > 0.8 * _SAMPLES_PER_LIMB) & (score > 0)
    order = sorted(zip(*np.nonzero(valid), strict=True), key=lambda ij: -score[ij])
    used_a: set[int] = set()
    used_b: set[int] = set()
    matches = []
    for i, j in order:
        if i in used_a or j in used_b:
            continue
        used_a.add(int(i))
        used_b.add(int(j))
        matches.append((int(i), int(j), float(score[i, j])))
        if len(matches) >= min(len(cand_a), len(cand_b)):
            break
    return matches


def assemble_people(
    peaks: list[np.ndarray], pafs: torch.Tensor, paf_threshold: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Group part candidates into people.

    Args:
        peaks: output of :func:`find_peaks`.
        pafs: ``[38, H, W]`` part affinity fields on the same grid as the heatmaps.
        paf_threshold: minimum field strength along a limb sample.

    Returns:
        ``keypoints`` float32 ``[P, 18, 3]`` (``(x, y, conf)`` in map pixels, conf the
        heatmap peak value clipped to ``[0, 1]``, ``[0, 0, 0]`` where missing) and
        ``scores`` float32 ``[P]`` (mean confidence of the found parts).
    """
    fields = pafs.float().cpu().numpy()
    image_height = fields.shape[1]
    all_peaks = np.concatenate(peaks, axis=0)  # global candidate id = row
    first_id = np.cumsum([0] + [len(p) for p in peaks])
    # Each person: part -> global candidate id (-1 when missing), summed score, part count.
    parts: list[np.ndarray] = []
    totals: list[float] = []
    counts: list[int] = []
    for k, (a, b, fx, fy) in enumerate(LIMBS):
        if len(peaks[a]) == 0 or len(peaks[b]) == 0:
            continue
        for i, j, score in _match_limb(peaks[a], peaks[b], fields[fx], fields[fy], image_height, paf_threshold):
            id_a, id_b = first_id[a] + i, first_id[b] + j
            owners = [n for n, person in enumerate(parts) if person[a] == id_a or person[b] == id_b]
            if len(owners) >= 2 and not np.any((parts[owners[0]] >= 0) & (parts[owners[1]] >= 0)):
                keep, gone = owners[0], owners[1]  # two disjoint halves of one person: merge
                parts[keep] = np.where(parts[gone] >= 0, parts[gone], parts[keep])
                totals[keep] += totals[gone] + score
                counts[keep] += counts[gone]
                del parts[gone], totals[gone], counts[gone]
            elif owners:
                n = owners[0]
                if parts[n][b] != id_b:
                    parts[n][b] = id_b
                    counts[n] += 1
                    totals[n] += all_peaks[id_b, 2] + score
            elif k < _LIMBS_THAT_START_PEOPLE:
                person = np.full(NUM_PARTS, -1, np.int64)
                person[a], person[b] = id_a, id_b
                parts.append(person)
                totals.append(all_peaks[id_a, 2] + all_peaks[id_b, 2] + score)
                counts.append(2)
    kept = [n for n in range(len(parts)) if counts[n] >= _MIN_PARTS and totals[n] / counts[n] >= _MIN_MEAN_SCORE]
    keypoints = np.zeros((len(kept), NUM_PARTS, 3), np.float32)
    for row, n in enumerate(kept):
        found = parts[n] >= 0
        keypoints[row, found] = all_peaks[parts[n][found]]
    keypoints[..., 2] = np.clip(keypoints[..., 2], 0.0, 1.0)
    found = keypoints[..., 2] > 0
    scores = np.where(found.any(axis=1), keypoints[..., 2].sum(axis=1) / np.maximum(found.sum(axis=1), 1), 0.0)
    return keypoints, scores.astype(np.float32)


def decode_people(heatmaps: torch.Tensor, pafs: torch.Tensor, *, peak_threshold: float = 0.1,
                  paf_threshold: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Peaks then grouping: ``heatmaps [18(+1), H, W]``, ``pafs [38, H, W]`` → see :func:`assemble_people`."""
    if heatmaps.shape[-2:] != pafs.shape[-2:] or pafs.shape[0] != 2 * len(LIMBS) or heatmaps.shape[0] < NUM_PARTS:
        raise ValueError(f"decode_people: expected heatmaps [18+, H, W] and pafs [38, H, W] on one grid, "
                         f"got {list(heatmaps.shape)} and {list(pafs.shape)}")
    peaks = find_peaks(heatmaps[:NUM_PARTS], peak_threshold)
    return assemble_people(peaks, pafs, paf_threshold)
