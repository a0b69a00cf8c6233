/**
 * A message made of one repeated message field number 1, built from entries encoded
 * one at a time (ForwardRequest.commands, ForwardResponse.replies): the message is the
 * entries' concatenation, each behind its tag and length, so each entry is encoded
 * once and the message's size is known before it is cut.
 */
export class RepeatedFieldOne {
  readonly #parts: Uint8Array[] = [];
  #count = 0;
  #bytes = 0;

  /** Entries added so far. */
  get count(): number {
    return this.#count;
  }

  /** Bytes of the message so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Adds one encoded entry. */
  add(encoded: Uint8Array): void {
    const header = lengthDelimitedHeader(encoded.length);
    this.#parts.push(header, encoded);
    this.#bytes += header.length + encoded.length;
    this.#count++;
  }

  /** The encoded message. */
  finish(): Uint8Array {
    const out = new Uint8Array(this.#bytes);
    let at = 0;
    for (const part of this.#parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
}

/** Tag of field 1 with wire type 2 (length-delimited), then the length as a varint. */
function lengthDelimitedHeader(length: number): Uint8Array {
  const out: number[] = [0x0a];
  let n = length;
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Uint8Array.from(out);
}
