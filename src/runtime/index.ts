/**
 * The OCI runtime layer: bundles (spec), safe lookups in a rootfs, the per-container
 * monitor and the runc driver. The engine imports from here.
 */
export * from './spec';
export * from './rootfs';
export * from './monitor';
export * from './runtime';
