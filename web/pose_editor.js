// HumanSD pose editor: a frontend extension of the ComfyUI-HumanSD pack.
//
// On every "HumanSD Pose from JSON" node it adds a DOM widget that draws the pose as the
// node will draw it (the HumanSD skeleton at the node's threshold and thickness) with a
// draggable handle on each joint, and an "Edit…" button opening a larger panel. The pose
// lives only in the node's pose_json widget (saved in the workflow, sent in the prompt);
// pose formats are read by the pack's server route, never by this code.
//
// Plain ES modules, no build step; nothing is fetched but the page's own server.

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { PosePanel } from "./lib/editor_panel.js";
import { NodePoseEditor } from "./lib/node_editor.js";
import { History } from "./lib/node_widgets.js";
import { PoseServer } from "./lib/server_client.js";

const NODE_TYPE = "HumanSDPoseFromJSON";
const STYLESHEET_ID = "humansd-pose-editor-css";

/** Read once from the node definition the server sends: its defaults are the editor's. */
const defaults = { frame: null, threshold: 0.05, thickness: 10, noFile: null };
const server = new PoseServer(api);
const history = new History(app);
let panel = null;

function addStylesheet() {
  if (document.getElementById(STYLESHEET_ID)) return;
  const link = document.createElement("link");
  link.id = STYLESHEET_ID;
  link.rel = "stylesheet";
  link.href = new URL("./pose_editor.css", import.meta.url).href;
  document.head.append(link);
}

function readDefaults(nodeData) {
  const required = nodeData?.input?.required ?? {};
  const poseText = required.pose_json?.[1]?.default;
  const frame = JSON.parse(poseText);
  if (!Array.isArray(frame?.people) || !frame.people.length) {
    throw new Error(`${NODE_TYPE}: the default pose_json holds no person to add`);
  }
  defaults.frame = frame;
  defaults.threshold = required.threshold?.[1]?.default ?? defaults.threshold;
  defaults.thickness = required.thickness?.[1]?.default ?? defaults.thickness;
  defaults.noFile = Array.isArray(required.pose_file?.[0]) ? required.pose_file[0][0] : null;
}

function openPanel(editor) {
  panel ??= new PosePanel({ server, history, defaults });
  panel.open(editor);
}

app.registerExtension({
  name: "HumanSD.PoseEditor",
  beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE_TYPE) return;
    readDefaults(nodeData);
    addStylesheet();
  },
  nodeCreated(node) {
    if (node?.comfyClass !== NODE_TYPE) return;
    node.humansdPoseEditor = new NodePoseEditor(node, { app, server, history, defaults, openPanel });
  },
});
