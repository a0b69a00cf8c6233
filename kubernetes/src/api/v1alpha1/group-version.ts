/** API group of every Berth resource. */
export const GROUP = "berth.dev";
/** The one served (and stored) version of the group. */
export const VERSION = "v1alpha1";
/** `apiVersion` of every Berth object: `berth.dev/v1alpha1`. */
export const API_VERSION = `${GROUP}/${VERSION}`;
