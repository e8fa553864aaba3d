/**
 * @module proxy/tls — TLS termination (certificates chosen by SNI) and origination
 * towards backends.
 *
 * Certificates are read when a listener's config is applied, so a reload (SIGHUP)
 * picks up renewed files.
 */
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import type { TlsCertConfig } from '../config/types.js';
import { L4lbError, ErrorCodes } from '../errors.js';
import { normalizeServerName } from '../protocol/sni-router.js';

/** Secure contexts of a terminating listener, chosen by SNI. */
export class CertificateStore {
  readonly #exact = new Map<string, tls.SecureContext>();
  readonly #wildcard = new Map<string, tls.SecureContext>();
  readonly #default: tls.SecureContext;

  /** Loads every certificate; throws L4lbError naming the file that failed. */
  constructor(certs: TlsCertConfig[]) {
    if (certs.length === 0) throw new L4lbError(ErrorCodes.CONFIG_INVALID, 'internal', 'tls terminate needs at least one certificate');
    let first: tls.SecureContext | undefined;
    for (const c of certs) {
      let cert: Buffer;
      let key: Buffer;
      try {
        cert = readFileSync(c.cert);
        key = readFileSync(c.key);
      } catch (err) {
        throw new L4lbError(ErrorCodes.CONFIG_READ, 'internal', `cannot read certificate: ${(err as Error).message}`, { cause: err });
      }
      let ctx: tls.SecureContext;
      let names: string[];
      try {
        ctx = tls.createSecureContext({ cert, key });
        names = certificateNames(new X509Certificate(cert));
      } catch (err) {
        throw new L4lbError(ErrorCodes.CONFIG_INVALID, 'internal', `invalid certificate ${c.cert}: ${(err as Error).message}`, { cause: err });
      }
      first ??= ctx;
      for (const n of names) {
        if (n.startsWith('*.')) {
          if (!this.#wildcard.has(n.slice(2))) this.#wildcard.set(n.slice(2), ctx);
        } else if (!this.#exact.has(n)) this.#exact.set(n, ctx);
      }
    }
    this.#default = first!;
  }

  /** The context for a server name: exact, then one-label wildcard, then the first cert. */
  contextFor(serverName: string | undefined): tls.SecureContext {
    if (serverName) {
      const name = normalizeServerName(serverName);
      const exact = this.#exact.get(name);
      if (exact) return exact;
      const dot = name.indexOf('.');
      if (dot > 0) {
        const wild = this.#wildcard.get(name.slice(dot + 1));
        if (wild) return wild;
      }
    }
    return this.#default;
  }

  get defaultContext(): tls.SecureContext {
    return this.#default;
  }
}

/** DNS names of a certificate: subjectAltName DNS entries, else the subject CN. */
function certificateNames(x: X509Certificate): string[] {
  const san = x.subjectAltName;
  if (san) {
    const names = san
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.startsWith('DNS:'))
      .map((s) => normalizeServerName(s.slice(4)));
    if (names.length > 0) return names;
  }
  const cn = /CN=([^\n,]+)/.exec(x.subject);
  return cn ? [normalizeServerName(cn[1])] : [];
}
