// The editor attached to one HumanSD Pose from JSON node: a DOM widget under the node
// showing the current frame as the node draws it, with draggable joints, and the one
// place where the pose text is read and written.
//
// The node's pose_json widget value is the single source of truth. Whenever it changes
// (typing, loading or undoing a workflow, pasting a node) the text goes to the server's
// /humansd/pose/parse route and the answer becomes the document shown; every edit writes
// the whole document back into pose_json, inside one undo step of the frontend's history.
// The first edit therefore rewrites a text in another format into the editor's layout
// (see humansd_core/pose/editor_format.py for what is kept).

import { placement } from "./geometry.js";
import { INPUTS, drawOptions, inputIsLinked, widgetByName } from "./node_widgets.js";
import { documentFromAnswer, documentText, moveJoint } from "./pose_model.js";
import { PoseView } from "./pose_view.js";
import { scaledThickness } from "./skeleton.js";

export const WIDGET_NAME = "pose_editor";
export const WIDGET_TYPE = "humansd_pose_editor";
export const REFERENCE_PROPERTY = "humansd_reference_image";
const PARSE_DELAY_MS = 150;
const MIN_HEIGHT = 180;

/** Editors by node key, a "change" event (detail: the editor) after each update, "removed" when a node goes. */
export const editors = Object.assign(new EventTarget(), { byNode: new Map() });
/** Frame shown per node key, kept across the graph reloads of undo and redo. */
const shownFrame = new Map();

/**
 * A node's key: its id within its graph (ids repeat across subgraphs). Undo and redo
 * reload the graph into new node objects with the same keys.
 * @param {{id: number, graph?: {id?: string}}} node
 * @returns {string}
 */
export function nodeKey(node) {
  return `${node.graph?.id ?? ""}:${node.id}`;
}
/** Reference images by URL: {image, waiting} (callbacks to run once it has loaded). */
const images = new Map();

/**
 * An <img> of an input-folder image, loaded once per URL.
 * @param {string} url
 * @param {() => void} onLoad called once when it has loaded (if it has not yet)
 * @returns {HTMLImageElement}
 */
function referenceImage(url, onLoad) {
  let entry = images.get(url);
  if (!entry) {
    entry = { image: new Image(), waiting: new Set() };
    const waiting = entry.waiting;
    entry.image.addEventListener("load", () => {
      for (const callback of waiting) callback();
      waiting.clear();
    });
    entry.image.src = url;
    images.set(url, entry);
  }
  if (!entry.image.complete) entry.waiting.add(onLoad);
  return entry.image;
}

function button(label, title, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.title = title;
  b.addEventListener("click", (event) => {
    event.stopPropagation();
    onClick();
  });
  return b;
}

/** The editor of one node. */
export class NodePoseEditor {
  /**
   * @param {object} node the LiteGraph node
   * @param {object} services
   * @param {object} services.app the frontend's app
   * @param {import("./server_client.js").PoseServer} services.server
   * @param {import("./node_widgets.js").History} services.history
   * @param {{frame: object, threshold: number, thickness: number, noFile: string | null}} services.defaults
   * @param {(editor: NodePoseEditor) => void} services.openPanel
   */
  constructor(node, services) {
    this.node = node;
    this.services = services;
    this.doc = null;
    this.status = { kind: "loading", message: "reading the pose…", notes: [], format: "" };
    this.seenText = null;
    this.seenOptions = "";
    this.parseSerial = 0;
    this.parseTimer = 0;
    this.gestureStart = null;
    this.refreshLater = () => this.refresh();
    this.build();
    this.watch();
    this.textChanged();
  }

  // -- widgets -------------------------------------------------------------------------
  poseWidget() {
    return widgetByName(this.node, INPUTS.pose);
  }

  /** @returns {string} the pose text the node holds now */
  text() {
    const value = this.poseWidget()?.value;
    return typeof value === "string" ? value : "";
  }

  options() {
    return drawOptions(this.node, this.services.defaults);
  }

  get frame() {
    const count = this.doc?.frames.length ?? 0;
    return Math.min(Math.max(0, shownFrame.get(nodeKey(this.node)) ?? 0), Math.max(0, count - 1));
  }

  set frame(f) {
    shownFrame.set(nodeKey(this.node), f);
  }

  // -- building ------------------------------------------------------------------------
  build() {
    const root = document.createElement("div");
    root.className = "humansd-pose-editor";
    const bar = document.createElement("div");
    bar.className = "humansd-pose-bar";
    this.prevButton = button("◀", "Previous frame", () => this.showFrame(this.frame - 1));
    this.frameLabel = document.createElement("span");
    this.frameLabel.className = "humansd-pose-frame";
    this.nextButton = button("▶", "Next frame", () => this.showFrame(this.frame + 1));
    this.statusLabel = document.createElement("span");
    this.statusLabel.className = "humansd-pose-status";
    this.panelButton = button("Edit…", "Open the pose editor panel", () => this.services.openPanel(this));
    this.panelButton.className = "humansd-pose-open";
    bar.append(this.prevButton, this.frameLabel, this.nextButton, this.statusLabel, this.panelButton);
    this.view = new PoseView({
      onGesture: (g) => this.nodeGesture(g),
      onWheel: (event) => this.forwardWheel(event),
    });
    this.message = document.createElement("div");
    this.message.className = "humansd-pose-message";
    this.view.element.append(this.message);
    root.append(bar, this.view.element);
    this.element = root;
    this.widget = this.node.addDOMWidget(WIDGET_NAME, WIDGET_TYPE, root, {
      serialize: false,
      getValue: () => "",
      setValue: () => {},
      getMinHeight: () => MIN_HEIGHT,
    });
    this.widget.serialize = false; // neither in widgets_values nor in the prompt
  }

  forwardWheel(event) {
    const canvas = this.services.app.canvas;
    if (canvas?.processMouseWheel) {
      event.preventDefault();
      canvas.processMouseWheel(event);
    }
  }

  watch() {
    const editor = this;
    for (const name of Object.values(INPUTS)) {
      const widget = widgetByName(this.node, name);
      if (!widget) continue;
      const previous = widget.callback;
      widget.callback = function (...args) {
        const result = previous?.apply(this, args);
        if (name === INPUTS.pose) editor.textChanged();
        else editor.refresh();
        return result;
      };
    }
    const draw = this.node.onDrawForeground;
    this.node.onDrawForeground = function (...args) {
      const result = draw?.apply(this, args);
      editor.poll();
      return result;
    };
    const removed = this.node.onRemoved;
    this.node.onRemoved = function (...args) {
      editor.dispose();
      return removed?.apply(this, args);
    };
    const configured = this.node.onConfigure;
    this.node.onConfigure = function (...args) {
      const result = configured?.apply(this, args);
      editor.fitNodeHeight();
      editor.textChanged();
      return result;
    };
  }

  /** A node saved before the editor existed may be too short for it: grow it. */
  fitNodeHeight() {
    const wanted = this.node.computeSize?.();
    if (wanted && this.node.size[1] < wanted[1]) this.node.setSize([Math.max(this.node.size[0], wanted[0]), wanted[1]]);
  }

  /** Catch changes that came without a widget callback (cheap: compares references). */
  poll() {
    if (this.text() !== this.seenText) this.textChanged();
    else if (this.optionsKey() !== this.seenOptions) this.refresh();
  }

  optionsKey() {
    const o = this.options();
    return [o.width, o.height, o.placement, o.threshold, o.thickness, o.scaleThickness, o.poseFile,
            JSON.stringify(this.node.properties?.[REFERENCE_PROPERTY] ?? null)].join("|");
  }

  dispose() {
    clearTimeout(this.parseTimer);
    this.parseSerial++;
    this.view.destroy();
    const key = nodeKey(this.node);
    if (editors.byNode.get(key) === this) editors.byNode.delete(key);
    editors.dispatchEvent(new CustomEvent("removed", { detail: this }));
  }

  // -- reading the text ----------------------------------------------------------------
  textChanged() {
    const text = this.text();
    if (text === this.seenText) return;
    this.seenText = text;
    this.status = { ...this.status, kind: "loading", message: "reading the pose…" };
    clearTimeout(this.parseTimer);
    const serial = ++this.parseSerial;
    this.parseTimer = setTimeout(() => this.parse(text, serial), PARSE_DELAY_MS);
    this.refresh();
  }

  async parse(text, serial) {
    const result = await this.services.server.parse(text);
    if (serial !== this.parseSerial) return; // a newer text is on its way
    if (result.ok) {
      this.doc = documentFromAnswer(result.answer);
      this.status = { kind: "ok", message: "", notes: result.answer.notes ?? [], format: result.answer.format ?? "" };
    } else {
      this.doc = null;
      this.status = { kind: "error", message: result.error, notes: [], format: "" };
    }
    this.refresh();
  }

  /** @returns {boolean} a parsed document is shown and matches the text */
  ready() {
    return this.status.kind === "ok" && this.doc !== null;
  }

  // -- writing the text ----------------------------------------------------------------
  /**
   * Make `doc` the node's pose: written into pose_json (the caller groups it into an
   * undo step with services.history).
   * @param {{frames: object[], single: boolean}} doc
   */
  apply(doc) {
    if (!this.ready()) throw new Error("the pose is not readable now; fix the text first");
    const text = documentText(doc);
    this.doc = doc;
    this.seenText = text;
    this.status = { kind: "ok", message: "", notes: [], format: "POSE_KEYPOINT (editor)" };
    const widget = this.poseWidget();
    widget.value = text;
    this.node.setDirtyCanvas?.(true, true);
    this.refresh();
  }

  /**
   * One edit as one undo step.
   * @param {(doc: object) => object} change
   */
  edit(change) {
    if (!this.ready()) return;
    this.services.history.step(() => this.apply(change(this.doc)));
  }

  /**
   * A drag: the document at "start" is the base of every update; "end" closes the undo step.
   * @param {string} phase "start" | "move" | "end"
   * @param {(base: object) => object} change
   * @param {boolean} [cancelled] put the base back
   */
  gesture(phase, change, cancelled = false) {
    if (phase === "start") {
      if (!this.ready()) return;
      this.gestureStart = this.doc;
      this.services.history.begin();
    }
    if (!this.gestureStart) return;
    try {
      this.apply(cancelled ? this.gestureStart : change(this.gestureStart));
    } finally {
      if (phase === "end") {
        this.gestureStart = null;
        this.services.history.end();
      }
    }
  }

  nodeGesture(g) {
    if (g.kind !== "joint") return;
    this.gesture(g.phase, (base) => moveJoint(base, this.frame, g.person, g.joint, g.x, g.y), g.cancelled);
  }

  /**
   * Show frame f (clamped).
   * @param {number} f
   */
  showFrame(f) {
    const count = this.doc?.frames.length ?? 0;
    this.frame = Math.min(Math.max(0, f), Math.max(0, count - 1));
    this.refresh();
  }

  // -- what is shown -------------------------------------------------------------------
  /**
   * The scene of frame f as the node will draw it (see PoseView's Scene), or null.
   * @param {number} [f] default: the frame shown
   * @returns {object | null}
   */
  scene(f = this.frame) {
    const frame = this.doc?.frames[f];
    if (!this.ready() || !frame) return null;
    const o = this.options();
    const first = this.doc.frames[0];
    const output = { width: o.width || first.canvas_width, height: o.height || first.canvas_height };
    const reference = this.referenceSetting();
    return {
      frame,
      output,
      place: placement(frame.canvas_width, frame.canvas_height, output.width, output.height, o.placement),
      threshold: o.threshold,
      thickness: o.scaleThickness ? scaledThickness(output.width, output.height, o.thickness) : o.thickness,
      reference: reference.image ? referenceImage(this.services.server.imageURL(reference.image), this.refreshLater) : null,
      referenceOpacity: reference.opacity,
    };
  }

  /** @returns {{image: string | null, opacity: number}} the reference image kept in node.properties */
  referenceSetting() {
    const value = this.node.properties?.[REFERENCE_PROPERTY];
    return { image: typeof value?.image === "string" && value.image ? value.image : null,
             opacity: Number.isFinite(value?.opacity) ? value.opacity : 0.5 };
  }

  /**
   * Show a reference image (a name in input/, or null for none) under the skeleton; kept
   * in the node's properties (saved with the workflow, never part of the pose).
   * @param {string | null} image
   * @param {number} opacity 0..1
   */
  setReference(image, opacity) {
    this.services.history.step(() => {
      this.node.properties ??= {};
      this.node.properties[REFERENCE_PROPERTY] = { image: image || null, opacity };
    });
    this.refresh();
  }

  /** @returns {string[]} warnings about what the node will really run */
  warnings() {
    const out = [];
    const { poseFile } = this.options();
    const noFile = this.services.defaults.noFile;
    if (poseFile && noFile && poseFile !== noFile) out.push(`pose_file ${poseFile} overrides this text when the node runs`);
    if (inputIsLinked(this.node, INPUTS.pose)) out.push("pose_json comes from a link: the editor shows the widget's own text");
    return out;
  }

  refresh() {
    this.seenOptions = this.optionsKey();
    const scene = this.scene();
    const count = this.doc?.frames.length ?? 0;
    this.frameLabel.textContent = count ? `${this.frame + 1}/${count}` : "0/0";
    this.prevButton.disabled = this.frame <= 0;
    this.nextButton.disabled = this.frame >= count - 1;
    const s = this.status;
    const lines = s.kind === "error" ? [s.message] : [...this.warnings(), ...(s.kind === "loading" ? [s.message] : s.notes)];
    this.statusLabel.textContent = lines.join(" · ");
    this.statusLabel.title = lines.join("\n");
    this.element.dataset.state = s.kind;
    this.element.dataset.node = String(this.node.id);
    this.element.dataset.warning = lines.length ? "yes" : "no";
    this.view.setScene(scene);
    this.message.textContent = s.kind === "ok" ? (count ? "" : "The pose has no frames: add a person in the editor panel.") : s.message;
    if (this.node.graph && this.node.id !== -1) editors.byNode.set(nodeKey(this.node), this);
    editors.dispatchEvent(new CustomEvent("change", { detail: this }));
  }
}
