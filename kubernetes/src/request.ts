// What every adapter's request to kube-apiserver shares: a per-request abort signal
// with a timeout, and a short message for logs out of an API error.
import { ApiException, Observable, type ObservableMiddleware } from "@kubernetes/client-node";

/** Per-request options: the request is aborted when `signal` aborts or after `timeoutMs`. */
export function requestOptions(signal: AbortSignal, timeoutMs: number) {
  const abortable: ObservableMiddleware = {
    pre: (context) => {
      context.setSignal(AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]));
      return new Observable(Promise.resolve(context));
    },
    post: (response) => new Observable(Promise.resolve(response)),
  };
  return { middleware: [abortable], middlewareMergeStrategy: "append" as const };
}

/** A short message: for an API error its code and the Status message. */
export function errorMessage(e: unknown): string {
  if (!(e instanceof ApiException)) return e instanceof Error ? e.message : String(e);
  let detail: unknown = e.body;
  try {
    if (typeof detail === "string") detail = JSON.parse(detail);
  } catch {}
  const message =
    typeof detail === "object" && detail !== null && "message" in detail
      ? String(detail.message)
      : String(detail ?? "");
  return `HTTP ${e.code}: ${message.slice(0, 300)}`;
}
