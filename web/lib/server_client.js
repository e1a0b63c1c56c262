// The editor's calls to ComfyUI's server: the pack's two routes
// (nodes/pose_editor_routes.py) and ComfyUI's own /view and /upload/image. Nothing else
// is fetched: no network beyond the page's own server.

export const PARSE_ROUTE = "/humansd/pose/parse";
export const IMAGES_ROUTE = "/humansd/pose/images";

/** Talks to the server through the frontend's `api` object (which knows the base URL). */
export class PoseServer {
  /**
   * @param {{fetchApi: (route: string, options?: object) => Promise<Response>, apiURL: (route: string) => string}} api
   */
  constructor(api) {
    this.api = api;
  }

  /**
   * Read pose text with the pack's readers.
   * @param {string} text anything pose_json accepts
   * @param {string} [source="pose_json"] what the text is, named first in error messages
   * @returns {Promise<{ok: true, answer: {frames: object[], single: boolean, format: string, notes: string[]}} | {ok: false, error: string}>}
   */
  async parse(text, source = "pose_json") {
    let response;
    try {
      response = await this.api.fetchApi(PARSE_ROUTE, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ text, source }),
      });
    } catch (error) {
      return { ok: false, error: `the server did not answer ${PARSE_ROUTE}: ${error}` };
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (response.ok && body?.ok === true && Array.isArray(body.frames)) return { ok: true, answer: body };
    return { ok: false, error: body?.error ?? `${PARSE_ROUTE} answered ${response.status} ${response.statusText}` };
  }

  /**
   * Image files in ComfyUI's input folder.
   * @returns {Promise<string[]>}
   */
  async images() {
    const response = await this.api.fetchApi(IMAGES_ROUTE);
    if (!response.ok) throw new Error(`${IMAGES_ROUTE} answered ${response.status}`);
    return (await response.json()).images ?? [];
  }

  /**
   * URL of an input-folder image through the server's /view route.
   * @param {string} name file name in input/
   * @returns {string}
   */
  imageURL(name) {
    const cut = name.lastIndexOf("/");
    const query = new URLSearchParams({ filename: name.slice(cut + 1), type: "input", subfolder: name.slice(0, Math.max(cut, 0)) });
    return this.api.apiURL(`/view?${query}`);
  }

  /**
   * Upload an image into input/ with ComfyUI's own /upload/image.
   * @param {File} file
   * @returns {Promise<string>} the stored name
   */
  async upload(file) {
    const form = new FormData();
    form.append("image", file);
    form.append("type", "input");
    const response = await this.api.fetchApi("/upload/image", { method: "POST", body: form });
    if (!response.ok) throw new Error(`/upload/image answered ${response.status} ${response.statusText}`);
    const body = await response.json();
    return body.subfolder ? `${body.subfolder}/${body.name}` : body.name;
  }
}
