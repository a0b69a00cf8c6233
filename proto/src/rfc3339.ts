// RFC 3339 text ⇄ google.protobuf.Timestamp, without losing sub-millisecond digits.

/** A point in time as `google.protobuf.Timestamp` holds it. */
export interface Timestamp {
  seconds: number;
  nanos: number;
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/**
 * Parses an RFC 3339 timestamp (`2025-06-02T08:00:00Z`, `…T10:00:00.5+02:00`) to
 * seconds and nanos.
 *
 * @returns the timestamp, or undefined when the text is not RFC 3339 or names a
 *   day or time that does not exist
 */
export function parseRfc3339(text: string): Timestamp | undefined {
  const m = RFC3339.exec(text);
  if (m === null) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) {
    return undefined;
  }
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const d = new Date(ms);
  if (d.getUTCDate() !== day || d.getUTCMonth() !== month - 1) return undefined;
  let offset = 0;
  if (m[8] === undefined) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return undefined;
    offset = (m[9] === "-" ? -1 : 1) * (oh * 3600 + om * 60);
  }
  const nanos = m[7] === undefined ? 0 : Number(m[7].padEnd(9, "0"));
  return { seconds: ms / 1000 - offset, nanos };
}

/** Orders two timestamps: negative when `a` is earlier, 0 when equal, positive when later. */
export function compareTimestamps(a: Timestamp, b: Timestamp): number {
  return a.seconds === b.seconds ? a.nanos - b.nanos : a.seconds - b.seconds;
}
