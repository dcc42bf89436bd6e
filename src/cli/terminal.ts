// Attaches the host terminal to the guest's serial console in raw mode, QEMU-style:
// Ctrl-A X quits, Ctrl-A Ctrl-A sends a literal Ctrl-A, Ctrl-C goes to the guest.

const CTRL_A = 0x01;

export interface ConsoleAttachment {
  detach(): void;
}

export function attachTerminal(opts: {
  write: (data: Uint8Array) => void;
  onQuit: () => void;
  /** Called with the terminal's new size (rows, columns) when the user resizes it. */
  onResize?: (rows: number, cols: number) => void;
  input?: NodeJS.ReadStream;
  output?: NodeJS.WriteStream;
}): ConsoleAttachment {
  const output = opts.output ?? process.stdout;
  const onResize = (): void => {
    if (output.rows && output.columns) opts.onResize?.(output.rows, output.columns);
  };
  if (output.isTTY) output.on("resize", onResize);
  const input = opts.input ?? process.stdin;
  const raw = input.isTTY === true;
  if (raw) input.setRawMode(true);
  let escape = false;
  const onData = (chunk: Buffer): void => {
    const out: number[] = [];
    for (const b of chunk) {
      if (escape) {
        escape = false;
        if (b === 0x78 || b === 0x58) {
          opts.onQuit();
          return;
        }
        if (b === CTRL_A) out.push(CTRL_A);
        continue;
      }
      if (b === CTRL_A && raw) escape = true;
      else out.push(b);
    }
    if (out.length) opts.write(Uint8Array.from(out));
  };
  input.on("data", onData);
  input.resume();
  return {
    detach(): void {
      input.off("data", onData);
      output.off("resize", onResize);
      if (raw) input.setRawMode(false);
      input.pause();
    },
  };
}
