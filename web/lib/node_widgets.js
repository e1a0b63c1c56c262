// What the editor reads from and writes to a HumanSD Pose from JSON node, through the
// frontend's public objects only: widgets looked up by name (never by position, which
// frontends change), and the frontend's own undo history.

/** Names of the node's inputs the editor uses (nodes/pose_nodes.py, nodes/_pose_render.py). */
export const INPUTS = Object.freeze({
  pose: "pose_json",
  file: "pose_file",
  width: "width",
  height: "height",
  placement: "placement",
  threshold: "threshold",
  thickness: "thickness",
  scaleThickness: "scale_thickness",
});

/**
 * A node's widget by name.
 * @param {{widgets?: Array<{name: string}>}} node
 * @param {string} name
 * @returns {object | undefined}
 */
export function widgetByName(node, name) {
  return node.widgets?.find((w) => w.name === name);
}

/**
 * Whether an input of the node is fed by a link (then its widget value is not what runs).
 * @param {{inputs?: Array<{name: string, link: number | null, widget?: {name: string}}>}} node
 * @param {string} name
 * @returns {boolean}
 */
export function inputIsLinked(node, name) {
  return Boolean(node.inputs?.some((i) => (i.widget?.name === name || i.name === name) && i.link != null));
}

function numberOr(value, fallback) {
  const n = Number(value);
  return Number.isFinite(n) ? n : fallback;
}

/**
 * The node's drawing options as its widgets hold them now.
 * @param {object} node
 * @param {{threshold: number, thickness: number}} defaults used for a missing widget
 * @returns {{width: number, height: number, placement: string, threshold: number, thickness: number, scaleThickness: boolean, poseFile: string | null}}
 */
export function drawOptions(node, defaults) {
  const value = (name) => widgetByName(node, name)?.value;
  return {
    width: Math.max(0, Math.trunc(numberOr(value(INPUTS.width), 0))),
    height: Math.max(0, Math.trunc(numberOr(value(INPUTS.height), 0))),
    placement: String(value(INPUTS.placement) ?? "fit"),
    threshold: numberOr(value(INPUTS.threshold), defaults.threshold),
    thickness: Math.max(1, Math.trunc(numberOr(value(INPUTS.thickness), defaults.thickness))),
    scaleThickness: Boolean(value(INPUTS.scaleThickness)),
    poseFile: value(INPUTS.file) ?? null,
  };
}

/**
 * The frontend's undo history: group an edit into one undo step.
 * Uses the canvas's before/after-change events, which the change tracker counts (it
 * takes no snapshot while a change is open and compares the graph when the last one
 * closes); falls back to asking the active workflow's tracker to compare.
 */
export class History {
  /** @param {object} app the frontend's app */
  constructor(app) {
    this.app = app;
    this.open = 0;
  }

  /** Start an edit (e.g. at pointer down). */
  begin() {
    this.open++;
    this.app.canvas?.emitBeforeChange?.();
  }

  /** End an edit; the tracker records one undo step if the graph changed. */
  end() {
    if (this.open <= 0) return;
    this.open--;
    if (this.app.canvas?.emitAfterChange) this.app.canvas.emitAfterChange();
    else this.tracker()?.checkState?.();
  }

  /**
   * Run an edit as one undo step.
   * @param {() => void} edit
   */
  step(edit) {
    this.begin();
    try {
      edit();
    } finally {
      this.end();
    }
  }

  tracker() {
    return this.app.extensionManager?.workflow?.activeWorkflow?.changeTracker;
  }

  /** The frontend's Undo (what Ctrl+Z does). */
  async undo() {
    await this.command("Comfy.Undo", (t) => t.undo());
  }

  /** The frontend's Redo (what Ctrl+Y does). */
  async redo() {
    await this.command("Comfy.Redo", (t) => t.redo());
  }

  async command(id, fallback) {
    const commands = this.app.extensionManager?.command;
    if (commands?.execute) return commands.execute(id);
    const tracker = this.tracker();
    if (tracker) return fallback(tracker);
  }
}
