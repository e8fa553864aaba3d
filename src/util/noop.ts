/** @module util/noop — the one do-nothing function, for listeners that only keep an 'error' from being unhandled. */

/** Does nothing. */
export function noop(): void {}
