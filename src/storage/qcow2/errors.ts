// Errors a qcow2 image raises: their messages name the file and the problem.

/** The image file is malformed, unsupported, or refuses the requested operation. */
export class Qcow2Error extends Error {
  override name = "Qcow2Error";
}

/** `Cannot open disk "a.qcow2": <problem>`. */
export function openError(path: string, problem: string): Qcow2Error {
  return new Qcow2Error(`Cannot open disk "${path}": ${problem}`);
}

/** Metadata found broken while the image is in use. */
export function corruptError(path: string, problem: string): Qcow2Error {
  return new Qcow2Error(`Disk "${path}" is corrupt: ${problem}; run "nodevisor disk check --repair" on it`);
}
