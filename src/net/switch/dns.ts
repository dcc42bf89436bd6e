// A small authoritative DNS server (RFC 1035) for the names of the VMs on a switch network: A
// queries for a known name get its address; other names get NXDOMAIN, unless the network has a
// NAT uplink, whose DNS server then gets the query (the services decide, with dnsQuestionName).
// Answers are built from the question, so a malformed or hostile query gets FORMERR or nothing.

const TYPE_A = 1;
const CLASS_IN = 1;
const RCODE_FORMERR = 1;
const RCODE_NXDOMAIN = 3;
const RCODE_NOTIMP = 4;

export type NameLookup = (name: string) => number | null;

/** Parses the question name at `at`; returns it lower-cased and where the question's type starts. */
function readName(b: Uint8Array, at: number): { name: string; end: number } | null {
  const labels: string[] = [];
  let i = at;
  for (let n = 0; n < 128; n++) {
    if (i >= b.length) return null;
    const len = b[i]!;
    if (len === 0) return { name: labels.join(".").toLowerCase(), end: i + 1 };
    if (len > 63 || i + 1 + len > b.length) return null; // no compression in questions
    labels.push(new TextDecoder().decode(b.subarray(i + 1, i + 1 + len)));
    i += 1 + len;
  }
  return null;
}

/** The name a standard query with one question asks about, or null for anything else (which is answered locally). */
export function dnsQuestionName(query: Uint8Array): string | null {
  if (query.length < 12 || query[2]! & 0x80 || (query[2]! >> 3) & 15 || ((query[4]! << 8) | query[5]!) !== 1) return null;
  return readName(query, 12)?.name ?? null;
}

/** The answer to one DNS query (the UDP payload), or null when it is not worth an answer. */
export function answerDns(query: Uint8Array, lookup: NameLookup, ttl = 60): Uint8Array | null {
  if (query.length < 12) return null;
  const flags = (query[2]! << 8) | query[3]!;
  if (flags & 0x8000) return null; // a response, not a query
  const qd = (query[4]! << 8) | query[5]!;
  const opcode = (flags >> 11) & 15;
  const header = (rcode: number, answers: number, questionEnd: number): Uint8Array => {
    const out = new Uint8Array(questionEnd);
    out.set(query.subarray(0, questionEnd));
    // QR, opcode kept, AA, RD copied, RA clear.
    out[2] = 0x80 | (opcode << 3) | 0x04 | (query[2]! & 0x01);
    out[3] = rcode;
    out[4] = 0;
    out[5] = questionEnd > 12 ? 1 : 0;
    out[6] = 0;
    out[7] = answers;
    out.fill(0, 8, 12);
    return out;
  };
  if (opcode !== 0) return header(RCODE_NOTIMP, 0, 12);
  if (qd !== 1) return header(RCODE_FORMERR, 0, 12);
  const q = readName(query, 12);
  if (q === null || q.end + 4 > query.length) return header(RCODE_FORMERR, 0, 12);
  const qtype = (query[q.end]! << 8) | query[q.end + 1]!;
  const qclass = (query[q.end + 2]! << 8) | query[q.end + 3]!;
  const questionEnd = q.end + 4;
  const ip = qclass === CLASS_IN ? lookup(q.name) : null;
  if (ip === null) return header(RCODE_NXDOMAIN, 0, questionEnd);
  if (qtype !== TYPE_A) return header(0, 0, questionEnd); // the name exists, without this record type (AAAA etc.): NODATA
  const h = header(0, 1, questionEnd);
  const out = new Uint8Array(h.length + 16);
  out.set(h);
  const a = h.length;
  out[a] = 0xc0; // pointer to the question name at offset 12
  out[a + 1] = 12;
  out[a + 3] = TYPE_A;
  out[a + 5] = CLASS_IN;
  out[a + 6] = (ttl >>> 24) & 255;
  out[a + 7] = (ttl >>> 16) & 255;
  out[a + 8] = (ttl >>> 8) & 255;
  out[a + 9] = ttl & 255;
  out[a + 11] = 4;
  out[a + 12] = ip >>> 24;
  out[a + 13] = (ip >>> 16) & 255;
  out[a + 14] = (ip >>> 8) & 255;
  out[a + 15] = ip & 255;
  return out;
}
