/**
 * @berth/operator: the berth.dev/v1alpha1 API (types, schemas, CRDs, validation).
 * The controller (membership, quorum, hand-off, status) grows here next.
 */
export * from "./api/v1alpha1/index.js";
