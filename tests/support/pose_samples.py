"""A sample person for the pose reader tests, and its OpenPose-18 form."""
from __future__ import annotations

import numpy as np

from humansd_core.pose.formats_openpose import OPENPOSE18_FROM_COCO17

# A standing person, COCO-17 pixels on 512 x 512.
STAND = np.array([
    [256, 100], [264, 92], [248, 92], [274, 98], [238, 98], [292, 150], [220, 150], [310, 225], [202, 225],
    [318, 295], [194, 295], [278, 290], [234, 290], [282, 380], [230, 380], [284, 465], [228, 465],
], np.float64)


def coco_to_openpose18(xy: np.ndarray, scale: tuple[float, float] = (1.0, 1.0)) -> list[float]:
    """Flat OpenPose-18 list (c = 1) from COCO-17 ``[17, 2]``, coordinates divided by ``scale``."""
    flat: list[float] = []
    for j in OPENPOSE18_FROM_COCO17:
        point = (xy[5] + xy[6]) / 2 if j is None else xy[j]
        flat += [point[0] / scale[0], point[1] / scale[1], 1.0]
    return flat
