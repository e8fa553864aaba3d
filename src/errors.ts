/**
 * @module errors — one error base class with stable codes.
 *
 * Every failure l4lb reports carries a `code` that never changes between releases
 * (documented in docs/errors.md; a test checks every code is documented) and a `side`
 * saying whose fault it was: the client, the backend, or l4lb itself / its config.
 */

/** Which side of the proxy a failure belongs to. */
export type ErrorSide = 'client' | 'backend' | 'internal';

/** All stable error codes. Add new codes here and in docs/errors.md. */
export const ErrorCodes = {
  CONFIG_INVALID: 'L4LB_ERR_CONFIG_INVALID',
  CONFIG_READ: 'L4LB_ERR_CONFIG_READ',
  CONFIG_PARSE: 'L4LB_ERR_CONFIG_PARSE',
  USAGE: 'L4LB_ERR_USAGE',
  LISTEN: 'L4LB_ERR_LISTEN',
  CONNECT_TIMEOUT: 'L4LB_ERR_CONNECT_TIMEOUT',
  CONNECT_REFUSED: 'L4LB_ERR_CONNECT_REFUSED',
  CONNECT_FAILED: 'L4LB_ERR_CONNECT_FAILED',
  NO_BACKEND: 'L4LB_ERR_NO_BACKEND',
  PROXY_HEADER: 'L4LB_ERR_PROXY_HEADER',
  TLS_CLIENT_HELLO: 'L4LB_ERR_TLS_CLIENT_HELLO',
  PREREAD_TIMEOUT: 'L4LB_ERR_PREREAD_TIMEOUT',
  HEALTH_CHECK: 'L4LB_ERR_HEALTH_CHECK',
  ADMIN: 'L4LB_ERR_ADMIN',
  DNS: 'L4LB_ERR_DNS',
  UDP_RESPONSE_TIMEOUT: 'L4LB_ERR_UDP_RESPONSE_TIMEOUT',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** Base class of every error l4lb raises on purpose. */
export class L4lbError extends Error {
  readonly code: ErrorCode;
  readonly side: ErrorSide;

  constructor(code: ErrorCode, side: ErrorSide, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'L4lbError';
    this.code = code;
    this.side = side;
  }
}

/** A command-line usage error: exit code 2 with a usage hint. */
export class UsageError extends L4lbError {
  constructor(message: string) {
    super(ErrorCodes.USAGE, 'internal', message);
    this.name = 'UsageError';
  }
}

/** One problem found in a config file, located by file, path and (where known) line. */
export interface ConfigIssue {
  /** Path inside the document, e.g. `pools[1].backends[0].address`. */
  path: string;
  message: string;
  line?: number;
}

/** A config that could not be read, parsed or validated: exit code 2. */
export class ConfigError extends L4lbError {
  readonly file: string;
  readonly issues: ConfigIssue[];

  constructor(code: ErrorCode, file: string, issues: ConfigIssue[]) {
    super(code, 'internal', ConfigError.format(file, issues));
    this.name = 'ConfigError';
    this.file = file;
    this.issues = issues;
  }

  static format(file: string, issues: ConfigIssue[]): string {
    return issues
      .map((i) => `${file}${i.line !== undefined ? `:${i.line}` : ''}: ${i.path || '(root)'}: ${i.message}`)
      .join('\n');
  }
}

/** A backend could not be reached. */
export class ConnectError extends L4lbError {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, 'backend', message, options);
    this.name = 'ConnectError';
  }
}

/** A client sent something l4lb cannot accept (bad PROXY header, not TLS, ...). */
export class ProtocolError extends L4lbError {
  /** Short machine-readable reason for logs and metrics, e.g. `bad_signature`. */
  readonly reason: string;

  constructor(code: ErrorCode, reason: string, message: string) {
    super(code, 'client', message);
    this.name = 'ProtocolError';
    this.reason = reason;
  }
}
