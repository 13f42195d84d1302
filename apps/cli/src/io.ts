/** The process around the CLI, injectable so tests can run main() in-process. */
export interface CliIo {
  readonly stdout: (s: string) => void;
  readonly stderr: (s: string) => void;
  readonly stdoutIsTTY: boolean;
  readonly stderrIsTTY: boolean;
  /** the terminal's width, when stderr is one (progress fits its bar to it) */
  readonly stderrColumns?: number;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  /** milliseconds, for timing the run */
  readonly now: () => number;
}

export function processIo(): CliIo {
  return {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    stdoutIsTTY: process.stdout.isTTY === true,
    stderrIsTTY: process.stderr.isTTY === true,
    ...(process.stderr.columns ? { stderrColumns: process.stderr.columns } : {}),
    env: process.env,
    cwd: process.cwd(),
    now: () => performance.now(),
  };
}

/** Colour on stdout only for a terminal, and never with NO_COLOR set (https://no-color.org). */
export function colorOnStdout(io: CliIo): boolean {
  return io.stdoutIsTTY && !io.env.NO_COLOR;
}
