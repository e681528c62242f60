import type { Credentials } from './auth';

/**
 * What berth's registry client offers the API and the CLI: pull, push, login, search.
 * The in-process implementation is `Registry` (registry.ts); the socket client is
 * `RemoteRegistryService` (src/client/registry.ts). Progress comes as Docker's JSON
 * messages, so the API forwards them untouched and `docker pull` draws its bars.
 *
 * Words: a **reference** is what users type (`redis`, `127.0.0.1:5000/app:v1`,
 * `redis@sha256:…`); its **domain** picks the registry and the credentials.
 */

export type { Credentials } from './auth';

/** One line of Docker's JSON message stream. */
export interface RegistryMessage {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  aux?: Record<string, unknown>;
}

export interface TransferOptions {
  /** Docker's AuthConfig for the reference's registry (X-Registry-Auth); none = anonymous. */
  auth?: Credentials;
  progress?: (m: RegistryMessage) => void;
  signal?: AbortSignal;
}

export interface PullOptions extends TransferOptions {
  /** os/arch[/variant]; default linux/<this host's arch>. */
  platform?: string;
}

export interface PullResult {
  id: string;
  /** The digest pulled (an index's, when the tag names one). */
  digest: string;
  /** Whether anything new was stored. */
  updated: boolean;
}

export interface PushResult {
  tag: string;
  digest: string;
  size: number;
}

export interface SearchResult {
  name: string;
  description: string;
  star_count: number;
  is_official: boolean;
  is_automated: boolean;
}

export interface LoginResult {
  Status: string;
  IdentityToken: string;
}

export interface RegistryService {
  pull(ref: string, opts?: PullOptions): Promise<PullResult>;
  push(ref: string, opts?: TransferOptions): Promise<PushResult>;
  /** Check credentials against a registry (`docker login`); nothing is stored daemon-side. */
  login(creds: Credentials): Promise<LoginResult>;
  search(term: string, opts?: { limit?: number; filters?: Record<string, string[]>; auth?: Credentials }): Promise<SearchResult[]>;
}
