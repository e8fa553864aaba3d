/**
 * @module admin/errors — the admin API's error: an {@link L4lbError} with the HTTP status
 * it is answered with and a short machine-readable reason.
 */
import { ErrorCodes, L4lbError, type ErrorSide } from '../errors.js';

/** Why an admin request or the admin server itself failed. Code: L4LB_ERR_ADMIN. */
export class AdminError extends L4lbError {
  /** HTTP status the request is answered with; 0 when the server itself failed (refused to start). */
  readonly status: number;
  /** Stable, machine-readable reason, e.g. `unknown_pool`, `bad_body`. */
  readonly reason: string;

  constructor(status: number, reason: string, message: string, side: ErrorSide = 'client', options?: { cause?: unknown }) {
    super(ErrorCodes.ADMIN, side, message, options);
    this.name = 'AdminError';
    this.status = status;
    this.reason = reason;
  }
}
