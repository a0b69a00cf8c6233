/**
 * @berth/common/testing: helpers for tests and test harnesses only (never imported by a
 * product entrypoint): certificates made with openssl.
 */
export * from "./pki.js";
