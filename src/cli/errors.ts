// Errors the CLI reports as one sentence and exit status 2 (bad input: nothing was done).

export class UsageError extends Error {
  override name = "UsageError";
}

/** Errors whose message is already a user-facing sentence; anything else is a bug and shows a stack. */
export function isUserError(e: unknown): e is Error {
  return (
    e instanceof Error &&
    ["UsageError", "ConfigError", "BootImageError", "ImageBuildError", "DiskError", "BlockRequestError", "ControlServerError"].includes(e.name)
  );
}
