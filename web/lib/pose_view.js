// One interactive picture of a pose frame: the output canvas fitted into a <canvas>
// element (aspect kept, centred), an optional reference image, the HumanSD skeleton as
// the node draws it, and a handle on every joint. It turns pointer gestures into
// callbacks in pose-canvas pixels and never changes the pose itself: its owner does.
//
// Coordinates: pose (the frame's canvas pixels) --placement--> output (the node's
// output canvas) --view--> local (CSS pixels of the <canvas> box, untransformed) -->
// client (the page, after the frontend's CSS zoom of DOM widgets).

import { fitRect, placeJoint, unplace } from "./geometry.js";
import { personBounds, personJoints } from "./pose_model.js";
import { renderSkeleton } from "./skeleton.js";

const MAX_BITMAP_PIXELS = 4 * 1024 * 1024;
const HIT_RADIUS = 9;
const ROTATE_ARM = 28;

/**
 * @typedef {object} Scene
 * @property {object | null} frame the frame dict being shown
 * @property {{width: number, height: number}} output the node's output canvas
 * @property {{scale: number, dx: number, dy: number}} place pose canvas -> output
 * @property {number} threshold limbs drawn when both joints' confidence is above it
 * @property {number} thickness line thickness in output pixels
 * @property {HTMLImageElement | null} reference shown under the skeleton, fitted to the output canvas
 * @property {number} referenceOpacity 0..1
 */

/** A pose picture with joint handles. */
export class PoseView {
  /**
   * @param {object} options
   * @param {boolean} [options.zoomable=false] wheel zooms, dragging empty space pans (the panel)
   * @param {boolean} [options.personTools=false] box, scale and rotate handles on the selected person
   * @param {boolean} [options.showHidden=false] mark hidden joints that kept a position
   * @param {number} [options.margin=0] free space around the canvas at zoom 1, CSS px
   * @param {(gesture: object) => void} [options.onGesture] joint/person drags: {kind, phase, person, joint?, x?, y?, dx?, dy?, scale?, angle?}
   * @param {(selection: {person: number | null, joint: number | null}) => void} [options.onSelect]
   * @param {(event: WheelEvent) => void} [options.onWheel] wheel when not zoomable
   */
  constructor(options = {}) {
    this.options = options;
    this.element = document.createElement("div");
    this.element.className = "humansd-pose-view";
    this.canvas = document.createElement("canvas");
    this.element.append(this.canvas);
    this.scene = null;
    this.selection = { person: null, joint: null };
    this.view = null;
    this.userView = false;
    this.gesture = null;
    this.frameRequest = 0;
    this.bitmap = document.createElement("canvas");
    this.resizeObserver = new ResizeObserver(() => this.requestDraw());
    this.resizeObserver.observe(this.element);
    this.listen();
  }

  /** Stop observing and listening. */
  destroy() {
    this.resizeObserver.disconnect();
    cancelAnimationFrame(this.frameRequest);
  }

  /**
   * Show a scene (redrawn on the next animation frame); null shows nothing.
   * @param {Scene | null} scene
   */
  setScene(scene) {
    const sizeChanged = !scene || !this.scene || this.scene.output.width !== scene.output.width || this.scene.output.height !== scene.output.height;
    this.scene = scene ?? null;
    if (sizeChanged) this.userView = false;
    this.requestDraw();
  }

  /**
   * Select a person and joint (null for none).
   * @param {{person: number | null, joint: number | null}} selection
   */
  setSelection(selection) {
    this.selection = { person: selection.person ?? null, joint: selection.joint ?? null };
    this.requestDraw();
  }

  /** Fit the whole output canvas again (undo zoom and pan). */
  fit() {
    this.userView = false;
    this.requestDraw();
  }

  /**
   * Zoom by a factor about a local point (the centre by default).
   * @param {number} factor
   * @param {number[]} [about]
   */
  zoom(factor, about) {
    const view = this.currentView();
    const [w, h] = this.layoutSize();
    const [ax, ay] = about ?? [w / 2, h / 2];
    const scale = Math.min(64, Math.max(0.02, view.scale * factor));
    const f = scale / view.scale;
    this.view = { scale, x: ax - (ax - view.x) * f, y: ay - (ay - view.y) * f };
    this.userView = true;
    this.requestDraw();
  }

  /** @returns {number} the current view scale relative to the fitted one */
  zoomLevel() {
    const fitted = this.fittedView();
    return fitted ? this.currentView().scale / fitted.scale : 1;
  }

  /** Redraw on the next animation frame. */
  requestDraw() {
    if (this.frameRequest) return;
    this.frameRequest = requestAnimationFrame(() => {
      this.frameRequest = 0;
      this.draw();
    });
  }

  fittedView() {
    if (!this.scene) return null;
    const { width, height } = this.scene.output;
    const [w, h] = this.layoutSize();
    return fitRect(width, height, w || 1, h || 1, this.options.margin ?? 0);
  }

  currentView() {
    if (!this.userView || !this.view) this.view = this.fittedView() ?? { scale: 1, x: 0, y: 0 };
    return this.view;
  }

  /**
   * Local CSS point of a pose-canvas point.
   * @param {number} x
   * @param {number} y
   * @returns {number[]}
   */
  poseToLocal(x, y) {
    const view = this.currentView();
    const { place } = this.scene;
    return [view.x + (x * place.scale + place.dx) * view.scale, view.y + (y * place.scale + place.dy) * view.scale];
  }

  /**
   * Pose-canvas point of a local CSS point.
   * @param {number} lx
   * @param {number} ly
   * @returns {number[]}
   */
  localToPose(lx, ly) {
    const view = this.currentView();
    return unplace(this.scene.place, (lx - view.x) / view.scale, (ly - view.y) / view.scale);
  }

  /** Pose pixels per local CSS pixel. */
  posePerLocal() {
    return 1 / (this.currentView().scale * this.scene.place.scale);
  }

  /**
   * The canvas box in CSS pixels as laid out, fractions kept and before the frontend's
   * CSS zoom of DOM widgets (clientWidth rounds, getBoundingClientRect zooms).
   * @returns {number[]} [width, height]
   */
  layoutSize() {
    const style = getComputedStyle(this.canvas);
    return [parseFloat(style.width) || 0, parseFloat(style.height) || 0];
  }

  clientToLocal(event) {
    const rect = this.canvas.getBoundingClientRect();
    const [w, h] = this.layoutSize();
    const sx = rect.width ? w / rect.width : 1;
    const sy = rect.height ? h / rect.height : 1;
    return [(event.clientX - rect.left) * sx, (event.clientY - rect.top) * sy];
  }

  people() {
    return (this.scene?.frame?.people ?? []).map(personJoints);
  }

  // -- drawing ------------------------------------------------------------------------
  draw() {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const [width, height] = this.layoutSize();
    if (!width || !height) return;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(canvas.width / width, 0, 0, canvas.height / height, 0, 0);
    ctx.fillStyle = "#2b2b2b";
    ctx.fillRect(0, 0, width, height);
    if (!this.scene) return;
    const view = this.currentView();
    const { output } = this.scene;
    const box = [view.x, view.y, output.width * view.scale, output.height * view.scale];
    ctx.fillStyle = "#000";
    ctx.fillRect(...box);
    this.drawReference(ctx, box);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.renderBitmap(), ...box);
    ctx.strokeStyle = "#777";
    ctx.lineWidth = 1;
    ctx.strokeRect(box[0] - 0.5, box[1] - 0.5, box[2] + 1, box[3] + 1);
    this.drawPersonTools(ctx);
    this.drawHandles(ctx);
  }

  drawReference(ctx, box) {
    const { reference, referenceOpacity } = this.scene;
    if (!reference?.naturalWidth) return;
    const fit = fitRect(reference.naturalWidth, reference.naturalHeight, box[2], box[3]);
    ctx.save();
    ctx.globalAlpha = referenceOpacity ?? 0.5;
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(reference, box[0] + fit.x, box[1] + fit.y, reference.naturalWidth * fit.scale, reference.naturalHeight * fit.scale);
    ctx.restore();
  }

  /** The skeleton at the output size (smaller for huge canvases), transparent elsewhere. */
  renderBitmap() {
    const { output, place, threshold, thickness } = this.scene;
    const shrink = Math.min(1, Math.sqrt(MAX_BITMAP_PIXELS / (output.width * output.height)));
    const w = Math.max(1, Math.round(output.width * shrink));
    const h = Math.max(1, Math.round(output.height * shrink));
    if (this.bitmap.width !== w || this.bitmap.height !== h) {
      this.bitmap.width = w;
      this.bitmap.height = h;
    }
    const ctx = this.bitmap.getContext("2d");
    const image = ctx.createImageData(w, h);
    const people = this.people().filter(Boolean).map((joints) => joints.map((q) => {
      const [x, y, c] = placeJoint(place, q);
      return shrink === 1 ? [x, y, c] : [x * shrink, y * shrink, c];
    }));
    renderSkeleton(image, people, { threshold, thickness: Math.max(1, Math.round(thickness * shrink)) });
    ctx.putImageData(image, 0, 0);
    return this.bitmap;
  }

  drawHandles(ctx) {
    const { threshold } = this.scene;
    const big = this.options.personTools;
    this.people().forEach((joints, p) => {
      if (!joints) return;
      joints.forEach(([x, y, c], j) => {
        const [lx, ly] = this.poseToLocal(x, y);
        const selected = this.selection.person === p && this.selection.joint === j;
        if (!(c > 0)) {
          if (!this.options.showHidden || (x === 0 && y === 0)) return;
          ctx.strokeStyle = selected ? "#ffd400" : "#9a9a9a";
          ctx.lineWidth = 1.5;
          ctx.beginPath();
          ctx.moveTo(lx - 4, ly - 4); ctx.lineTo(lx + 4, ly + 4);
          ctx.moveTo(lx + 4, ly - 4); ctx.lineTo(lx - 4, ly + 4);
          ctx.stroke();
          return;
        }
        ctx.beginPath();
        ctx.arc(lx, ly, selected ? 6 : big ? 4.5 : 3.5, 0, 2 * Math.PI);
        ctx.fillStyle = c > threshold ? "#fff" : "#777";
        ctx.fill();
        ctx.lineWidth = selected ? 2.5 : 1.25;
        ctx.strokeStyle = selected ? "#ffd400" : "#111";
        ctx.stroke();
      });
    });
  }

  personFrame(p) {
    const person = this.scene?.frame?.people?.[p];
    const box = person && personBounds(person);
    if (!box) return null;
    const [x0, y0] = this.poseToLocal(box.x0, box.y0);
    const [x1, y1] = this.poseToLocal(box.x1, box.y1);
    const pad = 10;
    const rect = { x0: x0 - pad, y0: y0 - pad, x1: x1 + pad, y1: y1 + pad };
    return { rect, centre: this.poseToLocal(box.cx, box.cy), scaleHandle: [rect.x1, rect.y1],
             rotateHandle: [(rect.x0 + rect.x1) / 2, rect.y0 - ROTATE_ARM] };
  }

  drawPersonTools(ctx) {
    if (!this.options.personTools || this.selection.person === null) return;
    const frame = this.personFrame(this.selection.person);
    if (!frame) return;
    const { rect, scaleHandle, rotateHandle } = frame;
    ctx.save();
    ctx.strokeStyle = "#ffd400";
    ctx.lineWidth = 1;
    ctx.setLineDash([5, 4]);
    ctx.strokeRect(rect.x0, rect.y0, rect.x1 - rect.x0, rect.y1 - rect.y0);
    ctx.setLineDash([]);
    ctx.beginPath();
    ctx.moveTo((rect.x0 + rect.x1) / 2, rect.y0);
    ctx.lineTo(...rotateHandle);
    ctx.stroke();
    ctx.fillStyle = "#ffd400";
    ctx.beginPath();
    ctx.arc(...rotateHandle, 6, 0, 2 * Math.PI);
    ctx.fill();
    ctx.fillRect(scaleHandle[0] - 5, scaleHandle[1] - 5, 10, 10);
    ctx.restore();
  }

  // -- pointer gestures -------------------------------------------------------------------
  /**
   * What is under a local point: a joint, a person tool, or nothing.
   * @param {number} lx
   * @param {number} ly
   * @returns {{kind: string, person?: number, joint?: number}}
   */
  hitTest(lx, ly) {
    if (!this.scene) return { kind: "none" };
    const near = (x, y, r = HIT_RADIUS) => Math.hypot(x - lx, y - ly) <= r;
    if (this.options.personTools && this.selection.person !== null) {
      const frame = this.personFrame(this.selection.person);
      if (frame && near(...frame.rotateHandle)) return { kind: "rotate", person: this.selection.person };
      if (frame && near(...frame.scaleHandle)) return { kind: "scale", person: this.selection.person };
    }
    let best = null;
    this.people().forEach((joints, p) => {
      joints?.forEach(([x, y, c], j) => {
        if (!(c > 0) && !(this.options.showHidden && (x !== 0 || y !== 0))) return;
        const [hx, hy] = this.poseToLocal(x, y);
        const d = Math.hypot(hx - lx, hy - ly);
        if (d <= HIT_RADIUS && (!best || d < best.d)) best = { d, person: p, joint: j, present: c > 0 };
      });
    });
    if (best) return { kind: best.present ? "joint" : "hidden", person: best.person, joint: best.joint };
    if (this.options.personTools && this.selection.person !== null) {
      const frame = this.personFrame(this.selection.person);
      const r = frame?.rect;
      if (r && lx >= r.x0 && lx <= r.x1 && ly >= r.y0 && ly <= r.y1) return { kind: "move", person: this.selection.person };
    }
    return { kind: "none" };
  }

  listen() {
    const canvas = this.canvas;
    canvas.addEventListener("pointerdown", (event) => this.pointerDown(event));
    canvas.addEventListener("pointermove", (event) => this.pointerMove(event));
    canvas.addEventListener("pointerup", (event) => this.pointerUp(event, false));
    canvas.addEventListener("pointercancel", (event) => this.pointerUp(event, true));
    canvas.addEventListener("lostpointercapture", (event) => this.pointerUp(event, true));
    canvas.addEventListener("wheel", (event) => {
      if (this.options.zoomable) {
        event.preventDefault();
        event.stopPropagation();
        this.zoom(Math.exp(-event.deltaY / 400), this.clientToLocal(event));
      } else {
        this.options.onWheel?.(event);
      }
    }, { passive: false });
  }

  emit(gesture) {
    this.options.onGesture?.(gesture);
  }

  pointerDown(event) {
    if (event.button !== 0 || this.gesture || !this.scene) return;
    const [lx, ly] = this.clientToLocal(event);
    const hit = this.hitTest(lx, ly);
    if (hit.kind === "none" && !this.options.zoomable) return;
    event.preventDefault();
    event.stopPropagation();
    this.canvas.setPointerCapture?.(event.pointerId);
    const [px, py] = this.localToPose(lx, ly);
    this.gesture = { ...hit, pointerId: event.pointerId, startLocal: [lx, ly], startPose: [px, py], moved: false };
    if (hit.kind === "none") {
      this.gesture.kind = "pan";
      this.gesture.startView = { ...this.currentView() };
      if (this.options.personTools) this.options.onSelect?.({ person: null, joint: null });
      return;
    }
    if (hit.kind === "joint" || hit.kind === "hidden") {
      this.options.onSelect?.({ person: hit.person, joint: hit.joint });
      if (hit.kind === "hidden") {
        this.gesture = null;
        return;
      }
      const [jx, jy] = this.people()[hit.person][hit.joint];
      this.gesture.jointStart = [jx, jy];
      this.emit({ kind: "joint", phase: "start", person: hit.person, joint: hit.joint, x: jx, y: jy });
      return;
    }
    const frame = this.personFrame(hit.person);
    this.gesture.centreLocal = frame.centre;
    this.emit({ kind: hit.kind, phase: "start", person: hit.person, dx: 0, dy: 0, scale: 1, angle: 0 });
  }

  pointerMove(event) {
    const g = this.gesture;
    if (!g || event.pointerId !== g.pointerId) {
      if (!g && this.scene) this.canvas.style.cursor = this.cursorFor(this.hitTest(...this.clientToLocal(event)).kind);
      return;
    }
    event.preventDefault();
    event.stopPropagation();
    const [lx, ly] = this.clientToLocal(event);
    g.moved = true;
    if (g.kind === "pan") {
      this.view = { ...g.startView, x: g.startView.x + lx - g.startLocal[0], y: g.startView.y + ly - g.startLocal[1] };
      this.userView = true;
      this.requestDraw();
      return;
    }
    this.emit(this.gestureUpdate(g, lx, ly, "move"));
  }

  gestureUpdate(g, lx, ly, phase) {
    const k = this.posePerLocal();
    const dx = (lx - g.startLocal[0]) * k;
    const dy = (ly - g.startLocal[1]) * k;
    if (g.kind === "joint") {
      return { kind: "joint", phase, person: g.person, joint: g.joint, x: g.jointStart[0] + dx, y: g.jointStart[1] + dy };
    }
    const [cx, cy] = g.centreLocal;
    const [sx, sy] = g.startLocal;
    if (g.kind === "scale") {
      const scale = Math.max(0.05, Math.hypot(lx - cx, ly - cy) / Math.max(1, Math.hypot(sx - cx, sy - cy)));
      return { kind: "scale", phase, person: g.person, dx: 0, dy: 0, scale, angle: 0 };
    }
    if (g.kind === "rotate") {
      const angle = Math.atan2(ly - cy, lx - cx) - Math.atan2(sy - cy, sx - cx);
      return { kind: "rotate", phase, person: g.person, dx: 0, dy: 0, scale: 1, angle };
    }
    return { kind: "move", phase, person: g.person, dx, dy, scale: 1, angle: 0 };
  }

  pointerUp(event, cancelled) {
    const g = this.gesture;
    if (!g || event.pointerId !== g.pointerId) return;
    this.gesture = null;
    if (this.canvas.hasPointerCapture?.(event.pointerId)) this.canvas.releasePointerCapture(event.pointerId);
    if (g.kind === "pan") return;
    const [lx, ly] = this.clientToLocal(event);
    const update = this.gestureUpdate(g, lx, ly, "end");
    if (cancelled && event.type !== "lostpointercapture") update.cancelled = true;
    this.emit(update);
  }

  cursorFor(kind) {
    return { joint: "grab", hidden: "pointer", move: "move", scale: "nwse-resize", rotate: "alias", none: this.options.zoomable ? "default" : "" }[kind] ?? "";
  }
}
