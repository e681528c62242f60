import type { ImageConfigFields, Progress } from './service';

/** What the image store's layer-making paths take (import, the base-image builders, commit). */

/** What importLayer/importDirectory make: one layer plus a config. */
export interface LayerImportSpec {
  /** Familiar tagged names to give the image. */
  names: string[];
  config: ImageConfigFields;
  /** The history entry's created_by. */
  createdBy: string;
  comment?: string;
  progress?: Progress;
}

/** What commitImageLayer makes: the parent's layers plus one, with this config (`docker commit`). */
export interface CommitLayerSpec {
  /** Familiar tagged names to give the image. */
  names: string[];
  /** The new image's `config` (replaces the parent's). */
  config: ImageConfigFields;
  /** The history entry's created_by. */
  createdBy: string;
  comment?: string;
  author?: string;
  /** The container the layer came from (the config's `container` field). */
  container?: string;
  /** That container's config (inspect's ContainerConfig). */
  containerConfig?: object;
}

/** What commitImageConfig makes: the parent's layers and no new one, with this config (the classic builder's metadata steps). */
export interface ConfigCommitSpec {
  /** Familiar tagged names to give the image. */
  names: string[];
  /** The new image's `config` (replaces the parent's). */
  config: ImageConfigFields;
  /** The history entry's created_by (marked empty_layer); none: no history entry (a scratch base). */
  createdBy?: string;
}
