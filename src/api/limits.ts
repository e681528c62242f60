/**
 * The bounds berth puts on what a client may send, in one place (the README's "Limits"
 * table is this file). Each bound is what the kernel or runc accept, or a little under
 * it, so an over-large request is refused at the API with a hint instead of failing later
 * inside `runc create` (or never finishing, as a 300k-entry Env did).
 */
export const LIMITS = {
  /** A JSON request body (create, exec, update, network, volume, commit): bytes. */
  jsonBodyBytes: 4 << 20,
  /** Nesting of `{` and `[` in a JSON body; Docker's deepest body nests about 6. Checked before parsing. */
  jsonDepth: 64,
  /** JSON bodies over this size are "heavy": at most `heavyConcurrent` are read and parsed at once. */
  heavyBodyBytes: 256 << 10,
  heavyConcurrent: 4,
  /**
   * Values (openings and commas) in a JSON body, counted while it is read (a large body's
   * past its head, in its parse worker before it parses): what parsing the
   * body on the event loop costs once its worker has checked it (json-pool.ts). A port
   * range publishes about 6 per port, so up to about 40,000 ports in one create.
   */
  jsonValues: 256 << 10,
  /** Worker threads that parse heavy JSON bodies off the event loop (json-pool.ts), and each one's heap. */
  parseWorkers: 2,
  parseWorkerHeapMiB: 128,
  /** Heavy requests waiting for their turn beyond this are refused UNAVAILABLE (retry later). */
  heavyQueue: 64,
  /** Streaming uploads (load, import, volume import, build context, cp into a container) read at once, and how many may wait. */
  uploadConcurrent: 4,
  uploadQueue: 32,
  /** A request body must bring `slowBodyBytes` every `bodyTimeoutSeconds`, and a JSON body must be whole within twice that. */
  bodyTimeoutSeconds: 30,
  slowBodyBytes: 16 << 10,

  /** Environment: execve takes one string up to MAX_ARG_STRLEN (128 KiB with its NUL) ... */
  envEntryBytes: (128 << 10) - 1,
  /** ... and all of argv + envp (strings, NULs and 8-byte pointers) within ARG_MAX (2 MiB at an 8 MiB stack); berth leaves runc init half of it. */
  execBytes: 1 << 20,
  envCount: 16384,
  argCount: 16384,
  /** Labels: they are kept in the record and sent in every listing. */
  labelCount: 4096,
  labelKeyBytes: 1024,
  labelValueBytes: 64 << 10,
  labelTotalBytes: 256 << 10,
  /** Binds + Mounts + Tmpfs + Volumes + VolumesFrom: each is a mount runc makes at start. */
  mountCount: 1024,
  /** A path (WorkingDir, a mount target, a bind): PATH_MAX. */
  pathBytes: 4095,
  /** sethostname/setdomainname: __NEW_UTS_LEN. */
  hostnameBytes: 64,
  /** A short string field (a name, a mode, a signal, an address). */
  shortString: 1024,
  /** A list of names or options (CapAdd, Dns, ExtraHosts, Links, ...). */
  listCount: 1024,
  /** Published or exposed ports (one entry per port of a range). */
  portCount: 65536,
  /** Devices, ulimits and similar small tables. */
  tableCount: 256,
} as const;
