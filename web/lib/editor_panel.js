// The larger pose editor, opened from a node: zoom and pan, people (add, delete, move,
// scale, rotate, mirror), joints (drag, hide, restore), frames (step, duplicate, delete),
// canvas size, pasting a pose (read by the server), a reference image, undo and redo.
//
// The panel holds no pose of its own: every action edits the node's pose_json through
// its NodePoseEditor, one undo step each, and Undo/Redo are the frontend's (Ctrl+Z and
// Ctrl+Y work as on the canvas). Undo reloads the graph, which makes new node objects;
// the panel follows the node by id.

import { editors, nodeKey } from "./node_editor.js";
import {
  addPerson, deleteFrame, deletePerson, duplicateFrame, hasBody, hideJoint, jointLabel, mirrorPerson, moveJoint,
  personJoints, replaceFrames, restoreJoint, setCanvasSize, transformPerson,
} from "./pose_model.js";
import { PoseView } from "./pose_view.js";
import { COCO17_NAMES } from "./skeleton.js";

const ROTATE_STEP = Math.PI / 12;
const SCALE_STEP = 1.1;
const GONE_CHECK_MS = 1000;

function element(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function section(title, ...children) {
  const s = element("section", "humansd-panel-section");
  s.append(element("h4", "", title), ...children);
  return s;
}

function row(...children) {
  const r = element("div", "humansd-panel-row");
  r.append(...children);
  return r;
}

/** The editor panel (one at a time). */
export class PosePanel {
  /**
   * @param {object} services
   * @param {import("./server_client.js").PoseServer} services.server
   * @param {import("./node_widgets.js").History} services.history
   * @param {{frame: object}} services.defaults the node's default pose frame (for new people)
   */
  constructor(services) {
    this.services = services;
    this.key = null;
    this.selection = { person: null, joint: null };
    this.onEditorChange = (event) => {
      if (nodeKey(event.detail.node) === this.key) this.bind(event.detail);
    };
    // Undo removes every node and makes new ones: close only when no editor came back.
    this.onEditorRemoved = (event) => {
      if (event.detail !== this.editor) return;
      setTimeout(() => {
        if (this.isOpen() && !editors.byNode.has(this.key)) this.close();
      }, GONE_CHECK_MS);
    };
    this.build();
  }

  /** @returns {boolean} whether the panel is showing */
  isOpen() {
    return this.key !== null;
  }

  /**
   * Open for a node's editor.
   * @param {import("./node_editor.js").NodePoseEditor} editor
   */
  open(editor) {
    if (!this.isOpen()) {
      editors.addEventListener("change", this.onEditorChange);
      editors.addEventListener("removed", this.onEditorRemoved);
    }
    this.key = nodeKey(editor.node);
    this.selection = { person: null, joint: null };
    document.body.append(this.root);
    this.view.fit();
    this.bind(editor);
    this.loadImages();
    this.panel.focus();
  }

  /** Close (the pose stays as edited). */
  close() {
    if (!this.isOpen()) return;
    editors.removeEventListener("change", this.onEditorChange);
    editors.removeEventListener("removed", this.onEditorRemoved);
    this.key = null;
    this.editor = null;
    this.root.remove();
  }

  bind(editor) {
    this.editor = editor;
    this.render();
  }

  // -- building ------------------------------------------------------------------------
  button(label, title, action, className = "") {
    const b = element("button", className, label);
    b.type = "button";
    b.title = title;
    b.dataset.action = action;
    b.addEventListener("click", () => this.run(action));
    return b;
  }

  build() {
    this.root = element("div", "humansd-panel-backdrop");
    this.panel = element("div", "humansd-panel");
    this.panel.tabIndex = -1;
    this.panel.setAttribute("role", "dialog");
    this.panel.setAttribute("aria-label", "HumanSD pose editor");
    this.root.append(this.panel);

    this.title = element("span", "humansd-panel-title", "HumanSD pose");
    this.frameLabel = element("span", "humansd-panel-frame", "");
    this.zoomLabel = element("span", "humansd-panel-zoom", "");
    const header = element("header", "humansd-panel-header");
    header.append(
      this.title,
      this.button("◀", "Previous frame", "prev-frame"), this.frameLabel, this.button("▶", "Next frame", "next-frame"),
      this.button("Duplicate frame", "Insert a copy of this frame after it", "duplicate-frame"),
      this.button("Delete frame", "Remove this frame", "delete-frame"),
      element("span", "humansd-panel-gap"),
      this.button("Undo", "Undo (Ctrl+Z): the workflow's own history", "undo"),
      this.button("Redo", "Redo (Ctrl+Y)", "redo"),
      this.button("−", "Zoom out (or the mouse wheel)", "zoom-out"), this.zoomLabel,
      this.button("+", "Zoom in", "zoom-in"), this.button("Fit", "Show the whole canvas", "fit"),
      this.button("Close", "Close the panel (Esc)", "close", "humansd-panel-close"),
    );

    this.view = new PoseView({
      zoomable: true, personTools: true, showHidden: true, margin: 24,
      onGesture: (g) => this.gesture(g),
      onSelect: (selection) => this.select(selection),
    });
    this.view.element.classList.add("humansd-panel-view");
    this.message = element("div", "humansd-pose-message");
    this.view.element.append(this.message);

    this.personSelect = element("select", "humansd-panel-person");
    this.personSelect.title = "The selected person";
    this.personSelect.addEventListener("change", () => this.select({ person: this.numberOrNull(this.personSelect.value), joint: null }));
    this.jointSelect = element("select", "humansd-panel-joint");
    this.jointSelect.title = "The selected joint";
    this.jointSelect.addEventListener("change", () => this.select({ person: this.selection.person, joint: this.numberOrNull(this.jointSelect.value) }));
    this.jointInfo = element("div", "humansd-panel-note", "");
    this.canvasWidth = element("input", "humansd-panel-number");
    this.canvasHeight = element("input", "humansd-panel-number");
    for (const [input, name] of [[this.canvasWidth, "width"], [this.canvasHeight, "height"]]) {
      Object.assign(input, { type: "number", min: 1, max: 16384, step: 1, title: `Canvas ${name} in pixels (every frame)` });
      input.dataset.field = `canvas-${name}`;
    }
    this.referenceSelect = element("select", "humansd-panel-reference");
    this.referenceSelect.title = "An image from ComfyUI's input folder, shown under the skeleton (never part of the pose)";
    this.referenceSelect.addEventListener("change", () => this.setReference());
    this.opacity = element("input", "humansd-panel-opacity");
    Object.assign(this.opacity, { type: "range", min: 0, max: 1, step: 0.05, title: "Reference image opacity" });
    this.opacity.addEventListener("change", () => this.setReference());
    this.upload = element("input");
    Object.assign(this.upload, { type: "file", accept: "image/*", hidden: true });
    this.upload.addEventListener("change", () => this.uploadReference());
    this.pasteText = element("textarea", "humansd-panel-paste");
    this.pasteText.placeholder = "Paste OpenPose / POSE_KEYPOINT / COCO JSON here";
    this.pasteText.spellcheck = false;
    this.pasteMessage = element("div", "humansd-panel-note", "");
    this.statusLine = element("div", "humansd-panel-note humansd-panel-status", "");

    const aside = element("aside", "humansd-panel-side");
    aside.append(
      section("People",
        row(this.personSelect, this.button("Add person", "Add a standing person", "add-person")),
        row(this.button("Delete person", "Remove the selected person", "delete-person"),
            this.button("Mirror", "Mirror the person left-right, left and right swapped", "mirror-person")),
        row(this.button("⟲ 15°", "Rotate the person 15° anticlockwise", "rotate-left"),
            this.button("⟳ 15°", "Rotate the person 15° clockwise", "rotate-right"),
            this.button("− 10%", "Shrink the person", "scale-down"),
            this.button("+ 10%", "Enlarge the person", "scale-up")),
        element("div", "humansd-panel-note", "Drag inside the box to move, the square to scale, the dot to rotate.")),
      section("Joint",
        row(this.jointSelect),
        row(this.button("Hide joint", "Hide the joint (confidence 0; Delete key)", "hide-joint"),
            this.button("Restore joint", "Show the joint again (confidence 1)", "restore-joint")),
        this.jointInfo),
      section("Canvas", row(this.canvasWidth, element("span", "", "×"), this.canvasHeight,
                            this.button("Apply", "Set the canvas size of every frame (joints keep their pixels)", "canvas-size"))),
      section("Reference image", row(this.referenceSelect), row(this.opacity,
        this.button("Upload…", "Upload an image into ComfyUI's input folder", "upload-reference")), this.upload),
      section("Paste a pose", this.pasteText,
        row(this.button("Replace frame", "Put the pasted frames in place of this frame", "paste-frame"),
            this.button("Replace all", "Make the pasted pose the whole pose", "paste-all")),
        this.pasteMessage),
      this.statusLine,
    );
    const body = element("div", "humansd-panel-body");
    body.append(this.view.element, aside);
    this.panel.append(header, body);

    this.root.addEventListener("pointerdown", (event) => {
      if (event.target === this.root) this.close();
    });
    this.panel.addEventListener("keydown", (event) => this.onKey(event));
    for (const type of ["keyup", "keypress", "paste", "copy", "cut"]) this.panel.addEventListener(type, (e) => e.stopPropagation());
    // The change tracker takes a snapshot of the graph at every mouseup on the page (its
    // window listener) and a snapshot that differs from its last state empties the redo
    // queue. A click in the panel is no graph edit (the panel's edits are their own undo
    // steps through services.history), and after an undo the reloaded graph can differ
    // from the restored state in what the frontend redraws by itself (frontend 1.58: a
    // PreviewImage showing its last output gains an empty widgets_values): the mouseup of
    // a click on Redo would then make a step of that and throw the redo away.
    this.root.addEventListener("mouseup", (e) => e.stopPropagation());
  }

  numberOrNull(value) {
    return value === "" || value === null ? null : Number(value);
  }

  // -- state ---------------------------------------------------------------------------
  get frameIndex() {
    return this.editor?.frame ?? 0;
  }

  currentFrame() {
    return this.editor?.doc?.frames[this.frameIndex] ?? null;
  }

  clampSelection() {
    const people = this.currentFrame()?.people ?? [];
    let { person, joint } = this.selection;
    if (person !== null && !hasBody(people[person])) person = null;
    if (person === null) joint = null;
    this.selection = { person, joint };
  }

  select(selection) {
    this.selection = { person: selection.person ?? null, joint: selection.joint ?? null };
    this.render();
  }

  render() {
    if (!this.isOpen() || !this.editor) return;
    this.clampSelection();
    const editor = this.editor;
    const ready = editor.ready();
    const doc = editor.doc;
    const frame = this.currentFrame();
    const count = doc?.frames.length ?? 0;
    this.title.textContent = `HumanSD pose · node #${editor.node.id}`;
    this.frameLabel.textContent = count ? `frame ${this.frameIndex + 1}/${count}` : "no frames";
    this.zoomLabel.textContent = `${Math.round(this.view.zoomLevel() * 100)}%`;
    this.view.setScene(editor.scene());
    this.view.setSelection(this.selection);
    this.message.textContent = editor.status.kind === "ok" ? "" : editor.status.message;

    const people = frame?.people ?? [];
    this.personSelect.replaceChildren(element("option", "", "(no person selected)"));
    this.personSelect.options[0].value = "";
    people.forEach((person, p) => {
      if (!hasBody(person)) return;
      const option = element("option", "", `person ${p + 1}`);
      option.value = String(p);
      this.personSelect.append(option);
    });
    this.personSelect.value = this.selection.person === null ? "" : String(this.selection.person);

    const joints = this.selection.person === null ? null : personJoints(people[this.selection.person]);
    this.jointSelect.replaceChildren(element("option", "", "(no joint selected)"));
    this.jointSelect.options[0].value = "";
    COCO17_NAMES.forEach((_, j) => {
      const hidden = joints && !(joints[j][2] > 0);
      const option = element("option", "", `${jointLabel(j)}${hidden ? " (hidden)" : ""}`);
      option.value = String(j);
      this.jointSelect.append(option);
    });
    this.jointSelect.disabled = !joints;
    this.jointSelect.value = this.selection.joint === null ? "" : String(this.selection.joint);
    const joint = joints && this.selection.joint !== null ? joints[this.selection.joint] : null;
    this.jointInfo.textContent = joint ? `x ${joint[0]}, y ${joint[1]}, confidence ${joint[2]}` : "";

    if (frame && document.activeElement !== this.canvasWidth && document.activeElement !== this.canvasHeight) {
      this.canvasWidth.value = frame.canvas_width;
      this.canvasHeight.value = frame.canvas_height;
    }
    const reference = editor.referenceSetting();
    this.ensureOption(this.referenceSelect, reference.image);
    this.referenceSelect.value = reference.image ?? "";
    this.opacity.value = reference.opacity;

    const enable = (action, on) => { for (const b of this.panel.querySelectorAll(`[data-action="${action}"]`)) b.disabled = !on; };
    const person = ready && this.selection.person !== null;
    for (const action of ["delete-person", "mirror-person", "rotate-left", "rotate-right", "scale-down", "scale-up"]) enable(action, person);
    enable("hide-joint", person && joint !== null && joint[2] > 0);
    enable("restore-joint", person && joint !== null && !(joint[2] > 0));
    enable("prev-frame", this.frameIndex > 0);
    enable("next-frame", this.frameIndex < count - 1);
    enable("duplicate-frame", ready && count > 0);
    enable("delete-frame", ready && count > 1);
    for (const action of ["add-person", "canvas-size", "paste-frame", "paste-all"]) enable(action, ready);
    const s = editor.status;
    this.statusLine.textContent = [s.format && `read as ${s.format}`, ...editor.warnings(), ...(s.kind === "ok" ? s.notes : [])]
      .filter(Boolean).join(" · ");
    this.panel.dataset.state = s.kind;
  }

  ensureOption(select, value) {
    if (value && ![...select.options].some((o) => o.value === value)) {
      const option = element("option", "", value);
      option.value = value;
      select.append(option);
    }
  }

  async loadImages() {
    let names = [];
    try {
      names = await this.services.server.images();
    } catch (error) {
      this.pasteMessage.textContent = String(error);
    }
    const none = element("option", "", "(none)");
    none.value = "";
    this.referenceSelect.replaceChildren(none, ...names.map((name) => {
      const option = element("option", "", name);
      option.value = name;
      return option;
    }));
    this.render();
  }

  // -- actions ---------------------------------------------------------------------------
  edit(change) {
    try {
      this.editor.edit(change);
      return true;
    } catch (error) {
      this.pasteMessage.textContent = error.message ?? String(error);
      return false;
    }
  }

  async run(action) {
    const editor = this.editor;
    if (!editor) return;
    const f = this.frameIndex;
    const { person: p, joint: j } = this.selection;
    const defaults = this.services.defaults;
    switch (action) {
      case "close": return this.close();
      case "undo": return this.services.history.undo();
      case "redo": return this.services.history.redo();
      case "zoom-in": return this.zoomBy(1.25);
      case "zoom-out": return this.zoomBy(1 / 1.25);
      case "fit": this.view.fit(); return this.render();
      case "prev-frame": case "next-frame":
        editor.showFrame(f + (action === "next-frame" ? 1 : -1));
        this.selection = { person: null, joint: null };
        return this.render();
      case "duplicate-frame":
        if (this.edit((doc) => duplicateFrame(doc, f))) editor.showFrame(f + 1);
        return this.render();
      case "delete-frame":
        if (this.edit((doc) => deleteFrame(doc, f))) editor.showFrame(Math.min(f, editor.doc.frames.length - 1));
        return this.render();
      case "add-person":
        if (this.edit((doc) => addPerson(doc, f, defaults.frame))) {
          this.selection = { person: this.currentFrame().people.length - 1, joint: null };
        }
        return this.render();
      case "delete-person":
        if (this.edit((doc) => deletePerson(doc, f, p))) this.selection = { person: null, joint: null };
        return this.render();
      case "mirror-person": return this.edit((doc) => mirrorPerson(doc, f, p));
      case "rotate-left": case "rotate-right":
        return this.edit((doc) => transformPerson(doc, f, p, { angle: action === "rotate-right" ? ROTATE_STEP : -ROTATE_STEP }));
      case "scale-up": case "scale-down":
        return this.edit((doc) => transformPerson(doc, f, p, { scale: action === "scale-up" ? SCALE_STEP : 1 / SCALE_STEP }));
      case "hide-joint": return this.edit((doc) => hideJoint(doc, f, p, j));
      case "restore-joint":
        return this.edit((doc) => restoreJoint(doc, f, p, j, defaults.frame.people.find(hasBody)));
      case "canvas-size":
        return this.edit((doc) => setCanvasSize(doc, Number(this.canvasWidth.value), Number(this.canvasHeight.value)));
      case "upload-reference": return this.upload.click();
      case "paste-frame": case "paste-all": return this.paste(action === "paste-all" ? null : f);
      default: throw new Error(`unknown panel action ${action}`);
    }
  }

  zoomBy(factor) {
    this.view.zoom(factor);
    this.render();
  }

  async paste(f) {
    const text = this.pasteText.value;
    this.pasteMessage.textContent = "reading…";
    this.pasteMessage.dataset.state = "loading";
    const result = await this.services.server.parse(text, "pasted pose");
    if (!result.ok) {
      this.pasteMessage.textContent = result.error;
      this.pasteMessage.dataset.state = "error";
      return;
    }
    const frames = result.answer.frames;
    if (this.edit((doc) => replaceFrames(doc, f, frames))) {
      this.pasteMessage.textContent = `pasted ${frames.length} frame${frames.length === 1 ? "" : "s"} (${result.answer.format})`;
      this.pasteMessage.dataset.state = "ok";
      this.selection = { person: null, joint: null };
    } else {
      this.pasteMessage.dataset.state = "error";
    }
    this.render();
  }

  setReference() {
    this.editor?.setReference(this.referenceSelect.value || null, Number(this.opacity.value));
  }

  async uploadReference() {
    const file = this.upload.files?.[0];
    if (!file) return;
    try {
      const name = await this.services.server.upload(file);
      await this.loadImages();
      this.ensureOption(this.referenceSelect, name);
      this.referenceSelect.value = name;
      this.setReference();
    } catch (error) {
      this.pasteMessage.textContent = String(error);
    } finally {
      this.upload.value = "";
    }
  }

  gesture(g) {
    const editor = this.editor;
    if (!editor) return;
    const f = this.frameIndex;
    if (g.kind === "joint") {
      editor.gesture(g.phase, (base) => moveJoint(base, f, g.person, g.joint, g.x, g.y), g.cancelled);
    } else {
      const change = { dx: g.dx, dy: g.dy, scale: g.scale, angle: g.angle };
      editor.gesture(g.phase, (base) => transformPerson(base, f, g.person, change), g.cancelled);
    }
  }

  onKey(event) {
    event.stopPropagation(); // keep the graph's shortcuts (Delete removes nodes) off the panel
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(event.target.tagName);
    if (event.key === "Escape") return this.close();
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    const { person: p, joint: j } = this.selection;
    if (p === null || j === null) return;
    if (event.key === "Delete" || event.key === "Backspace") {
      event.preventDefault();
      this.run("hide-joint");
      return;
    }
    const step = event.shiftKey ? 10 : 1;
    const arrows = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    const move = arrows[event.key];
    if (!move) return;
    event.preventDefault();
    const q = personJoints(this.currentFrame().people[p])[j];
    this.edit((doc) => moveJoint(doc, this.frameIndex, p, j, q[0] + move[0], q[1] + move[1]));
  }
}
