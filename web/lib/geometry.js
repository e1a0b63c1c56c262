// Plane geometry of the editor: fitting a canvas into a box, the node's placement of a
// pose canvas onto its output size (the same arithmetic as
// humansd_core.pose.transforms.place_on_canvas), 2-D affine maps and bounding boxes.
//
// An affine map is [a, b, c, d, e, f]: x' = a x + c y + e, y' = b x + d y + f.

/**
 * Fit a w x h rectangle into a box, aspect kept, centred.
 * @param {number} w
 * @param {number} h
 * @param {number} boxWidth
 * @param {number} boxHeight
 * @param {number} [margin=0] space kept free on every side
 * @returns {{scale: number, x: number, y: number}} box coordinate = x + scale * u (same for y)
 */
export function fitRect(w, h, boxWidth, boxHeight, margin = 0) {
  const scale = Math.max(1e-6, Math.min((boxWidth - 2 * margin) / w, (boxHeight - 2 * margin) / h));
  return { scale, x: (boxWidth - w * scale) / 2, y: (boxHeight - h * scale) / 2 };
}

/**
 * Where the node puts a pose canvas on its output canvas: "fit" (letterbox, centred),
 * "fill" (cover, centred) or "as-is" (pixels kept).
 * @param {number} srcWidth pose canvas width
 * @param {number} srcHeight pose canvas height
 * @param {number} dstWidth output width
 * @param {number} dstHeight output height
 * @param {string} mode "fit" | "fill" | "as-is"
 * @returns {{scale: number, dx: number, dy: number}} output = pose * scale + d
 */
export function placement(srcWidth, srcHeight, dstWidth, dstHeight, mode) {
  if (mode !== "fit" && mode !== "fill") return { scale: 1, dx: 0, dy: 0 };
  const sx = dstWidth / srcWidth;
  const sy = dstHeight / srcHeight;
  const scale = mode === "fit" ? Math.min(sx, sy) : Math.max(sx, sy);
  return { scale, dx: (dstWidth - srcWidth * scale) / 2.0, dy: (dstHeight - srcHeight * scale) / 2.0 };
}

/**
 * Apply a placement to a point; points without confidence keep their coordinates, as on the server.
 * @param {{scale: number, dx: number, dy: number}} place
 * @param {number[]} joint [x, y, confidence]
 * @returns {number[]}
 */
export function placeJoint(place, [x, y, c]) {
  if (!(c > 0)) return [x, y, c];
  // float32 in between, as the server's PoseSet stores its keypoints
  return [Math.fround(Math.fround(x) * place.scale + place.dx), Math.fround(Math.fround(y) * place.scale + place.dy), c];
}

/**
 * The pose-canvas point an output-canvas point comes from.
 * @param {{scale: number, dx: number, dy: number}} place
 * @param {number} x
 * @param {number} y
 * @returns {number[]}
 */
export function unplace(place, x, y) {
  return [(x - place.dx) / place.scale, (y - place.dy) / place.scale];
}

/**
 * x' = m(x): apply an affine map.
 * @param {number[]} m [a, b, c, d, e, f]
 * @param {number} x
 * @param {number} y
 * @returns {number[]}
 */
export function applyAffine(m, x, y) {
  return [m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]];
}

/**
 * Scale by `scale` and rotate by `angle` (radians, clockwise on screen, y pointing down)
 * about (cx, cy), then shift by (dx, dy).
 * @param {number} cx
 * @param {number} cy
 * @param {{dx?: number, dy?: number, scale?: number, angle?: number}} change
 * @returns {number[]} the affine map
 */
export function affineAbout(cx, cy, { dx = 0, dy = 0, scale = 1, angle = 0 }) {
  const cos = Math.cos(angle) * scale;
  const sin = Math.sin(angle) * scale;
  return [cos, sin, -sin, cos, cx - cos * cx + sin * cy + dx, cy - sin * cx - cos * cy + dy];
}

/**
 * Bounding box of points [x, y, ...].
 * @param {number[][]} points at least one
 * @returns {{x0: number, y0: number, x1: number, y1: number, width: number, height: number, cx: number, cy: number}}
 */
export function bounds(points) {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const [x, y] of points) {
    x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
  }
  return { x0, y0, x1, y1, width: x1 - x0, height: y1 - y0, cx: (x0 + x1) / 2, cy: (y0 + y1) / 2 };
}
