// The HumanSD skeleton image, drawn in the page as the server draws it
// (humansd_core/pose/render.py; DESIGN.md §1 "Skeleton image"): 16 COCO-17 limbs in a
// fixed order, limb i in colour i of a 16-hue HLS palette, each limb whose two joints
// have confidence > threshold drawn as a line of `thickness` px with round ends, then
// filled circles of radius thickness // 2 at both ends; people in order, later strokes
// over earlier ones; coordinates truncated like Python's int() of a float32.
//
// Lines are filled the way OpenCV's output looks (a 4-corner polygon half the thickness
// each side, half a pixel more for odd thicknesses, rows scanned at pixel centres, its
// outline included, ends rounded off at (thickness + 1) // 2), not bit for bit: some edge
// pixels of a limb differ (about 2 % of the stroke pixels at thickness 10, measured by the
// browser tests). The image the model sees is always the server's; this one is for the eye.

/** COCO-17 joint names, in COCO order. */
export const COCO17_NAMES = Object.freeze([
  "nose", "left_eye", "right_eye", "left_ear", "right_ear",
  "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
  "left_wrist", "right_wrist", "left_hip", "right_hip",
  "left_knee", "right_knee", "left_ankle", "right_ankle",
]);

/** The 16 limbs as COCO-17 joint pairs [a, b], in draw order; limb i has colour i. */
export const LIMBS = Object.freeze([
  [0, 1], [0, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7], [6, 8],
  [7, 9], [8, 10], [5, 11], [6, 12], [11, 13], [12, 14], [13, 15], [14, 16],
].map(Object.freeze));

const ONE_THIRD = 1.0 / 3.0;
const ONE_SIXTH = 1.0 / 6.0;
const TWO_THIRD = 2.0 / 3.0;

function hueChannel(m1, m2, hue) {
  hue = ((hue % 1.0) + 1.0) % 1.0;
  if (hue < ONE_SIXTH) return m1 + (m2 - m1) * hue * 6.0;
  if (hue < 0.5) return m2;
  if (hue < TWO_THIRD) return m1 + (m2 - m1) * (TWO_THIRD - hue) * 6.0;
  return m1;
}

/**
 * HLS to RGB, each channel in [0, 1] (the same arithmetic as Python's colorsys).
 * @param {number} h hue in [0, 1)
 * @param {number} l lightness
 * @param {number} s saturation
 * @returns {number[]} [r, g, b]
 */
export function hlsToRgb(h, l, s) {
  if (s === 0.0) return [l, l, l];
  const m2 = l <= 0.5 ? l * (1.0 + s) : l + s - l * s;
  const m1 = 2.0 * l - m2;
  return [hueChannel(m1, m2, h + ONE_THIRD), hueChannel(m1, m2, h), hueChannel(m1, m2, h - ONE_THIRD)];
}

/** The 16 limb colours, [r, g, b] bytes: hue (i/16 + 0.01) mod 1, lightness 0.6, saturation 0.65. */
export const PALETTE = Object.freeze(LIMBS.map((_, i) =>
  Object.freeze(hlsToRgb((i / LIMBS.length + 0.01) % 1.0, 0.6, 0.65).map((c) => Math.trunc(255 * c)))));

/**
 * Line thickness scaled with the shorter image side, as the node's scale_thickness does.
 * @param {number} width image width
 * @param {number} height image height
 * @param {number} base thickness at baseSize
 * @param {number} [baseSize=512]
 * @returns {number} at least 1
 */
export function scaledThickness(width, height, base, baseSize = 512) {
  return Math.max(1, Math.trunc(base * Math.min(width, height) / baseSize + 0.5));
}

/**
 * The pixel a coordinate falls on: Python's int() of the float32 the server stores.
 * @param {number} v coordinate in pixels
 * @returns {number}
 */
export function pixelOf(v) {
  return Math.trunc(Math.fround(v));
}

function setPixel(image, x, y, rgb) {
  const i = (y * image.width + x) * 4;
  image.data[i] = rgb[0];
  image.data[i + 1] = rgb[1];
  image.data[i + 2] = rgb[2];
  image.data[i + 3] = 255;
}

function fillSpan(image, y, x0, x1, rgb) {
  if (y < 0 || y >= image.height) return;
  const a = Math.max(0, x0);
  const b = Math.min(image.width - 1, x1);
  for (let x = a; x <= b; x++) setPixel(image, x, y, rgb);
}

function fillDisc(image, cx, cy, radius, rgb) {
  for (let dy = -radius; dy <= radius; dy++) {
    const half = Math.floor(Math.sqrt(radius * radius - dy * dy));
    fillSpan(image, cy + dy, cx - half, cx + half, rgb);
  }
}

function fillConvex(image, corners, rgb) {
  const ys = corners.map((p) => p[1]);
  const top = Math.max(0, Math.floor(Math.min(...ys) + 0.5));
  const bottom = Math.min(image.height - 1, Math.floor(Math.max(...ys) + 0.5));
  for (let y = top; y <= bottom; y++) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < corners.length; i++) {
      const [xa, ya] = corners[i];
      const [xb, yb] = corners[(i + 1) % corners.length];
      if (ya === yb || y < Math.min(ya, yb) || y > Math.max(ya, yb)) continue;
      const x = xa + ((y - ya) * (xb - xa)) / (yb - ya);
      lo = Math.min(lo, x);
      hi = Math.max(hi, x);
    }
    if (lo <= hi) fillSpan(image, y, Math.floor(lo + 0.5), Math.floor(hi + 0.5), rgb);
  }
}

function thinLine(image, [x0, y0], [x1, y1], rgb) {
  const dx = Math.abs(x1 - x0);
  const dy = Math.abs(y1 - y0);
  const sx = x0 < x1 ? 1 : -1;
  const sy = y0 < y1 ? 1 : -1;
  let err = dx - dy;
  for (;;) {
    if (x0 >= 0 && y0 >= 0 && x0 < image.width && y0 < image.height) setPixel(image, x0, y0, rgb);
    if (x0 === x1 && y0 === y1) return;
    const e2 = 2 * err;
    if (e2 > -dy) { err -= dy; x0 += sx; }
    if (e2 < dx) { err += dx; y0 += sy; }
  }
}

function drawLimb(image, a, b, rgb, thickness) {
  if (thickness <= 1) {
    thinLine(image, a, b, rgb);
  } else {
    const dx = b[0] - a[0];
    const dy = b[1] - a[1];
    const length = Math.hypot(dx, dy);
    if (length > 0) {
      const half = thickness / 2 + (thickness & 1) * 0.5; // odd widths come out one pixel wider
      const nx = (-dy / length) * half;
      const ny = (dx / length) * half;
      const corners = [[a[0] + nx, a[1] + ny], [b[0] + nx, b[1] + ny], [b[0] - nx, b[1] - ny], [a[0] - nx, a[1] - ny]];
      fillConvex(image, corners, rgb);
      const rounded = corners.map(([x, y]) => [Math.floor(x + 0.5), Math.floor(y + 0.5)]);
      rounded.forEach((p, i) => thinLine(image, p, rounded[(i + 1) % 4], rgb)); // the outline is part of the fill
    }
    const cap = (thickness + 1) >> 1;
    fillDisc(image, a[0], a[1], cap, rgb);
    fillDisc(image, b[0], b[1], cap, rgb);
  }
  const radius = thickness >> 1;
  fillDisc(image, a[0], a[1], radius, rgb);
  fillDisc(image, b[0], b[1], radius, rgb);
}

/**
 * Draw people onto an RGBA image (an ImageData or {data, width, height}); untouched
 * pixels keep their value (transparent when the image is new).
 * @param {{data: Uint8ClampedArray, width: number, height: number}} image
 * @param {Array<Array<number[]>>} people each person 17 COCO joints [x, y, confidence] in image pixels
 * @param {{threshold: number, thickness: number}} options
 */
export function renderSkeleton(image, people, { threshold, thickness }) {
  for (const joints of people) {
    const visible = joints.map((j) => Math.fround(j[2]) > threshold);
    const points = joints.map((j) => [pixelOf(j[0]), pixelOf(j[1])]);
    LIMBS.forEach(([a, b], limb) => {
      if (visible[a] && visible[b]) drawLimb(image, points[a], points[b], PALETTE[limb], thickness);
    });
  }
}
