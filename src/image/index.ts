// The guest image builder: what the CLI needs to find or build a guest image.
export { defaultCacheDir, resolveImage, loadImage, type GuestImage, type ImageManifest } from "./guest_image.js";
export { ensureDefaultImage, DEFAULT_IMAGE_NAME, type BuildProgress, type EnsureImageOptions } from "./build_default_image.js";
export {
  commandArgument,
  parseExitLine,
  parseSerialFallback,
  GUEST_COMMAND_LINE_MAX,
  CMDLINE_COMMAND_KEY,
  CMDLINE_DEBUG_KEY,
  INIT_STARTED_LINE,
  MARKER_BEGIN,
  MARKER_EXIT,
} from "./init_script.js";
