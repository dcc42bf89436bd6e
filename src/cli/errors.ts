// Errors the CLI reports as one sentence and exit status 2 (bad input: nothing was done).

export class UsageError extends Error {
  override name = "UsageError";
}

/** Errors whose message is already a user-facing sentence; anything else is a bug and shows a stack. */
export function isUserError(e: unknown): e is Error {
  return (
    e instanceof Error &&
    [
      "UsageError",
      "ConfigError",
      "BootImageError",
      "ImageError",
      "Qcow2Error",
      "DiskImageError",
      "BlockRequestError",
      "ControlServerError",
      "DaemonError",
      "ApiClientError",
      "NetSpecError",
      "NetworkConfigError",
      "SwitchError",
      "PasstError",
      "TapError",
      "MigrationError",
      "SnapshotError",
    ].includes(e.name)
  );
}

/** Image build / lookup failures: the builder's messages are already sentences. */
export class ImageError extends Error {
  override name = "ImageError";
}

/** Runs an image operation, turning its failures into ImageError so the CLI prints them plainly. */
export async function asImageError<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw new ImageError((e as Error).message);
  }
}
