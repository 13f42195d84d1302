/** Kernel error codes a step can fail with (the errno the real kernel returns). */
export type Errno =
  | 'EPERM' | 'ENOENT' | 'EIO' | 'ENXIO' | 'EAGAIN' | 'ENOMEM' | 'EFAULT' | 'EBUSY' | 'EEXIST'
  | 'EINVAL' | 'ENOSPC' | 'ENODEV' | 'ESRCH' | 'EOPNOTSUPP' | 'ERESTARTSYS' | 'EHWPOISON' | 'SIGBUS' | 'SIGSEGV' | 'EBADE' | 'EXDEV' | 'EACCES' | 'ENOSYS' | 'ETXTBSY' | 'ENOTTY' | 'EFBIG' | 'EROFS';

/** A failure the simulated kernel reports to its caller, like a negative errno. */
export class KernelError extends Error {
  constructor(
    readonly code: Errno,
    message: string,
    /**
     * Set when the errno means "this kernel cannot do that at all" (an operation the
     * filesystem does not implement), not a failure of this run: a scenario step that does not
     * expect the error makes the cell `unsupported` with this reason instead of `fail`.
     */
    readonly unsupported: string | null = null,
  ) {
    super(`${code}: ${message}`);
    this.name = 'KernelError';
  }

  /** The kernel refuses an operation it does not implement (e.g. FICLONE on ext4: EOPNOTSUPP). */
  static unsupported(code: Errno, reason: string): KernelError {
    return new KernelError(code, reason, reason);
  }
}

/** The simulated kernel crashed (BUG/Oops); the run ends with outcome `oops`. */
export class KernelOops extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KernelOops';
  }
}

/** The combination cannot be built by the real kernel (e.g. fs-dax on s390). */
export class UnsupportedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedError';
  }
}

/** Bad user input (scenario, flag, option): names where and how to fix it. */
export class InputError extends Error {
  constructor(
    message: string,
    readonly file?: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'InputError';
  }
}
