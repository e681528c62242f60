/** Versions berth reports. API_VERSION is the Docker Engine API version berth speaks. */
export const BERTH_VERSION = '0.1.0';
export const API_VERSION = '1.41';
export const MIN_API_VERSION = '1.24';
