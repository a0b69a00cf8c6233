// What the end-to-end tests borrow from the benchmarks: the client load generator.
export { ClientLoad } from "./kubernetes-load.js";
