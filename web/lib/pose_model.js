// The pose document the editor edits, and every edit as a pure function (document in,
// new document out; the input is never changed).
//
// A document is {frames, single}: `frames` are POSE_KEYPOINT frame dicts in the pack's
// writer layout (canvas_width, canvas_height, people[].pose_keypoints_2d = 54 numbers,
// OpenPose-18 body points in pixels) exactly as the server's /humansd/pose/parse route
// answers for any text pose_json accepts; `single` says the text held one frame dict.
// Every other key of a frame or person (face and hand arrays, ids, ...) is carried
// through untouched, except that moving, scaling, rotating or mirroring a whole person
// moves its numeric *_keypoints_2d arrays along. Joints are addressed in COCO-17 order
// (what HumanSD draws); the OpenPose-18 neck, which HumanSD does not draw, follows the
// shoulders (their midpoint, present when both are).

import { COCO17_NAMES } from "./skeleton.js";
import { affineAbout, applyAffine, bounds } from "./geometry.js";

/** OpenPose-18 index of each COCO-17 joint. */
export const OPENPOSE18_OF_COCO17 = Object.freeze([0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10]);
/** COCO-17 joint that is the left/right mirror of each COCO-17 joint. */
export const COCO17_MIRROR = Object.freeze([0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]);
const NECK = 1;
const LEFT_SHOULDER = 5;
const RIGHT_SHOULDER = 6;
const BODY_LENGTH = 54;
const DEFAULT_CANVAS = 512;

function clone(value) {
  return JSON.parse(JSON.stringify(value));
}

/**
 * A coordinate the editor computed, rounded to 1/100 px (values it did not touch are
 * written back exactly as they were).
 * @param {number} v
 * @returns {number}
 */
export function roundCoordinate(v) {
  return Math.round(v * 100) / 100;
}

/**
 * The document of a /humansd/pose/parse answer.
 * @param {{frames: object[], single: boolean}} answer
 * @returns {{frames: object[], single: boolean}}
 */
export function documentFromAnswer(answer) {
  return { frames: clone(answer.frames), single: Boolean(answer.single) };
}

/**
 * Whether a person has a body array the editor can draw and edit.
 * @param {object} person
 * @returns {boolean}
 */
export function hasBody(person) {
  const body = person?.pose_keypoints_2d;
  return Array.isArray(body) && body.length === BODY_LENGTH;
}

/**
 * The 17 COCO joints [x, y, confidence] of a person, or null without a body.
 * @param {object} person
 * @returns {number[][] | null}
 */
export function personJoints(person) {
  if (!hasBody(person)) return null;
  const body = person.pose_keypoints_2d;
  return OPENPOSE18_OF_COCO17.map((k) => [body[3 * k], body[3 * k + 1], body[3 * k + 2]]);
}

/**
 * The joints of every person of a frame (null entries for people without a body).
 * @param {object} frame
 * @returns {Array<number[][] | null>}
 */
export function frameJoints(frame) {
  return (frame?.people ?? []).map(personJoints);
}

function updateNeck(body) {
  const ls = 3 * OPENPOSE18_OF_COCO17[LEFT_SHOULDER];
  const rs = 3 * OPENPOSE18_OF_COCO17[RIGHT_SHOULDER];
  const n = 3 * NECK;
  if (body[ls + 2] > 0 && body[rs + 2] > 0) {
    body[n] = roundCoordinate((body[ls] + body[rs]) / 2);
    body[n + 1] = roundCoordinate((body[ls + 1] + body[rs + 1]) / 2);
    body[n + 2] = Math.min(body[ls + 2], body[rs + 2]);
  } else {
    body[n] = 0;
    body[n + 1] = 0;
    body[n + 2] = 0;
  }
}

function checkAddress(doc, f, p) {
  const frame = doc.frames[f];
  if (!frame) throw new RangeError(`frame ${f}: the pose has ${doc.frames.length} frames`);
  if (p === undefined) return frame;
  const person = frame.people[p];
  if (!hasBody(person)) throw new RangeError(`frame ${f} person ${p}: no such person with a body`);
  return person;
}

function withPerson(doc, f, p, change) {
  checkAddress(doc, f, p);
  const next = clone(doc);
  change(next.frames[f].people[p], next.frames[f]);
  return next;
}

/**
 * Move one joint to (x, y) in the frame's canvas pixels.
 * @param {{frames: object[]}} doc
 * @param {number} f frame index
 * @param {number} p person index
 * @param {number} j COCO-17 joint index
 * @param {number} x
 * @param {number} y
 * @returns {{frames: object[], single: boolean}}
 */
export function moveJoint(doc, f, p, j, x, y) {
  return withPerson(doc, f, p, (person) => {
    const i = 3 * OPENPOSE18_OF_COCO17[j];
    person.pose_keypoints_2d[i] = roundCoordinate(x);
    person.pose_keypoints_2d[i + 1] = roundCoordinate(y);
    if (j === LEFT_SHOULDER || j === RIGHT_SHOULDER) updateNeck(person.pose_keypoints_2d);
  });
}

/**
 * Hide a joint (confidence 0, its position kept so it can come back where it was).
 * @param {{frames: object[]}} doc
 * @param {number} f
 * @param {number} p
 * @param {number} j COCO-17 joint index
 * @returns {{frames: object[], single: boolean}}
 */
export function hideJoint(doc, f, p, j) {
  return withPerson(doc, f, p, (person) => {
    person.pose_keypoints_2d[3 * OPENPOSE18_OF_COCO17[j] + 2] = 0;
    if (j === LEFT_SHOULDER || j === RIGHT_SHOULDER) updateNeck(person.pose_keypoints_2d);
  });
}

/**
 * Restore a hidden joint (confidence 1.0). A joint that kept no position (0, 0) is put
 * where the default person has it, scaled to this person's visible joints.
 * @param {{frames: object[]}} doc
 * @param {number} f
 * @param {number} p
 * @param {number} j COCO-17 joint index
 * @param {object} defaultPerson the default standing person (a person dict)
 * @returns {{frames: object[], single: boolean}}
 */
export function restoreJoint(doc, f, p, j, defaultPerson) {
  return withPerson(doc, f, p, (person) => {
    const body = person.pose_keypoints_2d;
    const i = 3 * OPENPOSE18_OF_COCO17[j];
    if (body[i] === 0 && body[i + 1] === 0) {
      const [x, y] = defaultJointPosition(personJoints(person), personJoints(defaultPerson), j);
      body[i] = roundCoordinate(x);
      body[i + 1] = roundCoordinate(y);
    }
    body[i + 2] = 1.0;
    if (j === LEFT_SHOULDER || j === RIGHT_SHOULDER) updateNeck(body);
  });
}

function defaultJointPosition(joints, template, j) {
  const seen = joints.map((q, k) => (q[2] > 0 ? k : -1)).filter((k) => k >= 0);
  const target = template[j];
  if (!seen.length) return [target[0], target[1]];
  const from = bounds(seen.map((k) => template[k]));
  const to = bounds(seen.map((k) => joints[k]));
  const fromSize = Math.max(from.width, from.height, 1);
  const scale = Math.max(to.width, to.height, 1) / fromSize;
  return [to.cx + (target[0] - from.cx) * scale, to.cy + (target[1] - from.cy) * scale];
}

/**
 * Add the default standing person to a frame, scaled to the canvas and centred (shifted
 * sideways when people are there already). A document without frames gets one.
 * @param {{frames: object[], single: boolean}} doc
 * @param {number} f frame index
 * @param {{canvas_width: number, canvas_height: number, people: object[]}} defaultFrame the node's default pose frame
 * @returns {{frames: object[], single: boolean}}
 */
export function addPerson(doc, f, defaultFrame) {
  const next = clone(doc);
  if (!next.frames.length) {
    next.frames.push({ canvas_width: defaultFrame.canvas_width ?? DEFAULT_CANVAS,
                       canvas_height: defaultFrame.canvas_height ?? DEFAULT_CANVAS, people: [] });
    f = 0;
  }
  const frame = next.frames[f];
  if (!frame) throw new RangeError(`frame ${f}: the pose has ${doc.frames.length} frames`);
  const template = defaultFrame.people.find(hasBody);
  const scale = Math.min(frame.canvas_width / defaultFrame.canvas_width, frame.canvas_height / defaultFrame.canvas_height);
  const count = frame.people.filter(hasBody).length;
  const shift = count ? ((count % 2 ? 1 : -1) * Math.ceil(count / 2) * frame.canvas_width) / 5 : 0;
  const dx = (frame.canvas_width - defaultFrame.canvas_width * scale) / 2 + shift;
  const dy = (frame.canvas_height - defaultFrame.canvas_height * scale) / 2;
  const person = clone(template);
  transformArrays(person, [scale, 0, 0, scale, dx, dy]);
  frame.people.push(person);
  return next;
}

/**
 * Remove a person from a frame.
 * @param {{frames: object[]}} doc
 * @param {number} f
 * @param {number} p
 * @returns {{frames: object[], single: boolean}}
 */
export function deletePerson(doc, f, p) {
  checkAddress(doc, f, p);
  const next = clone(doc);
  next.frames[f].people.splice(p, 1);
  return next;
}

function transformArrays(person, matrix) {
  for (const [key, values] of Object.entries(person)) {
    if (!key.endsWith("_keypoints_2d") || !Array.isArray(values) || values.length % 3) continue;
    if (!values.every((v) => typeof v === "number" && Number.isFinite(v))) continue;
    for (let i = 0; i < values.length; i += 3) {
      if (values[i + 2] <= 0 && values[i] === 0 && values[i + 1] === 0) continue; // no position
      const [x, y] = applyAffine(matrix, values[i], values[i + 1]);
      values[i] = roundCoordinate(x);
      values[i + 1] = roundCoordinate(y);
    }
  }
}

/**
 * The centre of a person's present joints (the pivot of scale, rotate and mirror).
 * @param {object} person
 * @returns {{cx: number, cy: number, x0: number, y0: number, x1: number, y1: number, width: number, height: number} | null}
 */
export function personBounds(person) {
  const joints = personJoints(person);
  const present = (joints ?? []).filter((q) => q[2] > 0);
  return present.length ? bounds(present) : null;
}

/**
 * Move, scale and rotate a whole person about the centre of its present joints (body,
 * face and hands alike).
 * @param {{frames: object[]}} doc
 * @param {number} f
 * @param {number} p
 * @param {{dx?: number, dy?: number, scale?: number, angle?: number}} change angle in radians, clockwise on screen
 * @returns {{frames: object[], single: boolean}}
 */
export function transformPerson(doc, f, p, { dx = 0, dy = 0, scale = 1, angle = 0 }) {
  return withPerson(doc, f, p, (person) => {
    const box = personBounds(person);
    if (!box) return;
    transformArrays(person, affineAbout(box.cx, box.cy, { dx, dy, scale, angle }));
  });
}

/**
 * Mirror a person left-right about the centre of its present joints, with left and
 * right labels swapped (a left wrist becomes the right wrist); hands swap too.
 * @param {{frames: object[]}} doc
 * @param {number} f
 * @param {number} p
 * @returns {{frames: object[], single: boolean}}
 */
export function mirrorPerson(doc, f, p) {
  return withPerson(doc, f, p, (person) => {
    const box = personBounds(person);
    if (!box) return;
    transformArrays(person, [-1, 0, 0, 1, 2 * box.cx, 0]);
    const body = person.pose_keypoints_2d.slice();
    COCO17_MIRROR.forEach((m, j) => {
      const to = 3 * OPENPOSE18_OF_COCO17[j];
      const from = 3 * OPENPOSE18_OF_COCO17[m];
      person.pose_keypoints_2d.splice(to, 3, body[from], body[from + 1], body[from + 2]);
    });
    if ("hand_left_keypoints_2d" in person || "hand_right_keypoints_2d" in person) {
      [person.hand_left_keypoints_2d, person.hand_right_keypoints_2d] =
        [person.hand_right_keypoints_2d ?? null, person.hand_left_keypoints_2d ?? null];
    }
  });
}

/**
 * Insert a copy of frame f right after it.
 * @param {{frames: object[]}} doc
 * @param {number} f
 * @returns {{frames: object[], single: boolean}}
 */
export function duplicateFrame(doc, f) {
  const frame = checkAddress(doc, f);
  const next = clone(doc);
  next.frames.splice(f + 1, 0, clone(frame));
  next.single = false;
  return next;
}

/**
 * Remove frame f (the last frame cannot go: a pose needs one).
 * @param {{frames: object[]}} doc
 * @param {number} f
 * @returns {{frames: object[], single: boolean}}
 */
export function deleteFrame(doc, f) {
  checkAddress(doc, f);
  if (doc.frames.length <= 1) throw new RangeError("the last frame cannot be deleted");
  const next = clone(doc);
  next.frames.splice(f, 1);
  return next;
}

/**
 * Set every frame's canvas size; joints keep their pixel positions.
 * @param {{frames: object[]}} doc
 * @param {number} width whole pixels > 0
 * @param {number} height whole pixels > 0
 * @returns {{frames: object[], single: boolean}}
 */
export function setCanvasSize(doc, width, height) {
  for (const [name, v] of [["width", width], ["height", height]]) {
    if (!Number.isInteger(v) || v <= 0 || v > 16384) throw new RangeError(`canvas ${name}: expected a whole number of pixels in 1..16384, got ${v}`);
  }
  const next = clone(doc);
  for (const frame of next.frames) {
    frame.canvas_width = width;
    frame.canvas_height = height;
  }
  return next;
}

/**
 * Replace frame f with the given frames (pasted ones), or every frame when f is null.
 * @param {{frames: object[], single: boolean}} doc
 * @param {number | null} f
 * @param {object[]} frames frames in the writer layout (from the server)
 * @returns {{frames: object[], single: boolean}}
 */
export function replaceFrames(doc, f, frames) {
  if (!frames.length) throw new RangeError("the pasted pose has no frames");
  if (f === null) return { frames: clone(frames), single: frames.length === 1 && doc.single };
  checkAddress(doc, f);
  const next = clone(doc);
  next.frames.splice(f, 1, ...clone(frames));
  next.single = next.single && next.frames.length === 1;
  return next;
}

/**
 * JSON with a space after every comma and colon, on one line.
 * @param {*} value
 * @returns {string}
 */
export function spacedJSON(value) {
  if (Array.isArray(value)) return `[${value.map(spacedJSON).join(", ")}]`;
  if (value && typeof value === "object") {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${spacedJSON(v)}`).join(", ")}}`;
  }
  return JSON.stringify(value ?? null);
}

/**
 * The document as pose_json text: a frame dict when it held one, else a list; one
 * person a line.
 * @param {{frames: object[], single: boolean}} doc
 * @returns {string}
 */
export function documentText(doc) {
  const frameText = (frame) => {
    const head = { canvas_width: frame.canvas_width, canvas_height: frame.canvas_height };
    for (const [key, value] of Object.entries(frame)) if (!(key in head) && key !== "people") head[key] = value;
    const people = (frame.people ?? []).map((person) => "  " + spacedJSON(person)).join(",\n");
    return `${spacedJSON(head).slice(0, -1)}, "people": [${people ? "\n" + people + "\n" : ""}]}`;
  };
  if (doc.single && doc.frames.length === 1) return frameText(doc.frames[0]);
  return "[\n" + doc.frames.map(frameText).join(",\n") + "\n]";
}

/**
 * A readable name of a COCO-17 joint.
 * @param {number} j
 * @returns {string}
 */
export function jointLabel(j) {
  return COCO17_NAMES[j].replace("_", " ");
}
