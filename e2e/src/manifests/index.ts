// CapacityPool manifests: parse and validate YAML into internal.PoolSpec messages.
export {
  CAPACITY_POOL_API_VERSION,
  CAPACITY_POOL_KIND,
  labelKeyProblem,
  MAX_CAPACITY,
  mergePoolManifests,
  type PoolManifest,
  parseCapacityPools,
  parseRfc3339,
  type Timestamp,
} from "./capacity-pool.js";
export { formatProblem, ManifestError, type ManifestProblem } from "./errors.js";
export { expandManifestPaths, loadPoolManifests } from "./load.js";
